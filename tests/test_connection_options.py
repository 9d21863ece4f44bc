"""One set of connection options for every command that reaches a registry or a notary server (#15).

The estate is what a production one looks like: notary-server with TLS and token auth, docker-registry with TLS
and htpasswd, both under a throwaway CA that is *not* in any trust store. `--ca-file` (or docker's
``certs.d/HOST/ca.crt``), `-u` and `--password-stdin` reach both, in `check`, `plan`, `sign`, `ls` and `signoff`
alike; refused credentials are exit 2 everywhere; plain HTTP to a TLS registry gets a hint.
"""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dct2notation.cli import main
from dct2notation.keys.testcert import generate_test_key
from dct2notation.oci import EMPTY_JSON, OCI_MANIFEST, sha256_digest
from dct2notation.registry.client import RegistryClient
from dct2notation.registry.options import Basic, RegistryOptions
from tests.support.images import image_manifest
from tests.support.notary_builders import TokenEndpoint
from tests.support.servers import NotaryServer, Registry
from tests.support.tls_estate import tls_estate

pytestmark = pytest.mark.servers

USER, PASSWORD = "alice", "s3cret-pw"
GUN = "registry.example/acme/app"


@dataclass
class Estate:
    notary: NotaryServer
    token: TokenEndpoint
    registry: Registry
    ca: Path
    digest: str
    size: int
    notation: Path
    work: Path

    @property
    def ref(self) -> str:
        return f"{self.registry.host}/acme/app@{self.digest}"

    @property
    def mapping(self) -> str:
        return f"registry.example={self.registry.host}"


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    work = tmp_path_factory.mktemp("tls-estate")
    with tls_estate(work, USER, PASSWORD) as servers:
        notary, registry, token, ca = servers.notary, servers.registry, servers.token, servers.ca
        raw = image_manifest("tls-estate")
        options = RegistryOptions(ca_file=ca, credentials=Basic(USER, PASSWORD))
        with RegistryClient(registry.host, options) as client:
            client.push_blob("acme/app", EMPTY_JSON)
            client.put_manifest("acme/app", "v1", raw, OCI_MANIFEST)
        digest = sha256_digest(raw)
        token.allow_anonymous = True
        client_ = notary.client(work / "trust")
        client_.run("init", GUN, input="\n" * 10)
        client_.addhash(GUN, "v1", len(raw), digest.removeprefix("sha256:"))
        client_.run("publish", GUN, input="\n" * 10)
        token.allow_anonymous = False
        notation = work / "notation"
        generate_test_key("tester", notation, key_type="ec-p256", make_default=True)
        yield Estate(notary, token, registry, ca, digest, len(raw), notation, work)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No developer ~/.docker, no system certs.d: only what a test gives is trusted or presented."""
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    monkeypatch.setenv("DCT2NOTATION_CERTS_D", str(tmp_path / "certs.d"))
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    return tmp_path


def run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = ""
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def creds(*, ca: Path | None) -> list[str]:
    return ([] if ca is None else ["--ca-file", str(ca)]) + ["-u", USER, "--password-stdin"]


def inventory_file(estate: Estate, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Path:
    code, out, err = run(capsys, monkeypatch, "inventory", GUN, "--server", estate.notary.url, "--json",
                         *creds(ca=estate.ca), stdin=PASSWORD + "\n")  # fmt: skip
    assert code == 0, err
    path = estate.work / "inventory.json"
    path.write_text(out)
    return path


def signers_file(estate: Estate) -> Path:
    path = estate.work / "signers.toml"
    cert = estate.notation / "localkeys" / "tester.crt"
    path.write_text(f'[[signer]]\ngun = "registry.example/*"\nrole = "*"\nkey = "tester"\ncert_file = "{cert}"\n')
    return path


def policy_dir(estate: Estate, inventory: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = estate.work / "policy"
    if not out.exists():
        argv = ["policy", str(inventory), "--signers", str(signers_file(estate)), "--registry-map", estate.mapping]
        assert main([*argv, "-o", str(out)]) == 0
        capsys.readouterr()
    return out


def test_check_reaches_a_tls_token_notary_and_a_tls_htpasswd_registry(
    estate: Estate, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check` had no --ca-file, -u or --password-stdin: the runbooks' check could not run on this estate."""
    policy = policy_dir(estate, inventory_file(estate, capsys, monkeypatch), capsys)
    code, out, err = run(
        capsys, monkeypatch, "check", GUN, "--server", estate.notary.url, *creds(ca=estate.ca),
        "--registry-map", estate.mapping, "--policy", str(policy / "trustpolicy.json"),
        "--truststore", str(policy / "truststore"), "--require", "either", "--json", "--no-table",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert [(t["tag"], t["status"]) for t in doc["tags"]] == [("v1", "notation-missing")], json.dumps(doc["tags"])


def test_plan_preflight_and_sign_plan_on_the_tls_registry_with_credentials(
    estate: Estate, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = inventory_file(estate, capsys, monkeypatch)
    plan = estate.work / "plan-creds.json"
    code, _, err = run(capsys, monkeypatch, "plan", str(inventory), "--signers", str(signers_file(estate)),
                       "--registry-map", estate.mapping, "-o", str(plan), *creds(ca=estate.ca),
                       stdin=PASSWORD + "\n")  # fmt: skip
    assert code == 0, err
    assert "pre-flight {'subjects': 1, 'jobs': 1, 'findings': {}}" in err


def test_refused_credentials_are_exit_2_in_every_command(
    estate: Estate, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch pre-flight said 3 (a remote failure) where ls, verify and check say 2 (fix your input)."""
    inventory = inventory_file(estate, capsys, monkeypatch)
    plan = estate.work / "plan-noflight.json"
    code, _, err = run(capsys, monkeypatch, "plan", str(inventory), "--signers", str(signers_file(estate)),
                       "--registry-map", estate.mapping, "--no-preflight", "-o", str(plan))  # fmt: skip
    assert code == 0, err
    wrong = "wrong-pw\n"
    code, _, err = run(capsys, monkeypatch, "sign", str(plan), "--inventory", str(inventory),
                       "--config-dir", str(estate.notation),
                       "--journal", str(estate.work / "j.db"), *creds(ca=estate.ca), stdin=wrong)  # fmt: skip
    assert (code, err.count("\n")) == (2, 1), err
    assert f"pre-flight {estate.registry.host}: cannot read and write {estate.registry.host}/acme/app:" in err
    assert err.endswith("credentials refused (401 after authenticating)\n")
    code, _, err = run(capsys, monkeypatch, "ls", estate.ref, *creds(ca=estate.ca), stdin=wrong)
    assert (code, err.count("\n")) == (2, 1), err
    code, _, err = run(capsys, monkeypatch, "inventory", GUN, "--server", estate.notary.url, *creds(ca=estate.ca),
                       stdin=wrong)  # fmt: skip
    assert (code, err) == (2, f"dct2notation: error: {estate.notary.url}: token service {estate.token.realm} "
                              "refused the credentials (401)\n")  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [
        ["inventory", GUN, "--server", "https://127.0.0.1:9"],
        ["archive", GUN, "--server", "https://127.0.0.1:9", "-o", "out"],
        ["check", GUN, "--server", "https://127.0.0.1:9", "--policy", "p.json", "--truststore", "."],
        ["ls", "127.0.0.1:9/acme/app@sha256:" + "0" * 64],
        ["signoff", "--archive", "a", "--inventory", "i", "--plan", "p", "--policy-dir", "d", "-o", "o"],
        ["plan", "i.json", "--signers", "s.toml", "-o", "p.json"],
    ],
    ids=["inventory", "archive", "check", "ls", "signoff", "plan"],
)
def test_username_without_password_stdin_is_refused(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`-u alice` alone was silently ignored (anonymous, or docker's stored credentials) by inventory and archive."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.json").write_text("{}")
    code, out, err = run(capsys, monkeypatch, *argv, "-u", "alice")
    assert (code, out) == (2, "")
    if argv[0] == "ls":  # Notation's commands take -p/$NOTATION_PASSWORD too, as notation does
        assert err == "dct2notation: error: --username (or $NOTATION_USERNAME) needs --password, --password-stdin or " \
                      "$NOTATION_PASSWORD\n"  # fmt: skip
        return
    assert err == "dct2notation: error: --username needs --password-stdin (passwords are never taken as arguments)\n"


def test_docker_certs_d_ca_is_trusted_without_ca_file(
    estate: Estate, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    """httpx's certifi bundle was used: /etc/docker/certs.d/HOST/ca.crt (what docker trusts) was not."""
    code, _, err = run(capsys, monkeypatch, "ls", estate.ref, *creds(ca=None), stdin=PASSWORD + "\n")
    assert code == 2
    assert "the certificate is not trusted (use --ca-file)" in err
    host_dir = isolated / "certs.d" / estate.registry.host
    host_dir.mkdir(parents=True)
    (host_dir / "ca.crt").write_bytes(estate.ca.read_bytes())
    code, out, err = run(capsys, monkeypatch, "ls", estate.ref, "--json", *creds(ca=None), stdin=PASSWORD + "\n")
    assert code == 0, err
    listed = json.loads(out)
    assert (listed["subject"]["digest"], listed["signatures"]) == (estate.digest, [])


def test_os_trust_store_directory_is_trusted_without_ca_file(
    estate: Estate, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    """The OS store (OpenSSL's hashed CA directory, here named by SSL_CERT_DIR) is trusted, not certifi's bundle; it
    is read by hash lookup, and a context made before the store changed is not reused for it."""
    code, _, err = run(capsys, monkeypatch, "ls", estate.ref, *creds(ca=None), stdin=PASSWORD + "\n")
    assert (code, "the certificate is not trusted (use --ca-file)" in err) == (2, True)
    store = isolated / "os-store"
    store.mkdir()
    (store / "estate-ca.pem").write_bytes(estate.ca.read_bytes())
    subprocess.run(["openssl", "rehash", str(store)], check=True, capture_output=True)
    assert any(len(p.name) == 10 and p.name.endswith(".0") for p in store.iterdir())
    monkeypatch.setenv("SSL_CERT_DIR", str(store))
    code, out, err = run(capsys, monkeypatch, "ls", estate.ref, "--json", *creds(ca=None), stdin=PASSWORD + "\n")
    assert code == 0, err
    assert json.loads(out)["subject"]["digest"] == estate.digest


def test_docker_config_tls_dir_is_trusted_for_the_notary_server(
    estate: Estate, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    """`docker trust` trusts ~/.docker/tls/NOTARY_HOST/*.crt for the notary server; so does inventory."""
    host_dir = isolated / "docker-config" / "tls" / estate.notary.host
    host_dir.mkdir(parents=True)
    (host_dir / "root-ca.crt").write_bytes(estate.ca.read_bytes())
    code, out, err = run(capsys, monkeypatch, "inventory", GUN, "--server", estate.notary.url, "--json",
                         *creds(ca=None), stdin=PASSWORD + "\n")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["repositories"][0]["trusted_tags"][0]["digest"] == estate.digest


def test_plain_http_to_a_tls_registry_says_so(
    estate: Estate, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runbooks' --insecure-registry on a TLS registry was `refused (400)` with no hint."""
    host = estate.registry.host
    code, _, err = run(capsys, monkeypatch, "ls", estate.ref, "--insecure-registry", host, *creds(ca=None),
                       stdin=PASSWORD + "\n")  # fmt: skip
    assert code == 2
    assert err.endswith(f"refused (400): {host} speaks TLS; drop --insecure-registry {host} "
                        "(add --ca-file FILE if its CA is not in the OS trust store)\n")  # fmt: skip
    assert err.count("\n") == 1


def test_plain_http_to_a_tls_notary_server_says_so(
    estate: Estate, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = estate.notary.url.replace("https://", "http://")
    code, _, err = run(capsys, monkeypatch, "inventory", GUN, "--server", plain)
    assert code == 2
    assert err == (f"dct2notation: error: {plain}: {GUN}: root.json: refused (400): the server speaks TLS; use "
                   f"https://{estate.notary.host} (with --ca-file FILE if its CA is not in the OS trust store)"
                   "\n")  # fmt: skip
