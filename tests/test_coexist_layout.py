"""``check --inventory FILE --oci-layout DIR``: the same statuses from an OCI layout, signatures by the real signer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dct2notation.cli import main
from dct2notation.config import Limits, SystemClock
from dct2notation.errors import InputError
from dct2notation.keys.resolve import load_signing_key
from dct2notation.keys.testcert import generate_test_key
from dct2notation.migrate.coexist import LayoutView, NotationResult, verify_digest
from dct2notation.notation.policy import TrustPolicyDocument
from dct2notation.notation.truststore import TrustStore
from dct2notation.oci import OCI_MANIFEST, Descriptor, sha256_digest
from dct2notation.registry.layout import OCILayoutStore
from dct2notation.registry.options import RegistryOptions
from dct2notation.registry.signing import sign_artifact
from dct2notation.registry.target import open_target
from tests.test_batch import image_manifest
from tests.test_coexist_scenario import write_policy


def add_image(store: OCILayoutStore, tag: str) -> str:
    raw = image_manifest(f"layout-{tag}")
    digest = store.layout.put_blob(raw)
    with store.layout.locked():
        store.layout.tag(Descriptor(OCI_MANIFEST, digest, len(raw)), tag)
    return digest


def check_layout(
    tmp_path: Path, layout: Path, config: Path, trusted: list[tuple[str, str]], capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any]]:
    """`check --oci-layout --json` of ``layout`` against an inventory in which DCT trusted each (tag, digest) of
    ``trusted`` in dct.example/app, under a policy trusting the key ``trusted`` of ``config``: (exit code, report)."""
    inventory = tmp_path / "inventory.json"
    rows = [{"tag": t, "digest": dg, "size": 1, "role": "targets/releases"} for t, dg in trusted]
    inventory.write_text(json.dumps({"format": "dct2notation-inventory/1", "evaluated_at": "2026-01-01T00:00:00Z",
                                     "repositories": [{"gun": "dct.example/app", "trusted_tags": rows}]}))  # fmt: skip
    policy, truststore = write_policy(tmp_path, config, "trusted")
    args = ["check", "--inventory", str(inventory), "--oci-layout", str(layout), "--policy", str(policy)]
    code = main([*args, "--truststore", str(truststore), "--json", "--no-table"])
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return code, doc


def test_layout_statuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "notation"
    generate_test_key("trusted", config, key_type="ec-p256", make_default=True)
    layout = tmp_path / "layout"
    store = OCILayoutStore(layout, create=True)
    d = {tag: add_image(store, tag) for tag in ("a", "b", "c")}
    for tag in ("a", "c"):
        target = open_target(d[tag], options=RegistryOptions(), oci_layout=layout)
        sign_artifact(target, load_signing_key("trusted", config), clock=SystemClock())
    missing = sha256_digest(image_manifest("never pushed"))
    trusted = [("a", d["a"]), ("b", d["b"]), ("d", missing)]
    code, doc = check_layout(tmp_path, layout, config, trusted, capsys)
    assert {t["tag"]: t["status"] for t in doc["tags"]} == {
        "a": "ok",
        "b": "notation-missing",
        "c": "dct-missing",
        "d": "manifest-missing",
    }
    assert {t["tag"]: t["registry_digest"] for t in doc["tags"]} == {"a": d["a"], "b": d["b"], "c": d["c"], "d": None}
    assert code == 1


def test_layout_index_refusals(tmp_path: Path) -> None:
    root = tmp_path / "layout"
    OCILayoutStore(root, create=True)
    add_image(OCILayoutStore(root), "a")
    with pytest.raises(InputError) as big:
        LayoutView(OCILayoutStore(root, Limits(layout_index_bytes=100)))
    assert str(big.value) == f"{root / 'index.json'}: exceeds the 100-byte limit (layout_index_bytes)"
    (root / "index.json").write_text('{"manifests": {}}')
    with pytest.raises(InputError) as shape:
        LayoutView(OCILayoutStore(root))
    assert str(shape.value) == f"{root / 'index.json'}: manifests: missing or not a list"
    (root / "index.json").write_text("{")
    with pytest.raises(InputError, match="index.json: not JSON"):
        LayoutView(OCILayoutStore(root))


def test_verify_digest_names_the_first_failure_and_stops_at_max_signature_attempts(tmp_path: Path) -> None:
    """Notation's rule through the one signature loop (notation.verify.verify_artifact): the first failed check
    names the verdict; past ``max_signature_attempts`` the reason says the check gave up."""
    config = tmp_path / "notation"
    generate_test_key("trusted", config, key_type="ec-p256", make_default=True)
    generate_test_key("stranger", config, key_type="ec-p256")
    layout = tmp_path / "layout"
    digest = add_image(OCILayoutStore(layout, create=True), "a")
    target = open_target(digest, options=RegistryOptions(), oci_layout=layout)
    for _ in range(3):
        sign_artifact(target, load_signing_key("stranger", config), clock=SystemClock())
    policy, truststore = write_policy(tmp_path, config, "trusted")
    subject = Descriptor(OCI_MANIFEST, digest, len(image_manifest("layout-a")))

    def verdict(limits: Limits) -> NotationResult:
        view = LayoutView(OCILayoutStore(layout, limits))
        assert len(view.envelopes("dct.example/app", digest)) == 3
        return verify_digest(
            view,
            "dct.example/app",
            subject,
            policy=TrustPolicyDocument.load(policy),
            truststore=TrustStore(truststore),
            clock=SystemClock(),
            limits=limits,
        )

    every = verdict(Limits())
    assert (every.verdict, every.failed_check, every.signature) == ("invalid", "authenticity", None)
    assert "gave up" not in every.reason
    capped = verdict(Limits(max_signature_attempts=2))
    assert (capped.verdict, capped.failed_check, capped.signature) == ("invalid", "authenticity", None)
    assert capped.reason == "gave up after 2 signatures (max_signature_attempts)"


def test_attack_referrers_tag_with_a_trailing_newline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A tag "sha256-<hex>\\n" served beside the images matched the ``$``-anchored referrers-tag pattern, so the check
    took it for a signature index and left it out of the report: a tag the registry serves went unchecked. It is
    a tag like any other, reported (served, not signed by DCT)."""
    config = tmp_path / "notation"
    generate_test_key("trusted", config, key_type="ec-p256", make_default=True)
    layout = tmp_path / "layout"
    store = OCILayoutStore(layout, create=True)
    a = add_image(store, "a")
    hidden = add_image(store, "sha256-" + "b" * 64 + "\n")
    code, doc = check_layout(tmp_path, layout, config, [("a", a)], capsys)
    assert {t["tag"]: (t["status"], t["registry_digest"]) for t in doc["tags"]} == {
        "a": ("notation-missing", a),
        "sha256-" + "b" * 64 + "\n": ("dct-missing", hidden),
    }
    assert code == 1
