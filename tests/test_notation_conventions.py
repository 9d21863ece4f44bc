"""Notation's conventions, on the command lines of Notation's own documentation (docs/CLI.md has the map).

``notation verify --oci-layout --scope "local/hello-world" hello-world:v1`` (notation's OCI layout guide) and
``notation verify --oci-layout ${OCI_LAYOUT_LOCATION}@${IMAGE_DIGEST} --scope $REGISTRY_SCOPE`` (its e2e script)
run here as ``dct2notation verify …`` with the same words, reading ``$NOTATION_CONFIG``'s trust policy and trust
store as notation does. Each test names the defect of the old HEAD it would have caught.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dct2notation import __version__
from dct2notation.cli import main
from dct2notation.duration import parse_go_duration
from dct2notation.errors import UsageError
from dct2notation.keys.testcert import generate_test_key
from dct2notation.oci import EMPTY_JSON, OCI_MANIFEST, Descriptor, sha256_digest
from dct2notation.registry.client import RegistryClient
from dct2notation.registry.layout import OCILayout
from dct2notation.registry.options import Basic, RegistryOptions
from tests.support.images import image_manifest
from tests.support.servers import Registry, have, write_htpasswd

TAG_WARNING = (
    "Warning: Always verify the artifact using digest(@sha256:...) rather than a tag(:v1) because resolved digest "
    "may not point to the same signed artifact, as tags are mutable."
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _policy(scopes: list[str], store: str = "tester") -> dict[str, object]:
    statement = {
        "name": "hello",
        "registryScopes": scopes,
        "signatureVerification": {"level": "strict"},
        "trustStores": [f"ca:{store}"],
        "trustedIdentities": ["*"],
    }
    return {"version": "1.0", "trustPolicies": [statement]}


@pytest.fixture()
def hello(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A Notation config dir in $NOTATION_CONFIG (key, trust store, trustpolicy.json scoped to local/hello-world) and
    the layout ``hello-world`` (tag v1) in the working directory, as notation's OCI layout guide has them."""
    config = tmp_path / "notation"
    generate_test_key("tester", config, key_type="ec-p256", make_default=True)
    (config / "trustpolicy.json").write_text(json.dumps(_policy(["local/hello-world"])))
    monkeypatch.setenv("NOTATION_CONFIG", str(config))
    monkeypatch.chdir(tmp_path)
    layout = OCILayout(tmp_path / "hello-world")
    layout.init()
    layout.put_blob(EMPTY_JSON)
    raw = image_manifest("hello-world")
    layout.put_blob(raw)
    digest = sha256_digest(raw)
    with layout.locked():
        layout.tag(Descriptor(OCI_MANIFEST, digest, len(raw)), "v1")
    return config, digest


def _sign(capsys: pytest.CaptureFixture[str], digest: str, *extra: str) -> None:
    # notation's guide: `notation sign --oci-layout hello-world@sha256:…` (the default key of signingkeys.json).
    code, _, err = run(capsys, "sign", "--oci-layout", f"hello-world@{digest}", *extra)
    assert code == 0, err


def test_verify_oci_layout_flag_reads_notation_config(
    capsys: pytest.CaptureFixture[str], hello: tuple[Path, str]
) -> None:
    """Before: `--oci-layout` took the value, so this was "Missing argument" / "Missing option '--policy'"."""
    _, digest = hello
    _sign(capsys, digest)
    code, out, err = run(capsys, "verify", "--oci-layout", f"hello-world@{digest}", "--scope", "local/hello-world")
    assert (code, out, err) == (0, f"Successfully verified signature for hello-world@{digest}\n", "")


def test_verify_oci_layout_tag_warns_as_notation(capsys: pytest.CaptureFixture[str], hello: tuple[Path, str]) -> None:
    """The guide's exact line; a tag gets Notation's warning on stderr and the success line on stdout."""
    _, digest = hello
    _sign(capsys, digest)
    code, out, err = run(capsys, "verify", "--oci-layout", "--scope", "local/hello-world", "hello-world:v1")
    assert code == 0, err
    assert out == f"Successfully verified signature for hello-world@{digest}\n"
    assert err.replace("\n", " ").strip() == TAG_WARNING
    code, out, _ = run(capsys, "verify", "--oci-layout", "./hello-world:v1", "--scope", "local/hello-world")
    assert (code, out) == (0, f"Successfully verified signature for hello-world@{digest}\n")


