"""Signatures this tool makes, judged by the real Notation CLI (v1.3.2, built by scripts/peers.sh).

Where: docker-registry 2.8 (no Referrers API: the sha256-<hex> tag schema), olareg (the OCI Referrers API) and an
OCI image layout (``NOTATION_EXPERIMENTAL=1 notation verify --oci-layout``). With what: the ``trustpolicy.json`` and
trust store ``dct2notation policy`` emitted from a real notary estate, unchanged, as ``NOTATION_CONFIG``, with the
emitted ``tsa:`` store for the timestamped ones. Our own ``verify`` gives the same verdict on each.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.interop import Estate, build_estate, layout_image, ours, ours_ok, push_image
from tests.support.peers import Olareg, Tool, notation, peer
from tests.support.servers import NotaryServer, Registry
from tests.support.tsa import TestTSA

pytestmark = pytest.mark.servers

FORMATS = ("cose", "jws")
FORMS = ("legacy", "artifact")


@pytest.fixture(scope="module")
def estate(
    tmp_path_factory: pytest.TempPathFactory,
    notary_server: NotaryServer,
    registry: Registry,
    olareg: Olareg,
    tsa_server: TestTSA,
) -> dict[str, Any]:
    peer("notation")
    root = tmp_path_factory.mktemp("interop-ours")
    built = build_estate(
        root,
        notary_server,
        {
            "dist": f"{registry.host}/{root.name}/dist",
            "olareg": f"{olareg.host}/{root.name}/olareg",
            "layout": f"local.test/{root.name}/layout",
            "ts": f"{registry.host}/{root.name}/ts",
        },
        short_lived=("ts",),
        tsa_root=tsa_server.pki.root_pem,
    )
    # Sign with the short-lived key first, so that its certificate has expired when the last test runs.
    signed: dict[str, str] = {}
    for label, extra in {
        "cose-ts": ["--signature-format", "cose", "--timestamp-url", tsa_server.url],
        "jws-ts": ["--signature-format", "jws", "--timestamp-url", tsa_server.url],
        "plain": ["--signature-format", "cose"],
    }.items():
        ref = (
            f"{built.repositories['ts']}@{push_image(registry.host, built.repositories['ts'].split('/', 1)[1], label)}"
        )
        if "--timestamp-url" in extra:
            extra = [*extra, "--timestamp-root-cert", str(tsa_server.pki.root_pem)]
        sign(built, ref, "shortlived", registry.host, *extra)
        signed[label] = ref
    return {"estate": built, "ts": signed, "registry": registry, "olareg": olareg}


def sign(estate: Estate, ref: str, key: str, insecure: str | None, *extra: str, layout: Path | None = None) -> Any:
    args = ["sign", ref, "--key", key, "--config-dir", str(estate.keys), *extra]
    if insecure is not None:
        args += ["--insecure-registry", insecure]
    if layout is not None:
        args += ["--oci-layout", str(layout)]
    return json.loads(ours_ok(*args))


def notation_verify(estate: Estate, ref: str, *extra: str, experimental: bool = False) -> Any:
    env = {"NOTATION_CONFIG": str(estate.policy)}
    if experimental:
        env["NOTATION_EXPERIMENTAL"] = "1"
    tool: Tool = notation(estate.root / "notation-home")
    return tool.run("verify", *extra, ref, env=env)


def our_verify(estate: Estate, ref: str, *extra: str) -> Any:
    policy = estate.policy
    return ours(
        "verify", ref, "--policy", str(policy / "trustpolicy.json"), "--truststore", str(policy / "truststore"), *extra
    )


def registry_case(setup: dict[str, Any], name: str, host: str, fmt: str, form: str, key: str = "release") -> str:
    estate: Estate = setup["estate"]
    repository = estate.repositories[name]
    ref = f"{repository}@{push_image(host, repository.split('/', 1)[1], f'{fmt}-{form}-{key}')}"
    signed = sign(
        estate, ref, key, host, "--signature-format", fmt, "--signature-manifest", form, "-m", "team=platform"
    )
    assert signed["signature"]["form"] == form
    assert signed["signature"]["envelopeMediaType"] == {"cose": "application/cose", "jws": "application/jose+json"}[fmt]
    return ref


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_notation_verifies_ours_in_distribution_tag_schema(estate: dict[str, Any], fmt: str, form: str) -> None:
    registry: Registry = estate["registry"]
    ref = registry_case(estate, "dist", registry.host, fmt, form)
    done = notation_verify(estate["estate"], ref, "--insecure-registry", "--user-metadata", "team=platform")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"Successfully verified signature for {ref}"
    assert "team" in done.stdout and "platform" in done.stdout  # its table of the signed user metadata
    assert our_verify(estate["estate"], ref, "--insecure-registry", registry.host).returncode == 0
    # The user metadata we signed is what Notation reads: a value we did not sign is refused.
    refused = notation_verify(estate["estate"], ref, "--insecure-registry", "--user-metadata", "team=other")
    assert refused.returncode == 1, refused.stdout


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_notation_verifies_ours_in_olareg_referrers_api(estate: dict[str, Any], fmt: str, form: str) -> None:
    server: Olareg = estate["olareg"]
    ref = registry_case(estate, "olareg", server.host, fmt, form)
    done = notation_verify(estate["estate"], ref, "--insecure-registry", "--user-metadata", "team=platform")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"Successfully verified signature for {ref}"
    assert our_verify(estate["estate"], ref, "--insecure-registry", server.host).returncode == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_notation_verifies_ours_in_oci_layout(estate: dict[str, Any], tmp_path: Path, fmt: str) -> None:
    setup: Estate = estate["estate"]
    layout = tmp_path / "layout"
    digest = layout_image(layout, f"layout-{fmt}")
    sign(setup, f"app@{digest}", "release", None, "--signature-format", fmt, layout=layout)
    scope = setup.repositories["layout"]
    done = notation_verify(setup, f"{layout}@{digest}", "--oci-layout", "--scope", scope, experimental=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"Successfully verified signature for {layout}@{digest}"


def test_notation_1x_does_not_see_artifact_form_in_oci_layout(estate: dict[str, Any], tmp_path: Path) -> None:
    """The version trap `sign --signature-manifest artifact --oci-layout` warns about: Notation 1.x (notation-go
    <= 1.3 finds layout signatures by config.mediaType) reports no signature at all."""
    setup: Estate = estate["estate"]
    layout = tmp_path / "layout"
    digest = layout_image(layout, "layout-artifact")
    done = ours(
        "sign",
        f"app@{digest}",
        "--key",
        "release",
        "--config-dir",
        str(setup.keys),
        "--signature-manifest",
        "artifact",
        "--oci-layout",
        str(layout),
    )
    assert done.returncode == 0, done.stderr
    assert "Notation 1.x does not find artifact-form signatures in an OCI layout" in done.stderr
    scope = setup.repositories["layout"]
    verdict = notation_verify(setup, f"{layout}@{digest}", "--oci-layout", "--scope", scope, experimental=True)
    assert verdict.returncode == 1
    assert "no signature is associated with" in verdict.stderr


def test_notation_and_we_refuse_a_signer_the_policy_does_not_trust(estate: dict[str, Any]) -> None:
    registry: Registry = estate["registry"]
    ref = registry_case(estate, "dist", registry.host, "jws", "legacy", key="stranger")
    done = notation_verify(estate["estate"], ref, "--insecure-registry", "--verbose")
    assert done.returncode == 1
    assert "authenticity validation failed" in done.stderr, done.stderr
    ours_done = our_verify(estate["estate"], ref, "--insecure-registry", registry.host, "--json")
    assert ours_done.returncode == 1
    assert json.loads(ours_done.stdout)["failedCheck"] == "authenticity"


def test_zz_timestamped_signatures_outlive_their_certificate(estate: dict[str, Any]) -> None:
    """Runs last in the module: the short-lived certificate has expired by now (we wait out the rest).

    With the emitted tsa: store, Notation accepts both timestamped signatures (COSE and JWS) and refuses the
    one without a timestamp; our verify agrees on all three."""
    setup: Estate = estate["estate"]
    registry: Registry = estate["registry"]
    wait = (setup.short_lived_until - dt.datetime.now(dt.UTC)).total_seconds() + 1.5
    if wait > 0:
        time.sleep(wait)
    trust_policy = json.loads((setup.policy / "trustpolicy.json").read_text())
    assert any(s.startswith("tsa:") for p in trust_policy["trustPolicies"] for s in p["trustStores"])
    for label in ("cose-ts", "jws-ts"):
        ref = estate["ts"][label]
        done = notation_verify(setup, ref, "--insecure-registry")
        assert done.returncode == 0, f"{label}: {done.stderr}"
        assert our_verify(setup, ref, "--insecure-registry", registry.host).returncode == 0, label
    ref = estate["ts"]["plain"]
    done = notation_verify(setup, ref, "--insecure-registry", "--verbose")
    assert done.returncode == 1
    assert "authenticTimestamp validation failed" in done.stderr, done.stderr
    ours_done = our_verify(setup, ref, "--insecure-registry", registry.host, "--json")
    assert ours_done.returncode == 1
    verdict = json.loads(ours_done.stdout)
    assert verdict["failedCheck"] == "authenticTimestamp"
    assert verdict["reason"] == "a tsa trust store is configured but the signature has no timestamp countersignature"
