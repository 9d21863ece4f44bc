"""KMS plugins, both signing contracts, against a plugin built on notation-plugin-framework-go (the reference
framework real KMS plugins use), with ``notation sign --plugin`` on the same plugin as the comparison.

Key ``raw``: plugin ``gokms``, SIGNATURE_GENERATOR.RAW (``generate-signature``, we assemble the envelope).
Key ``envelope``: plugin ``gokms-envelope``, SIGNATURE_GENERATOR.ENVELOPE (``generate-envelope``; the plugin's
notation-core-go makes the envelope, as AWS Signer's plugin does). Key ``envelope-swap``: the same plugin made
hostile (pluginConfig mode=swap): it signs a different artifact size.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.interop import ours, ours_ok, push_image
from tests.support.peers import gokms_plugin, notation
from tests.support.plugin_pki import make_chain
from tests.support.servers import Registry
from tests.support.tsa import TestTSA

pytestmark = pytest.mark.servers

MEDIA = {"cose": "application/cose", "jws": "application/jose+json"}
# What generate-envelope asks to be put on the signature manifest (the RAW contract has no such field).
PLUGIN_ANNOTATION = {"raw": None, "envelope": "gokms-envelope"}


@pytest.fixture(scope="module")
def kms(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> dict[str, Any]:
    binary = gokms_plugin()
    root = tmp_path_factory.mktemp("interop-plugin")
    config = root / "notation"
    for name in ("gokms", "gokms-envelope"):
        (config / "plugins" / name).mkdir(parents=True)
        shutil.copy2(binary, config / "plugins" / name / f"notation-{name}")
    pki = make_chain("ec-p384", cn="kms signer")
    pki.write(root / "kms", "leaf")
    stem = str(root / "kms" / "leaf")
    keys = [
        {"name": "raw", "id": stem, "pluginName": "gokms"},
        {"name": "envelope", "id": stem, "pluginName": "gokms-envelope"},
        {"name": "envelope-swap", "id": stem, "pluginName": "gokms-envelope", "pluginConfig": {"mode": "swap"}},
    ]
    (config / "signingkeys.json").write_text(json.dumps({"default": "raw", "keys": keys}))
    policy = root / "policy"
    store = policy / "truststore" / "x509" / "ca" / "kms"
    store.mkdir(parents=True)
    (store / "root.pem").write_bytes(pki.root.public_bytes(serialization.Encoding.PEM))
    statement = {
        "name": "kms",
        "registryScopes": [f"{registry.host}/{root.name}/app"],
        "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:kms"],
        "trustedIdentities": ["x509.subject: " + pki.chain[0].subject.rfc4514_string().replace(",", ", ")],
    }
    (policy / "trustpolicy.json").write_text(json.dumps({"version": "1.0", "trustPolicies": [statement]}))
    return {"root": root, "config": config, "policy": policy, "registry": registry, "repo": f"{root.name}/app"}


def image(kms: dict[str, Any], label: str) -> str:
    registry: Registry = kms["registry"]
    return f"{registry.host}/{kms['repo']}@{push_image(registry.host, kms['repo'], label)}"


def notation_run(kms: dict[str, Any], *args: str, config: Path | None = None) -> Any:
    return notation(kms["root"] / "notation-home").run(*args, env={"NOTATION_CONFIG": str(config or kms["config"])})


def verdicts(kms: dict[str, Any], ref: str) -> tuple[int, int, dict[str, Any]]:
    registry: Registry = kms["registry"]
    theirs = notation_run(kms, "verify", "--insecure-registry", ref, config=kms["policy"])
    done = ours(
        "verify",
        ref,
        "--policy",
        str(kms["policy"] / "trustpolicy.json"),
        "--truststore",
        str(kms["policy"] / "truststore"),
        "--insecure-registry",
        registry.host,
        "--json",
    )
    (details,) = json.loads(ours_ok("inspect", ref, "--json", "--insecure-registry", registry.host))["signatures"]
    return theirs.returncode, done.returncode, details


@pytest.mark.parametrize("fmt", ["cose", "jws"])
@pytest.mark.parametrize("mode", ["raw", "envelope"])
def test_our_plugin_signature_verifies_with_notation(kms: dict[str, Any], mode: str, fmt: str) -> None:
    registry: Registry = kms["registry"]
    ref = image(kms, f"ours-{mode}-{fmt}")
    args = ["sign", ref, "--key", mode, "--config-dir", str(kms["config"]), "--insecure-registry", registry.host]
    signed = json.loads(ours_ok(*args, "--signature-format", fmt, "-m", "team=kms"))
    assert signed["signature"]["envelopeMediaType"] == MEDIA[fmt]
    theirs, mine, details = verdicts(kms, ref)
    assert (theirs, mine) == (0, 0)
    assert details["mediaType"] == MEDIA[fmt]
    assert details["userMetadata"] == {"team": "kms"}
    # RAW: we assemble the envelope and name the plugin after our agent, as Notation does after its own;
    # ENVELOPE: the agent is whatever the plugin's envelope says.
    expected_agent = {"raw": "dct2notation/0.1.0 gokms/1.0.0", "envelope": "gokms-envelope/1.0.0"}[mode]
    assert details["signingAgent"] == expected_agent
    assert details["signatureAlgorithm"] == "ES384"
    assert details["annotations"].get("com.example.kms") == PLUGIN_ANNOTATION[mode]


@pytest.mark.parametrize("fmt", ["cose", "jws"])
@pytest.mark.parametrize("mode", ["raw", "envelope"])
def test_notation_plugin_signature_reads_the_same(kms: dict[str, Any], mode: str, fmt: str) -> None:
    """The comparison: `notation sign` drives the same plugin through the same contract."""
    ref = image(kms, f"theirs-{mode}-{fmt}")
    done = notation_run(kms, "sign", "--insecure-registry", "--key", mode, "--signature-format", fmt, ref)
    assert done.returncode == 0, done.stderr
    theirs, mine, details = verdicts(kms, ref)
    assert (theirs, mine) == (0, 0)
    assert details["mediaType"] == MEDIA[fmt]
    expected_agent = {"raw": "notation-go/1.3.2 gokms/1.0.0", "envelope": "gokms-envelope/1.0.0"}[mode]
    assert details["signingAgent"] == expected_agent
    # The manifest annotations an envelope plugin asks for are written by Notation as by us.
    assert details["annotations"].get("com.example.kms") == PLUGIN_ANNOTATION[mode]


def test_attack_envelope_plugin_signs_another_artifact(kms: dict[str, Any]) -> None:
    """A plugin whose envelope names a different size: refused by us as by Notation, nothing is pushed."""
    registry: Registry = kms["registry"]
    ref = image(kms, "swap")
    done = ours(
        "sign", ref, "--key", "envelope-swap", "--config-dir", str(kms["config"]), "--insecure-registry", registry.host
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert 'plugin "gokms-envelope" generate-envelope: the plugin changed the signed artifact' in done.stderr
    theirs = notation_run(kms, "sign", "--insecure-registry", "--key", "envelope-swap", ref)
    assert theirs.returncode == 1 and "descriptor subject has changed" in theirs.stderr, theirs.stderr
    listed = json.loads(ours_ok("ls", ref, "--json", "--insecure-registry", registry.host))["signatures"]
    assert listed == []


def test_envelope_plugin_with_timestamp_is_one_line_refusal(kms: dict[str, Any], tsa_server: TestTSA) -> None:
    registry: Registry = kms["registry"]
    ref = image(kms, "stamped")
    done = ours(
        "sign",
        ref,
        "--key",
        "envelope",
        "--config-dir",
        str(kms["config"]),
        "--insecure-registry",
        registry.host,
        "--timestamp-url",
        tsa_server.url,
        "--timestamp-root-cert",
        str(tsa_server.pki.root_pem),
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        'dct2notation: error: plugin "gokms-envelope" generate-envelope: an envelope made by the plugin cannot be '
        "timestamped (Notation does not either)"
    )