def test_verify_scope_selects_the_policy_statement(capsys: pytest.CaptureFixture[str], hello: tuple[Path, str]) -> None:
    """A scope no statement lists is refused as Notation refuses it; --scope is for layouts only."""
    _, digest = hello
    _sign(capsys, digest)
    code, _, err = run(capsys, "verify", "--oci-layout", f"hello-world@{digest}", "--scope", "local/other")
    assert (code, err) == (2, f'dct2notation: error: artifact "local/other@{digest}" has no applicable oci trust '
                              'policy statement (scope "local/other")\n')  # fmt: skip
    # Without --scope (Notation requires it) the scope is local/<directory name>: here the policy's local/hello-world.
    code, out, _ = run(capsys, "verify", "--oci-layout", f"hello-world@{digest}")
    assert (code, out) == (0, f"Successfully verified signature for hello-world@{digest}\n")
    code, _, err = run(capsys, "verify", "--oci-layout", f"hello-world@{digest}", "--scope", "local/x:v1")
    assert code == 2 and "--scope 'local/x:v1': give a repository" in err
    code, _, err = run(capsys, "verify", f"r.example/a@{digest}", "--scope", "local/hello-world")
    assert code == 2 and "--scope applies to --oci-layout only" in err


def test_trustpolicy_oci_json_is_read_first(capsys: pytest.CaptureFixture[str], hello: tuple[Path, str]) -> None:
    """Notation 1.2+ reads trustpolicy.oci.json before trustpolicy.json: one trusting another store refuses."""
    config, digest = hello
    _sign(capsys, digest)
    (config / "truststore" / "x509" / "ca" / "other").mkdir()
    (config / "trustpolicy.oci.json").write_text(json.dumps(_policy(["*"], store="other")))
    (config / "trustpolicy.json").write_text(json.dumps(_policy(["local/x"])))
    code, _, err = run(capsys, "verify", "--oci-layout", f"hello-world@{digest}", "--scope", "local/hello-world")
    assert code == 1 and err.count("\n") == 1
    # --policy and --truststore still override the config dir.
    overrides = ["--policy", str(config / "trustpolicy.json"), "--truststore", str(config / "truststore")]
    code, out, _ = run(capsys, "verify", "--oci-layout", f"hello-world@{digest}", "--scope", "local/x", *overrides)
    assert code == 0 and out.startswith("Successfully verified signature for ")


def test_no_trust_policy_is_one_line(capsys: pytest.CaptureFixture[str], hello: tuple[Path, str]) -> None:
    config, digest = hello
    (config / "trustpolicy.json").unlink()
    code, out, err = run(capsys, "verify", "--oci-layout", f"hello-world@{digest}")
    assert (code, out) == (2, "")
    assert err == (
        f"dct2notation: error: {config}: no trustpolicy.oci.json or trustpolicy.json (or give --policy FILE)\n"
    )


@pytest.mark.parametrize("ref", ["hello-world", "hello-world:", "hello-world@"])
def test_oci_layout_reference_needs_digest_or_tag(capsys: pytest.CaptureFixture[str], hello: tuple[Path, str],
                                                  ref: str) -> None:  # fmt: skip
    code, _, err = run(capsys, "verify", "--oci-layout", ref)
    assert code == 2
    assert err == f"dct2notation: error: --oci-layout {ref!r}: give DIR@sha256:… or DIR:TAG (the layout and the " \
                  "artifact in it)\n"  # fmt: skip


def test_ls_layout_dir_and_full_ref_name(capsys: pytest.CaptureFixture[str], hello: tuple[Path, str]) -> None:
    """`ls --oci-layout DIR NAME:TAG` finds a ref.name that holds the repository (buildx/skopeo write those); the
    default output is Notation's tree with full digests."""
    _, digest = hello
    _sign(capsys, digest)
    layout = OCILayout(Path("hello-world"))
    with layout.locked():
        layout.tag(Descriptor(OCI_MANIFEST, digest, 0), "example.com/team/hello-world:1.0")
    code, out, err = run(capsys, "ls", "--oci-layout", "hello-world", "example.com/team/hello-world:1.0", "--json")
    assert code == 0, err
    (signature,) = json.loads(out)["signatures"]
    code, out, err = run(capsys, "ls", "--oci-layout", f"hello-world@{digest}")
    assert code == 0, err
    assert out.splitlines() == [
        f"hello-world@{digest}",
        "└── application/vnd.cncf.notary.signature",
        f"    └── {signature['digest']}",
    ]


