"""Reuse only a real signature (issue 14 item 4): a rerun reuses a listed signature only if its manifest exists, names
this subject, and its envelope verifies with the job's certificate, against real distribution 2.8."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import pytest

from dct2notation.cli.migrate import sign_plan
from dct2notation.config import DEFAULT_LIMITS, SystemClock
from dct2notation.keys.resolve import load_signing_key
from dct2notation.keys.testcert import generate_test_key
from dct2notation.migrate.plan import Job, Plan
from dct2notation.notation.envelope import sign_envelope
from dct2notation.notation.manifest import referrers_index, referrers_tag, thumbprints
from dct2notation.oci import EMPTY_JSON, OCI_INDEX, OCI_MANIFEST, THUMBPRINT_ANNOTATION, Descriptor, sha256_digest
from dct2notation.registry.client import RegistryClient
from dct2notation.registry.options import RegistryOptions
from dct2notation.registry.store import RegistryStore
from tests.support.images import image_manifest
from tests.support.plans import save_bound
from tests.support.servers import Registry

_ids = itertools.count()


@pytest.fixture(scope="module")
def notation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = tmp_path_factory.mktemp("notation-reuse")
    generate_test_key("alpha", config, key_type="ec-p256", make_default=True)
    generate_test_key("gamma", config, key_type="ec-p256")
    return config


def _options(host: str) -> RegistryOptions:
    return RegistryOptions(insecure_registries=frozenset({host}))


def _subjects(host: str, repo: str, count: int) -> list[Descriptor]:
    out = []
    with RegistryClient(host, _options(host)) as client:
        client.push_blob(repo, EMPTY_JSON)
        for n in range(count):
            raw = image_manifest(f"{repo}-{n}")
            client.put_manifest(repo, f"v{n}", raw, OCI_MANIFEST)
            out.append(Descriptor(OCI_MANIFEST, sha256_digest(raw), len(raw)))
    return out


def _run(host: str, repo: str, subject: Descriptor, config: Path, work: Path, journal: str) -> dict[str, object]:
    job = Job(f"{host}/{repo}", subject.digest, subject.size, "alpha", "g", "targets", ("v0",), "m-reuse", OCI_MANIFEST)
    save_bound(Plan("m-reuse", [job]), work / "plan.json")
    code = sign_plan(
        plan=work / "plan.json",
        inventory=work / "inventory.json",
        config_dir=config,
        registry_options=_options(host),
        journal=work / journal,
        progress=False,
    )
    assert code == 0
    return {"code": code}


def _result(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert isinstance(result, dict)
    return result


def _listed(host: str, repo: str, digest: str) -> list[str]:
    store = RegistryStore(host, _options(host))
    try:
        return [d.digest for d in store.list_signatures(repo, digest)]
    finally:
        store.close()


def _exists(host: str, repo: str, digest: str) -> bool:
    with RegistryClient(host, _options(host)) as client:
        return client.head_manifest(repo, digest) is not None


def _alpha_thumbs(config: Path) -> list[str]:
    return thumbprints(load_signing_key("alpha", config, DEFAULT_LIMITS).certificate_chain())


def test_attack_reuse_of_a_deleted_signature_manifest(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The index still lists our earlier signature but its manifest was deleted: old HEAD said `reused`, and no
    signature existed."""
    repo = f"reuse/gone{next(_ids)}"
    (subject,) = _subjects(registry.host, repo, 1)
    _run(registry.host, repo, subject, notation_dir, tmp_path, "first.sqlite")
    first = _result(capsys)
    assert first["state"] == "signed"
    with RegistryClient(registry.host, _options(registry.host)) as client:
        assert client.delete_manifest(repo, str(first["signature"]))
    _run(registry.host, repo, subject, notation_dir, tmp_path, "second.sqlite")
    out, err = capsys.readouterr()
    (second,) = json.loads(out)["results"]
    assert second["state"] == "signed"
    assert second["signature"] != first["signature"]
    assert _exists(registry.host, repo, str(second["signature"]))
    # Distribution refuses an index naming a deleted manifest, so the dangling entry is not carried on, and said so.
    assert _listed(registry.host, repo, subject.digest) == [second["signature"]]
    assert (
        f"Warning: referrers index {repo}:{referrers_tag(subject.digest)} listed manifests that no longer exist, "
        f"not kept: {first['signature']}" in err.splitlines()
    )


def test_attack_reuse_of_a_forged_thumbprint_annotation(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An index entry that carries our certificate's thumbprint annotation over another signer's manifest."""
    repo = f"reuse/forged{next(_ids)}"
    (subject,) = _subjects(registry.host, repo, 1)
    gamma = load_signing_key("gamma", notation_dir, DEFAULT_LIMITS)
    signed = sign_envelope(subject, gamma, clock=SystemClock())
    api_only = RegistryStore(registry.host, dataclasses.replace(_options(registry.host), referrers="api"))
    try:
        real = api_only.push_signature(repo, subject, signed)
    finally:
        api_only.close()
    forged = dataclasses.replace(
        real, annotations={**(real.annotations or {}), THUMBPRINT_ANNOTATION: json.dumps(_alpha_thumbs(notation_dir))}
    )
    with RegistryClient(registry.host, _options(registry.host)) as client:
        client.put_manifest(repo, referrers_tag(subject.digest), referrers_index([forged]), OCI_INDEX)
    _run(registry.host, repo, subject, notation_dir, tmp_path, "journal.sqlite")
    summary = json.loads(capsys.readouterr().out)
    (result,) = summary["results"]
    assert result["state"] == "signed"
    assert result["signature"] != real.digest
    assert _listed(registry.host, repo, subject.digest) == [real.digest, result["signature"]]
    # Listed before ours with our thumbprints, the forged entry does not make ours a twin to unlist either: the
    # reconciliation pass takes a winner only after it verified as a real signature by this certificate.
    assert summary["reconciliation"]["counts"] == {}


def test_attack_reuse_of_a_signature_made_for_another_subject(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Our real signature of subject B copied into subject A's index: it names B, so A is signed."""
    repo = f"reuse/other{next(_ids)}"
    a, b = _subjects(registry.host, repo, 2)
    alpha = load_signing_key("alpha", notation_dir, DEFAULT_LIMITS)
    signed = sign_envelope(b, alpha, clock=SystemClock())
    store = RegistryStore(registry.host, _options(registry.host))
    try:
        of_b = store.push_signature(repo, b, signed)
    finally:
        store.close()
    with RegistryClient(registry.host, _options(registry.host)) as client:
        client.put_manifest(repo, referrers_tag(a.digest), referrers_index([of_b]), OCI_INDEX)
    _run(registry.host, repo, a, notation_dir, tmp_path, "journal.sqlite")
    result = _result(capsys)
    assert result["state"] == "signed"
    assert result["signature"] != of_b.digest


def test_a_real_earlier_signature_is_reused_with_a_fresh_journal(
    registry: Registry, notation_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = f"reuse/real{next(_ids)}"
    (subject,) = _subjects(registry.host, repo, 1)
    _run(registry.host, repo, subject, notation_dir, tmp_path, "first.sqlite")
    first = _result(capsys)
    _run(registry.host, repo, subject, notation_dir, tmp_path, "second.sqlite")
    second = _result(capsys)
    assert (second["state"], second["signature"]) == ("reused", first["signature"])
    assert _listed(registry.host, repo, subject.digest) == [first["signature"]]
