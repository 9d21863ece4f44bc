"""The signed bytes: json's C encoder (fast path) gives exactly docker/go canonical JSON, or the exact encoder runs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.formats import encode_canonical

from dct2notation.cli import main
from dct2notation.config import DEFAULT_LIMITS
from dct2notation.dct.canonical import CanonicalError, GoNumber, encode, encode_exact, loads
from dct2notation.dct.source import NotaryServerSource
from tests.support.servers import NotaryServer

# Every ASCII byte, the characters HTML-escaping encoders touch, separators, non-BMP, and escape look-alikes.
AWKWARD = [
    "".join(map(chr, range(0x20, 0x80))),
    'q"b\\s',
    "lit\\n and \\\\u0001",
    "<a&b>",
    "ls\u2028ps\u2029",
    "ü-é-ß-€-😀",
    "del\x7f",
    "",
]


def signed_parts(shared_fixtures: Path) -> list[tuple[str, Any]]:
    parts = []
    for path in sorted((shared_fixtures / "dct").rglob("*.json")):
        try:
            doc = loads(path.read_bytes())
        except ValueError:
            continue  # deliberately malformed negatives
        if isinstance(doc, dict) and isinstance(doc.get("signed"), dict):
            parts.append((str(path.relative_to(shared_fixtures)), doc["signed"]))
    return parts


def test_fast_path_equals_exact_encoder_on_every_fixture(shared_fixtures: Path) -> None:
    parts = signed_parts(shared_fixtures)
    assert len(parts) > 50
    for name, signed in parts:
        fast = encode(signed)
        assert fast == encode_exact(signed), name
        # securesystemslib's canonical form (escapes only backslash and quote) agrees: an independent reference.
        assert fast == encode_canonical(json.loads(fast)).encode("utf-8"), name


@pytest.mark.parametrize("text", AWKWARD, ids=repr)
def test_strings_are_raw_except_backslash_and_quote(text: str) -> None:
    expected = ('{"k":"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"}').encode("utf-8")
    value = loads(json.dumps({"k": text}).encode())  # arrives \\u-escaped, as any JSON producer may write it
    assert encode(value) == encode_exact(value) == expected
    assert encode_canonical(value).encode("utf-8") == expected


def test_control_characters_take_the_exact_path_and_stay_raw() -> None:
    text = "".join(map(chr, range(0x20))) + "\\n"
    value = loads(json.dumps({"k": text, "\x01key": 1}).encode())
    expected = ('{"\x01key":1,"k":"' + "".join(map(chr, range(0x20))) + '\\\\n"}').encode()
    assert json.dumps(value, ensure_ascii=False) != expected.decode()  # the C encoder alone would escape them
    assert encode(value) == encode_exact(value) == expected


def test_lone_surrogate_becomes_replacement_character_as_go_decodes_it() -> None:
    value = loads(b'{"k":"a\\ud800b","z":"\\ud83d\\ude00"}')
    assert encode(value) == '{"k":"a\ufffdb","z":"\U0001f600"}'.encode()


def test_keys_sort_by_code_point() -> None:
    value = loads(json.dumps({"é": 1, "z": 2, "Z": 3, "\U0001f600": 4, "\uffff": 5, "": 6}).encode())
    assert encode(value) == '{"":6,"Z":3,"z":2,"é":1,"\uffff":5,"\U0001f600":4}'.encode()


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("1.0", b"1"),
        ("1e2", b"100"),
        ("-0", b"0"),
        ("-2.5e1", b"-25"),
        ("123456789012345", b"123456789012345"),  # 15 digits: exact in a float64
        ("9007199254740993", b"9007199254740992"),  # 2**53 + 1: Go's float64 rounds it
        ("12345678901234567890", None),  # past int64
        ("0.5", None),
        ("1e400", None),
    ],
)
def test_numbers_as_go_float64(number: str, expected: bytes | None) -> None:
    value = loads(f'{{"n":{number}}}'.encode())
    if expected is None:
        with pytest.raises(CanonicalError):
            encode(value)
    else:
        assert encode(value) == b'{"n":' + expected + b"}"


def test_numbers_go_reads_differently_are_kept_apart() -> None:
    value = loads(b'{"a":1,"b":1.0,"c":1234567890123456,"d":-123456789012345}')
    assert value["a"] == 1 and value["d"] == -123456789012345
    assert isinstance(value["b"], GoNumber) and isinstance(value["c"], GoNumber)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_constants_are_refused(literal: bytes) -> None:
    with pytest.raises(ValueError, match="is not JSON"):
        loads(b'{"n":' + literal + b"}")


def test_awkward_tag_names_from_the_real_notary_verify(
    notary_server: NotaryServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """notary 0.7 signs these names and the fast path reproduces its bytes (notary refuses to publish control chars,
    so those are covered by the exact-encoder tests above)."""
    gun = "example.com/canonical/awkward"
    client = notary_server.client(tmp_path / "trust")
    client.init(gun)
    names = AWKWARD[1:-1]
    for i, name in enumerate(names):
        client.run("addhash", gun, name, str(10 + i), "--sha256", hashlib.sha256(name.encode()).hexdigest())
    client.publish(gun)
    source = NotaryServerSource(notary_server.url, limits=DEFAULT_LIMITS)
    try:
        raw = source.fetch(gun, "targets")
    finally:
        source.close()
    # The wire form HTML-escapes (Go's outer json.Marshal); the signed bytes do not: only re-encoding gives them.
    assert b'"\\u003ca\\u0026b\\u003e"' in raw
    assert b'"<a&b>"' in encode(loads(raw)["signed"])
    assert main(["inventory", gun, "--server", notary_server.url, "--json"]) == 0
    repo = json.loads(capsys.readouterr().out)["repositories"][0]
    assert sorted(t["tag"] for t in repo["trusted_tags"]) == sorted(names)
