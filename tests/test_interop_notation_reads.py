"""Signatures the real Notation CLI (v1.3.2) makes, read by this tool; and ORAS lists what we list.

``notation sign`` writes COSE and JWS (its default), with and without an RFC 3161 timestamp and with user metadata,
into docker-registry 2.8 (tag schema) and olareg (Referrers API, ``--force-referrers-tag=false``). Our ``verify``,
``ls``, ``inspect`` and ``check`` reach the verdicts ``notation verify`` reaches, refusals included (a root the policy
does not trust, an identity it does not list, an expired signature, a tampered envelope, missing user metadata).
``oras discover`` lists exactly the signatures ``dct2notation ls`` lists, on both storage paths.

Notation 1.x writes only the legacy signature-manifest form (config.mediaType), so that is the form read here;
the artifact form is read in test_oci_cli.py and judged by Notation in test_interop_notation.py.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from dct2notation.notation.formats import parse_signature_envelope
from dct2notation.oci import EMPTY_JSON, JWS_MEDIA_TYPE, OCI_MANIFEST
from dct2notation.registry.options import RegistryOptions
from dct2notation.registry.reference import parse_reference
from dct2notation.registry.store import RegistryStore, fetch_signatures
from tests.support.images import image_manifest
from tests.support.interop import Estate, build_estate, ours, ours_ok, push_image
from tests.support.peers import Olareg, notation, oras, peer
from tests.support.servers import NotaryServer, Registry
from tests.support.tsa import TestTSA
from tests.test_manifest import as_signed

pytestmark = pytest.mark.servers

MEDIA = {"cose": "application/cose", "jws": JWS_MEDIA_TYPE}


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory,
    notary_server: NotaryServer,
    registry: Registry,
    olareg: Olareg,
    tsa_server: TestTSA,
) -> dict[str, Any]:
    peer("notation")
    root = tmp_path_factory.mktemp("interop-theirs")
    repositories = {
        "dist": f"{registry.host}/{root.name}/dist",
        "olareg": f"{olareg.host}/{root.name}/olareg",
        "checked": f"{registry.host}/{root.name}/checked",
        "tampered": f"{olareg.host}/{root.name}/tampered",
        "ts": f"{olareg.host}/{root.name}/ts",
    }
    # The DCT tag checked:v1 is the image Notation signs below, so that `check` sees both signature kinds on it.
    checked = image_manifest("checked")
    checked_digest = push_image(registry.host, f"{root.name}/checked", "v1", content="checked")
    estate = build_estate(
        root,
        notary_server,
        repositories,
        tsa_root=tsa_server.pki.root_pem,
        targets={"checked": (checked_digest, len(checked))},
        short_lived=("ts",),
    )
    hosts = {"dist": registry.host, "olareg": olareg.host, "ts": olareg.host}
    # Notation signs with the short-lived key first, so that its certificate has expired when the last test runs.
    stamped: dict[str, str] = {}
    for fmt in ("cose", "jws"):
        for label, extra in (("ts", ["--timestamp-url", tsa_server.url]), ("plain", [])):
            repository = repositories["ts"]
            ref = f"{repository}@{push_image(olareg.host, repository.split('/', 1)[1], f'{fmt}-{label}')}"
            if extra:
                extra += ["--timestamp-root-cert", str(tsa_server.pki.root_pem)]
            notation_sign(estate, ref, "shortlived", "--signature-format", fmt, "--force-referrers-tag=false", *extra)
            stamped[f"{fmt}-{label}"] = ref
    return {
        "estate": estate,
        "hosts": hosts,
        "tsa": tsa_server,
        "notary": notary_server.url,
        "checked": f"{repositories['checked']}@{checked_digest}",
        "stamped": stamped,
    }


def notation_sign(estate: Estate, ref: str, key: str, *args: str) -> None:
    done = notation(estate.root / "notation-home").run(
        "sign", "--insecure-registry", "--key", key, *args, ref, env={"NOTATION_CONFIG": str(estate.keys)}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"Successfully signed {ref}"


def notation_verify(estate: Estate, ref: str, *args: str, config: Path | None = None) -> Any:
    return notation(estate.root / "notation-home").run(
        "verify", "--insecure-registry", "--verbose", *args, ref, env={"NOTATION_CONFIG": str(config or estate.policy)}
    )


def our_verify(estate: Estate, ref: str, host: str, *args: str, policy: Path | None = None) -> tuple[int, Any]:
    directory = policy or estate.policy
    done = ours(
        "verify",
        ref,
        "--policy",
        str(directory / "trustpolicy.json"),
        "--truststore",
        str(directory / "truststore"),
        "--insecure-registry",
        host,
        "--json",
        *args,
    )
    return done.returncode, json.loads(done.stdout) if done.stdout else {"error": done.stderr}


def storage_args(storage: str) -> list[str]:
    # Notation 1.3 writes the tag schema unless told it may use the Referrers API.
    return ["--force-referrers-tag=false"] if storage == "olareg" else []


def new_image(setup: dict[str, Any], storage: str, label: str) -> str:
    repository = setup["estate"].repositories[storage]
    return f"{repository}@{push_image(setup['hosts'][storage], repository.split('/', 1)[1], label)}"


def notation_ls(estate: Estate, ref: str) -> list[str]:
    done = notation(estate.root / "notation-home").run("ls", "--insecure-registry", ref)
    assert done.returncode == 0, done.stderr
    return sorted(word for line in done.stdout.splitlines()[1:] for word in line.split() if word.startswith("sha256:"))


def oras_discover(estate: Estate, ref: str) -> list[str]:
    doc = oras(estate.root / "oras-home").json(
        "discover", "--plain-http", "--format", "json", "--artifact-type", "application/vnd.cncf.notary.signature", ref
    )
    return sorted(m["digest"] for m in doc.get("referrers", doc.get("manifests", [])))


def our_ls(ref: str, host: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json.loads(ours_ok("ls", ref, "--json", "--insecure-registry", host))["signatures"]
    return listed


CASES = [
    ("cose", "dist", False),
    ("jws", "dist", False),
    ("cose", "olareg", False),
    ("jws", "olareg", False),
    ("cose", "olareg", True),
    ("jws", "dist", True),
]


@pytest.mark.parametrize(
    ("fmt", "storage", "stamped"), CASES, ids=[f"{f}-{s}-{'ts' if t else 'plain'}" for f, s, t in CASES]
)
def test_notation_signature_read_with_the_same_verdicts(
    setup: dict[str, Any], fmt: str, storage: str, stamped: bool
) -> None:
    estate: Estate = setup["estate"]
    host = setup["hosts"][storage]
    ref = new_image(setup, storage, f"theirs-{fmt}-{stamped}")
    args = ["--signature-format", fmt, "-m", "team=platform", *storage_args(storage)]
    if stamped:
        tsa: TestTSA = setup["tsa"]
        args += ["--timestamp-url", tsa.url, "--timestamp-root-cert", str(tsa.pki.root_pem)]
    notation_sign(estate, ref, "release", *args)

    assert notation_verify(estate, ref).returncode == 0
    code, verdict = our_verify(estate, ref, host)
    assert (code, verdict["verified"], verdict["failedCheck"]) == (0, True, None), verdict
    # User metadata: required and present passes both; required and absent fails both.
    assert notation_verify(estate, ref, "-m", "team=platform").returncode == 0
    assert our_verify(estate, ref, host, "-m", "team=platform")[0] == 0
    refused = notation_verify(estate, ref, "-m", "team=other")
    assert refused.returncode == 1 and "team=other" in refused.stderr, refused.stderr
    code, verdict = our_verify(estate, ref, host, "-m", "team=other")
    assert (code, verdict["failedCheck"]) == (1, "userMetadata")

    listed = our_ls(ref, host)
    assert [s["digest"] for s in listed] == notation_ls(estate, ref) == oras_discover(estate, ref)
    assert [(s["form"], s["envelopeMediaType"]) for s in listed] == [("legacy", MEDIA[fmt])]
    (details,) = json.loads(ours_ok("inspect", ref, "--json", "--insecure-registry", host))["signatures"]
    assert "error" not in details
    assert (details["mediaType"], details["timestamped"], details["userMetadata"]) == (
        MEDIA[fmt],
        stamped,
        {"team": "platform"},
    )
    assert details["signingAgent"].startswith("notation-go/1.3.2")
    assert details["signatureAlgorithm"] == "ES256"
    # `inspect -o json` and `ls` print what notation 1.3.2 prints for the same signature, timestamps included: its
    # "Signatures" casing and key order (issue #16).
    theirs = notation(estate.root / "notation-home").json("inspect", "-o", "json", "--insecure-registry", ref)
    mine = json.loads(ours_ok("inspect", "-o", "json", "--plain-http", ref))
    assert json.dumps(mine, indent=1, sort_keys=True) == json.dumps(theirs, indent=1, sort_keys=True)
    done = notation(estate.root / "notation-home").run("ls", "--insecure-registry", ref)
    assert ours_ok("ls", "--plain-http", ref) == done.stdout
    # verify by tag, both reading $NOTATION_CONFIG: the same success line and the same warning.
    tagged = f"{ref.partition('@')[0]}:theirs-{fmt}-{stamped}"
    config = {"NOTATION_CONFIG": str(estate.policy)}
    done = notation(estate.root / "notation-home").run("verify", "--insecure-registry", tagged, env=config)
    mine = ours("verify", "--plain-http", tagged, env=config)
    assert (mine.returncode, mine.stdout, mine.stderr) == (done.returncode, done.stdout, done.stderr)
    assert mine.returncode == 0 and mine.stdout.startswith(f"Successfully verified signature for {ref}\n\n")
    assert mine.stdout.endswith("\nKEY    VALUE      \nteam   platform   \n")
    assert "Warning: Always verify" in mine.stderr


@pytest.mark.parametrize("storage", ["dist", "olareg"])
def test_oras_discover_lists_exactly_our_signatures(setup: dict[str, Any], storage: str) -> None:
    """Ours (COSE legacy, COSE artifact, JWS) and Notation's on one subject: oras discover == dct2notation ls."""
    estate: Estate = setup["estate"]
    host = setup["hosts"][storage]
    ref = new_image(setup, storage, "listed")
    for fmt, form in (("cose", "legacy"), ("cose", "artifact"), ("jws", "legacy")):
        args = ["sign", ref, "--key", "release", "--config-dir", str(estate.keys), "--insecure-registry", host]
        ours_ok(*args, "--signature-format", fmt, "--signature-manifest", form)
    notation_sign(estate, ref, "release", *storage_args(storage))
    listed = our_ls(ref, host)
    assert len(listed) == 4
    assert sorted(s["digest"] for s in listed) == oras_discover(estate, ref)
    assert sorted(s["digest"] for s in listed) == notation_ls(estate, ref)


