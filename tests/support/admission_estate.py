"""A small estate for the admission tests, built without servers: four repositories, three statements.

a ({alice, rel}) and b ({rel}) share rel's root, kms's chain ends in a CA root, c (admin) has a root of its own; every
statement also trusts one TSA root. Connaisseur gets two DCT repositories, one of them moved to another registry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dct2notation.cli import main
from dct2notation.keys.testcert import generate_test_key
from dct2notation.migrate.admission.base import DctRepository
from dct2notation.migrate.policy import AdmissionOptions, Emission, build_emission, write_emission
from dct2notation.migrate.signers import load_signers
from dct2notation.oci import EMPTY_JSON, OCI_MANIFEST, sha256_digest
from dct2notation.registry.client import RegistryClient
from dct2notation.registry.options import RegistryOptions
from tests.support.images import image_manifest
from tests.support.plugin_pki import make_chain

LEVELS = ("strict", "permissive", "audit")
DIGEST = "sha256:" + "1" * 64


def make_keys(config: Path) -> Path:
    """Test keys, a KMS chain, a TSA root and signers.toml mapping them, in one Notation config directory."""
    for name in ("rel", "alice", "admin"):
        generate_test_key(name, config, key_type="ec-p256", days=2)
    chain = make_chain()  # a leaf under an intermediate and a CA root: Kyverno accepts anything that root issues
    (config / "kms-chain.crt").write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain.chain))
    tsa = make_chain()
    (config / "tsa-root.crt").write_bytes(tsa.chain[-1].public_bytes(serialization.Encoding.PEM))
    (config / "signers.toml").write_text(
        '[[signer]]\ngun = "reg.example/c"\nrole = "targets"\nkey = "admin"\n\n'
        '[[signer]]\ngun = "reg.example/kms"\nplugin = "kms"\nkey_id = "k"\ncert_file = "kms-chain.crt"\n\n'
        '[[signer]]\ngun = "reg.example/*"\nrole = "targets/releases"\nkey = "rel"\n\n'
        '[[signer]]\ngun = "reg.example/*"\nrole = "targets/alice"\nkey = "alice"\n'
    )
    return config


def tag(name: str, role: str) -> dict[str, Any]:
    return {"tag": name, "digest": DIGEST, "size": 1, "role": role}


def inventory() -> dict[str, Any]:
    release = {"targets/releases": [tag("v1", "targets/releases")]}
    return {
        "evaluated_at": "2026-01-01T00:00:00Z",
        "repositories": [
            {"gun": "reg.example/a", "trusted_tags": [tag("v1", "targets/releases")],
             "role_targets": {**release, "targets/alice": [tag("v1", "targets/alice")]}},
            {"gun": "reg.example/b", "trusted_tags": [tag("v1", "targets/releases")], "role_targets": release},
            {"gun": "reg.example/c", "trusted_tags": [tag("v1", "targets")], "role_targets": {}},
            {"gun": "reg.example/kms", "trusted_tags": [tag("v1", "targets")], "role_targets": {}},
        ],
    }  # fmt: skip


def emission(keys: Path, level: str) -> Emission:
    emitted = build_emission(inventory(), load_signers(keys / "signers.toml"), level=level, config_dir=keys)  # type: ignore[arg-type]
    tsa_root = x509.load_pem_x509_certificate((keys / "tsa-root.crt").read_bytes())
    emitted.tsa_roots = {"tsa-root": tsa_root}
    return emitted


def dct() -> tuple[DctRepository, ...]:
    key = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"
    return (
        DctRepository("reg.example/a", "reg.example/a", key, ("releases",)),
        DctRepository("reg.example/c", "mirror.example/c", key, ()),
    )


def emit(keys: Path, out: Path, level: str, **options: Any) -> Path:
    opts = AdmissionOptions(pull_secret="regcred", namespaces=("apps", "web"), dct=dct(), notary_host="notary.example")
    write_emission(emission(keys, level), out, options=AdmissionOptions(**{**opts.__dict__, **options}))
    return out


def push_image(host: str, repo: str, tag: str, ca_file: Path | None = None) -> str:
    """Push a small image; over plain HTTP unless ``ca_file`` (the registry's CA, then HTTPS) is given."""
    options = RegistryOptions(ca_file=ca_file) if ca_file else RegistryOptions(insecure_registries=frozenset({host}))
    with RegistryClient(host, options) as client:
        client.push_blob(repo, EMPTY_JSON)
        raw = image_manifest(f"{repo}:{tag}")
        client.put_manifest(repo, tag, raw, OCI_MANIFEST)
    return sha256_digest(raw)


def inventory_doc(gun: str, digest: str) -> dict[str, object]:
    """An inventory in which DCT trusted ``v1`` of ``gun`` at ``digest``, signed by the Repo Admin."""
    return {
        "format": "dct2notation-inventory/1", "evaluated_at": "2026-01-01T00:00:00Z",
        "repositories": [{"gun": gun, "trusted_tags": [{"tag": "v1", "digest": digest, "size": 1, "role": "targets"}],
                          "signed_tags": [], "signers": [], "administrative_keys": [], "conflicts": [],
                          "delegations": [], "role_targets": {}, "root_version": 1}],
    }  # fmt: skip


def emit_policy(tmp_path: Path, gun: str, digest: str, key: str, config: Path, out: Path, *options: str) -> Path:
    """`dct2notation policy -o out` over an inventory in which DCT trusted ``gun`` at ``digest``, with ``key`` (of the
    Notation ``config``) as the GUN's signer and ``options`` added; returns ``out``."""
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(inventory_doc(gun, digest)))
    signers = tmp_path / "signers.toml"
    signers.write_text(f'[[signer]]\ngun = "{gun}"\nkey = "{key}"\n')
    argv = ["policy", str(inventory), "--signers", str(signers), "--config-dir", str(config), "-o", str(out)]
    assert main([*argv, *options]) == 0
    return out