def test_inspect_output_json_is_notations_document(capsys: pytest.CaptureFixture[str], shared_fixtures: Path) -> None:
    """`notation inspect -o json` on the real Notation e2e layout: the keys of notation 1.3 (and their casing)."""
    layout = shared_fixtures / "notation" / "oci-layout-e2e-valid-signature"
    code, out, err = run(capsys, "inspect", "--oci-layout", f"{layout}:v1", "-o", "json")
    assert code == 0, err
    doc = json.loads(out)
    # notation 1.3.2's casing ("Signatures"; 2.x writes "signatures"), compared with the binary itself in
    # test_interop_notation_reads.py.
    assert list(doc) == ["mediaType", "Signatures"]
    assert doc["mediaType"] == OCI_MANIFEST
    (sig,) = doc["Signatures"]
    assert list(sig) == ["mediaType", "digest", "signatureAlgorithm", "signedAttributes", "userDefinedAttributes",
                         "unsignedAttributes", "certificates", "signedArtifact"]  # fmt: skip
    assert sig["mediaType"] == "application/jose+json"
    assert sig["digest"] == "sha256:90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f"
    assert sig["signatureAlgorithm"] == "RSASSA-PSS-SHA-256"
    assert sig["signedAttributes"] == {"signingScheme": "notary.x509", "signingTime": "2023-06-27T05:30:33Z"}
    assert sig["userDefinedAttributes"] is None
    (cert,) = sig["certificates"]
    assert list(cert) == ["SHA256Fingerprint", "issuedTo", "issuedBy", "expiry"]
    assert cert["SHA256Fingerprint"] == "e38aea13f2b051f7183cca64a51ee676f4d4456f41d9fecf15eb367efc7343b9"
    assert cert["issuedTo"] == cert["issuedBy"]  # Notation's e2e certificate is self-signed
    assert sig["signedArtifact"] == {
        "mediaType": OCI_MANIFEST,
        "digest": "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9",
        "size": sig["signedArtifact"]["size"],
    }
    code, _, err = run(capsys, "inspect", "--oci-layout", f"{layout}:v1", "-o", "yaml")
    assert code == 2 and "--output 'yaml': expected json or text" in err


def test_expiry_zero_and_fractional_hours(capsys: pytest.CaptureFixture[str], hello: tuple[Path, str]) -> None:
    """Before: `--expiry 1.5h` and `--expiry 0` were "not a duration"."""
    _, digest = hello
    _sign(capsys, digest, "--expiry", "0")
    _sign(capsys, digest, "--expiry", "1.5h", "--user-metadata", "n=2")
    code, out, err = run(capsys, "inspect", "--oci-layout", f"hello-world@{digest}", "-o", "json")
    assert code == 0, err
    by_metadata = {json.dumps(s["userDefinedAttributes"]): s["signedAttributes"] for s in json.loads(out)["Signatures"]}
    assert "expiry" not in by_metadata["null"]
    attrs = by_metadata['{"n": "2"}']
    signed_at = dt.datetime.fromisoformat(attrs["signingTime"])
    assert dt.datetime.fromisoformat(attrs["expiry"]) - signed_at == dt.timedelta(hours=1, minutes=30)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1.5h", dt.timedelta(minutes=90)), ("2000ms", dt.timedelta(seconds=2)), ("0", dt.timedelta(0)),
     ("1h30m", dt.timedelta(minutes=90)), ("300us", dt.timedelta(microseconds=300)), (".5s", dt.timedelta(0, 0.5)),
     ("8760h", dt.timedelta(days=365)), ("+24h", dt.timedelta(days=1)), ("1h1.5m", dt.timedelta(seconds=3690))],
)  # fmt: skip
def test_go_durations(text: str, value: dt.timedelta) -> None:
    assert parse_go_duration(text) == value


@pytest.mark.parametrize("text", ["", "1.5", "h", "1d", "-1h", "1h 30m", "0x10s", "1.2.3h"])
def test_go_durations_refused(text: str) -> None:
    with pytest.raises(UsageError, match="--expiry"):
        parse_go_duration(text)