def test_check_batch_and_signoff_accept_the_notation_signature(setup: dict[str, Any], tmp_path: Path) -> None:
    """The DCT tag signed by plain `notation sign` (JWS): `check --require both` passes, the batch reuses that
    signature instead of signing again (same certificate), and the sign-off bundle is `ready` and verifies."""
    estate: Estate = setup["estate"]
    ref, gun, host = setup["checked"], estate.guns["checked"], setup["hosts"]["dist"]
    notation_sign(estate, ref, "release")  # JWS, Notation's default
    mapping = ["--registry-map", f"{gun}={estate.repositories['checked']}", "--insecure-registry", host]
    policy = ["--policy", str(estate.policy / "trustpolicy.json"), "--truststore", str(estate.policy / "truststore")]
    check = ours("check", gun, "--server", setup["notary"], *policy, *mapping, "--require", "both", "--json")
    assert check.returncode == 0, check.stderr
    assert [(t["tag"], t["status"]) for t in json.loads(check.stdout)["tags"]] == [("v1", "ok")]
    (tmp_path / "check.json").write_text(check.stdout)

    ours_ok("archive", gun, "--server", setup["notary"], "-o", str(tmp_path / "archive"))
    (tmp_path / "inventory.json").write_text(ours_ok("inventory", gun, "--server", setup["notary"], "--json"))
    plan = tmp_path / "plan.json"
    signers = str(estate.root / "signers.toml")
    ours_ok("plan", str(tmp_path / "inventory.json"), "--signers", signers, *mapping, "-o", str(plan))
    journal = tmp_path / "journal.db"
    signed = json.loads(
        ours_ok(
            "sign",
            str(plan),
            "--inventory",
            str(tmp_path / "inventory.json"),
            "--config-dir",
            str(estate.keys),
            "--insecure-registry",
            host,
            "--journal",
            str(journal),
        )
    )
    assert signed["counts"] == {"reused": 1}, signed
    (listed,) = our_ls(ref, host)
    assert (signed["results"][0]["signature"], listed["envelopeMediaType"]) == (listed["digest"], JWS_MEDIA_TYPE)

    bundle = tmp_path / "bundle"
    done = ours(
        "signoff",
        "--archive", str(tmp_path / "archive"),
        "--inventory", str(tmp_path / "inventory.json"),
        "--plan", str(plan),
        "--journal", str(journal),
        "--policy-dir", str(estate.policy),
        "--check-json", str(tmp_path / "check.json"),
        "--insecure-registry", host,
        "-o", str(bundle),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    verified = ours("signoff", "verify", str(bundle))
    assert verified.returncode == 0, verified.stderr + verified.stdout


# --- refusals: Notation's and ours on the same signature -------------------------------------------------------------


def test_untrusted_root_refused_by_both(setup: dict[str, Any]) -> None:
    estate: Estate = setup["estate"]
    ref = new_image(setup, "dist", "stranger")
    notation_sign(estate, ref, "stranger")
    done = notation_verify(estate, ref)
    assert done.returncode == 1 and "authenticity validation failed" in done.stderr
    code, verdict = our_verify(estate, ref, setup["hosts"]["dist"])
    assert (code, verdict["failedCheck"]) == (1, "authenticity")


def test_wrong_identity_refused_by_both(setup: dict[str, Any], tmp_path: Path) -> None:
    """The emitted trust store, but a statement whose trusted identity is someone else."""
    estate: Estate = setup["estate"]
    policy = tmp_path / "policy"
    shutil.copytree(estate.policy, policy)
    document = json.loads((policy / "trustpolicy.json").read_text())
    for statement in document["trustPolicies"]:
        statement["trustedIdentities"] = ["x509.subject: C=US, ST=WA, O=Notary, CN=somebody-else"]
    (policy / "trustpolicy.json").write_text(json.dumps(document))
    ref = new_image(setup, "dist", "identity")
    notation_sign(estate, ref, "release")
    done = notation_verify(estate, ref, config=policy)
    assert done.returncode == 1 and "authenticity validation failed" in done.stderr, done.stderr
    code, verdict = our_verify(estate, ref, setup["hosts"]["dist"], policy=policy)
    assert (code, verdict["failedCheck"]) == (1, "authenticity")
    assert "does not match the X.509 trusted identities" in verdict["reason"]


def test_expired_signature_refused_by_both(setup: dict[str, Any]) -> None:
    estate: Estate = setup["estate"]
    ref = new_image(setup, "olareg", "expiring")
    notation_sign(estate, ref, "release", "--signature-format", "cose", "--expiry", "1s", *storage_args("olareg"))
    time.sleep(2.1)
    done = notation_verify(estate, ref)
    assert done.returncode == 1 and "expiry validation failed" in done.stderr, done.stderr
    code, verdict = our_verify(estate, ref, setup["hosts"]["olareg"])
    assert (code, verdict["failedCheck"]) == (1, "expiry")


@pytest.mark.parametrize("fmt", ["cose", "jws"])
def test_tampered_notation_envelope_refused_by_both(setup: dict[str, Any], fmt: str) -> None:
    """Someone with push rights copies the image to another repository and attaches Notation's envelope with one
    payload annotation changed: the only signature there no longer verifies."""
    estate: Estate = setup["estate"]
    host = setup["hosts"]["olareg"]
    source = new_image(setup, "olareg", f"tamper-{fmt}")
    notation_sign(estate, source, "release", "--signature-format", fmt, "-m", "team=platform", *storage_args("olareg"))
    repository = estate.repositories["olareg"].split("/", 1)[1]
    store = RegistryStore(host, RegistryOptions(insecure_registries=frozenset({host})))
    try:
        subject = store.resolve(parse_reference(source))
        (stored,) = fetch_signatures(store, repository, subject.digest)
        original = parse_signature_envelope(stored.envelope, stored.manifest.envelope.media_type)
        envelope = stored.envelope.replace(b"platform", b"attacker") if fmt == "cose" else _tamper_jws(stored.envelope)
        assert envelope != stored.envelope
        copy = estate.repositories["tampered"].split("/", 1)[1]
        raw, _ = store.client.get_manifest(repository, subject.digest)
        store.client.push_blob(copy, EMPTY_JSON)
        store.client.put_manifest(copy, subject.digest, raw, OCI_MANIFEST)
        assert original.signing_time is not None
        tampered = as_signed(envelope, original.cert_chain, original.signing_time, stored.manifest.envelope.media_type)
        store.push_signature(copy, subject, tampered, "legacy")
    finally:
        store.close()
    ref = f"{host}/{copy}@{subject.digest}"
    done = notation_verify(estate, ref)
    assert done.returncode == 1 and "integrity validation failed" in done.stderr, done.stderr
    code, verdict = our_verify(estate, ref, host)
    assert (code, verdict.get("failedCheck")) == (1, "integrity"), verdict


def _tamper_jws(raw: bytes) -> bytes:
    import base64

    envelope = json.loads(raw)
    payload = base64.urlsafe_b64decode(envelope["payload"] + "=" * (-len(envelope["payload"]) % 4))
    envelope["payload"] = base64.urlsafe_b64encode(payload.replace(b"platform", b"attacker")).rstrip(b"=").decode()
    return json.dumps(envelope).encode()


def test_our_jws_is_laid_out_as_notation_lays_it_out(setup: dict[str, Any]) -> None:
    """`notation sign --signature-format jws` and our JWS for the same subject, key, user metadata and expiry: the
    protected header, the payload and the unprotected header are the same bytes once the times are aligned."""
    import base64
    import datetime as dt

    from dct2notation.config import FixedClock
    from dct2notation.keys.resolve import load_signing_key
    from dct2notation.notation.jws import sign_jws_envelope

    estate: Estate = setup["estate"]
    host = setup["hosts"]["olareg"]
    ref = new_image(setup, "olareg", "layout-compare")
    notation_sign(
        estate,
        ref,
        "release",
        "--signature-format",
        "jws",
        "-m",
        "team=a<b",
        "--expiry",
        "24h",
        *storage_args("olareg"),
    )
    repository = estate.repositories["olareg"].split("/", 1)[1]
    store = RegistryStore(host, RegistryOptions(insecure_registries=frozenset({host})))
    try:
        subject = store.resolve(parse_reference(ref))
        (stored,) = fetch_signatures(store, repository, subject.digest)
    finally:
        store.close()
    theirs = json.loads(stored.envelope)
    env = parse_signature_envelope(stored.envelope, JWS_MEDIA_TYPE)
    assert env.signing_time is not None and env.expiry is not None
    key = load_signing_key("release", estate.keys)
    ours_signed = sign_jws_envelope(
        subject,
        key,
        clock=FixedClock(env.signing_time),
        expiry=env.expiry,
        user_metadata={"team": "a<b"},
        signing_agent="notation-go/1.3.2",
    )
    mine = json.loads(ours_signed.raw)

    def decoded(doc: dict[str, Any], name: str) -> bytes:
        return base64.urlsafe_b64decode(doc[name] + "=" * (-len(doc[name]) % 4))

    assert list(mine) == list(theirs)
    assert decoded(mine, "protected") == decoded(theirs, "protected")
    assert decoded(mine, "payload") == decoded(theirs, "payload")
    assert mine["header"] == theirs["header"]
    assert list(mine["header"]) == list(theirs["header"])
    assert env.expiry - env.signing_time == dt.timedelta(hours=24)


def test_zz_notation_timestamped_signatures_after_the_certificate_expired(setup: dict[str, Any]) -> None:
    """Runs last: Notation's own timestamped signatures (COSE, JWS) outlive the short-lived certificate under the
    emitted tsa: store, its unstamped ones do not, and our verify agrees with `notation verify` on all four."""
    estate: Estate = setup["estate"]
    wait = (estate.short_lived_until - dt.datetime.now(dt.UTC)).total_seconds() + 1.5
    if wait > 0:
        time.sleep(wait)
    for label, ref in sorted(setup["stamped"].items()):
        expected = 0 if label.endswith("-ts") else 1
        theirs = notation_verify(estate, ref)
        assert theirs.returncode == expected, f"{label}: {theirs.stderr}"
        code, verdict = our_verify(estate, ref, setup["hosts"]["ts"])
        assert code == expected, f"{label}: {verdict}"
        if expected:
            assert "authenticTimestamp validation failed" in theirs.stderr
            assert verdict["failedCheck"] == "authenticTimestamp"