def test_password_flags_and_environment(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """NOTATION_USERNAME/NOTATION_PASSWORD and -u/-p as Notation takes them; half of a pair is one line."""
    ref = "r.example/a@sha256:" + "0" * 64
    monkeypatch.setenv("NOTATION_PASSWORD", "secret")
    code, _, err = run(capsys, "ls", ref)
    assert (code, err) == (2, "dct2notation: error: --password (or $NOTATION_PASSWORD) needs --username (or "
                              "$NOTATION_USERNAME)\n")  # fmt: skip
    monkeypatch.delenv("NOTATION_PASSWORD")
    monkeypatch.setenv("NOTATION_USERNAME", "alice")
    code, _, err = run(capsys, "inspect", ref)
    assert (code, err) == (2, "dct2notation: error: --username (or $NOTATION_USERNAME) needs --password, "
                              "--password-stdin or $NOTATION_PASSWORD\n")  # fmt: skip
    code, _, err = run(capsys, "verify", ref, "-u", "bob", "-p", "pw", "--password-stdin")
    assert (code, err) == (2, "dct2notation: error: --password and --password-stdin: give one of them\n")


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `-h` was "No such option: -h" and `--version` unknown."""
    code, out, _ = run(capsys, "--version")
    assert (code, out) == (0, f"dct2notation {__version__}\n")
    code, out, _ = run(capsys, "verify", "-h")
    assert code == 0 and "--oci-layout" in out and "--scope" in out and "--plain-http" in out
    code, out, _ = run(capsys, "-h")
    assert code == 0 and "verify" in out


USER, PASSWORD = "alice", "s3cret-pw"


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, str]]:
    """A plain-HTTP docker-registry with htpasswd, holding acme/app:v1."""
    if not have("docker-registry") or not have("htpasswd"):
        pytest.skip("docker-registry or htpasswd is not installed")
    work = tmp_path_factory.mktemp("plain-http")
    registry = Registry(work / "registry", htpasswd=write_htpasswd(work / "htpasswd", USER, PASSWORD)).start()
    raw = image_manifest("plain-http")
    options = RegistryOptions(insecure_registries=frozenset({registry.host}), credentials=Basic(USER, PASSWORD))
    with RegistryClient(registry.host, options) as client:
        client.push_blob("acme/app", EMPTY_JSON)
        client.put_manifest("acme/app", "v1", raw, OCI_MANIFEST)
    yield registry, sha256_digest(raw)
    registry.stop()


@pytest.mark.servers
def test_plain_http_and_notation_credentials(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    auth_registry: tuple[Registry, str],
    hello: tuple[Path, str],
) -> None:
    """notation's `sign/ls/inspect/verify --plain-http -u U -p P REF` and $NOTATION_USERNAME/$NOTATION_PASSWORD.
    Before: "No such option: --plain-http" and "-p"; the environment was not read."""
    registry, digest = auth_registry
    monkeypatch.setenv("DOCKER_CONFIG", str(hello[0] / "no-docker"))  # no stored credentials to fall back on
    ref = f"{registry.host}/acme/app@{digest}"
    code, _, err = run(capsys, "sign", "--plain-http", "-u", USER, "-p", PASSWORD, ref)
    assert code == 0, err
    code, _, err = run(capsys, "ls", "--plain-http", ref)
    assert (code, err.count("\n")) == (2, 1) and err.endswith("authentication required or credentials refused (401)\n")
    monkeypatch.setenv("NOTATION_USERNAME", USER)
    monkeypatch.setenv("NOTATION_PASSWORD", PASSWORD)
    code, out, err = run(capsys, "ls", "--plain-http", ref)
    assert code == 0, err
    assert out.splitlines()[:2] == [ref, "└── application/vnd.cncf.notary.signature"]
    (hello[0] / "trustpolicy.json").write_text(json.dumps(_policy(["*"])))
    code, out, err = run(capsys, "verify", "--plain-http", f"{registry.host}/acme/app:v1")
    assert (code, out) == (0, f"Successfully verified signature for {ref}\n"), err
    assert err.replace("\n", " ").strip() == TAG_WARNING


def test_verify_lists_signed_user_metadata_as_notation(
    capsys: pytest.CaptureFixture[str], hello: tuple[Path, str]
) -> None:
    """After the success line, notation verify lists the signed user metadata (Go's tabwriter, padding 3); sorted
    by key here, where Go's map order is random."""
    _, digest = hello
    _sign(capsys, digest, "--user-metadata", "team=platform", "-m", "io.example.build=42")
    code, out, _ = run(capsys, "verify", "--oci-layout", f"hello-world@{digest}")
    assert code == 0
    assert out == (
        f"Successfully verified signature for hello-world@{digest}\n\n"
        "The artifact was signed with the following user metadata.\n\n"
        "KEY                VALUE      \n"
        "io.example.build   42         \n"
        "team               platform   \n"
    )


def test_key_ls_is_notations_name_for_key_list(capsys: pytest.CaptureFixture[str], hello: tuple[Path, str]) -> None:
    """`notation key ls` (before: "No such command 'ls'"); the default key is marked."""
    code, listed, _ = run(capsys, "key", "list")
    assert code == 0
    code, out, _ = run(capsys, "key", "ls")
    assert (code, out) == (0, listed)
    assert out.splitlines()[1].startswith("* tester\t")


def test_cert_add_and_ls_as_notation(capsys: pytest.CaptureFixture[str], hello: tuple[Path, str],
                                     tmp_path: Path) -> None:  # fmt: skip
    """`notation cert add --type ca --store NAME FILE…` and `notation cert ls` on $NOTATION_CONFIG's trust store; a
    signature by the added root then verifies. Before: "No such command 'add'"."""
    config, digest = hello
    other = tmp_path / "other-notation"
    generate_test_key("partner", other, key_type="ec-p256", make_default=True)
    partner_cert = other / "localkeys" / "partner.crt"
    code, out, err = run(capsys, "cert", "add", "--type", "ca", "--store", "partners", str(partner_cert))
    assert code == 0, err
    stored = config / "truststore" / "x509" / "ca" / "partners" / "partner.crt"
    assert out == f"added {stored} to trust store ca:partners\n"
    assert stored.read_bytes() == partner_cert.read_bytes()
    code, out, _ = run(capsys, "cert", "ls")
    assert out.splitlines() == [str(stored), str(config / "truststore" / "x509" / "ca" / "tester" / "tester.crt")]
    code, out, _ = run(capsys, "cert", "ls", "--type", "ca", "--store", "partners")
    assert out.splitlines() == [str(stored)]
    # Added twice, or a file that is no certificate: one line, nothing written.
    code, _, err = run(capsys, "cert", "add", "-t", "ca", "-s", "partners", str(partner_cert))
    assert (code, err) == (2, f"dct2notation: error: {stored}: the trust store ca:partners already holds partner.crt\n")
    junk = tmp_path / "junk.crt"
    junk.write_text("not a certificate")
    code, _, err = run(capsys, "cert", "add", "-t", "tsa", "-s", "x", str(junk))
    assert code == 2 and err.startswith(f"dct2notation: error: {junk}: not a PEM or DER certificate")
    assert not (config / "truststore" / "x509" / "tsa").exists()
    code, _, err = run(capsys, "cert", "add", "-t", "ca", "-s", "../up", str(partner_cert))
    assert (code, err) == (2, 'dct2notation: error: trust store name "../up" is not valid ([a-zA-Z0-9_.-]+)\n')
    # Signed with the partner key, verified with the store just added.
    (config / "trustpolicy.json").write_text(json.dumps(_policy(["local/hello-world"], store="partners")))
    code, _, err = run(capsys, "sign", "--oci-layout", f"hello-world@{digest}", "--key", "partner",
                       "--config-dir", str(other))  # fmt: skip
    assert code == 0, err
    code, out, _ = run(capsys, "verify", "--oci-layout", f"hello-world@{digest}")
    assert (code, out) == (0, f"Successfully verified signature for hello-world@{digest}\n")


def test_attack_cert_add_through_a_planted_store_symlink(capsys: pytest.CaptureFixture[str], hello: tuple[Path, str],
                                                         tmp_path: Path) -> None:  # fmt: skip
    """A store directory swapped for a symlink (to a directory another tool trusts): cert add writes nothing there."""
    config, _ = hello
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (config / "truststore" / "x509" / "signingAuthority").mkdir(parents=True)
    (config / "truststore" / "x509" / "signingAuthority" / "evil").symlink_to(elsewhere, target_is_directory=True)
    cert = config / "localkeys" / "tester.crt"
    code, _, err = run(capsys, "cert", "add", "-t", "signingAuthority", "-s", "evil", str(cert))
    store = config / "truststore" / "x509" / "signingAuthority" / "evil"
    assert (code, err) == (2, f"dct2notation: error: {store}: a trust store directory is a symlink, which Notation "
                              "refuses\n")  # fmt: skip
    assert list(elsewhere.iterdir()) == []
