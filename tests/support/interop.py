"""A migrated estate for the interop tests: real notary GUNs → ``inventory`` → ``policy``, and the keys it maps.

The trust policy and trust store the peers judge with are the ones ``dct2notation policy`` emitted, used unchanged
as ``NOTATION_CONFIG``. Every ``dct2notation`` step runs as the installed CLI would (a subprocess), so the estate can
be built once per module.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dct2notation.config import FixedClock
from dct2notation.keys.testcert import generate_test_key
from dct2notation.oci import EMPTY_JSON, OCI_MANIFEST, sha256_digest
from dct2notation.registry.client import RegistryClient
from dct2notation.registry.layout import OCILayout
from dct2notation.registry.options import RegistryOptions
from tests.support.images import image_manifest
from tests.support.notary_builders import sha256_hex, write_key_and_cert
from tests.support.servers import NotaryServer

REPO = Path(__file__).resolve().parents[2]
SHORT_LIVED_SECONDS = 40  # long enough to build the estate and sign under a loaded CI machine


def ours(
    *args: str, stdin: str | None = None, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``dct2notation ARGS`` from this checkout, as a user runs it (``env`` added to the environment)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "dct2notation", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=timeout,
        check=False,
    )


def ours_ok(*args: str) -> str:
    done = ours(*args)
    assert done.returncode == 0, f"dct2notation {' '.join(args)}: {done.stderr}"
    return done.stdout


@dataclass
class Estate:
    root: Path
    keys: Path  # a Notation config dir: signingkeys.json + localkeys/ (what `notation sign` and we sign with)
    policy: Path  # `dct2notation policy` output: trustpolicy.json + truststore/ (NOTATION_CONFIG for verify)
    repositories: dict[str, str]  # estate name -> registry repository (host/path) or layout scope
    short_lived_until: dt.datetime
    guns: dict[str, str] = field(default_factory=dict)


def build_estate(
    root: Path,
    notary: NotaryServer,
    repositories: dict[str, str],
    *,
    short_lived: tuple[str, ...] = (),
    tsa_root: Path | None = None,
    targets: dict[str, tuple[str, int]] | None = None,
) -> Estate:
    """One DCT GUN per entry of ``repositories`` (releases delegation, one signed tag), migrated to that repository.

    Signers: the estates named in ``short_lived`` map to key ``shortlived`` (a certificate that expires
    ``SHORT_LIVED_SECONDS`` from now), the others to ``release``; ``stranger`` is a key no statement trusts.
    ``targets`` gives an estate's tag v1 a real image (digest, size); by default it names a made-up digest."""
    stamp = root.name.replace("_", "-").lower()
    guns = {name: f"dct.example/{stamp}/{name}" for name in repositories}
    client = notary.client(root / "trust")
    dct_keys = root / "dctkeys"
    write_key_and_cert(dct_keys, "rel")
    for name, gun in guns.items():
        client.init(gun)
        client.run("delegation", "add", gun, "targets/releases", str(dct_keys / "rel.crt"), "--all-paths")
        client.run("key", "import", str(dct_keys / "rel.key"), "--role", "targets/releases", "--gun", gun)
        digest, size = (targets or {}).get(name, ("sha256:" + sha256_hex(f"{gun}-v1"), 100))
        client.addhash(gun, "v1", size, digest.removeprefix("sha256:"), "targets/releases")
        client.publish(gun)

    keys = root / "notation"
    generate_test_key("release", keys, key_type="ec-p256", days=2, make_default=True)
    generate_test_key("stranger", keys, key_type="ec-p256", days=2)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    # A certificate valid from a day ago until SHORT_LIVED_SECONDS from now: signatures made now outlive it.
    born = now - dt.timedelta(days=1) + dt.timedelta(seconds=SHORT_LIVED_SECONDS)
    generate_test_key("shortlived", keys, key_type="rsa-2048", days=1, clock=FixedClock(born))

    inventory = root / "inventory.json"
    inventory.write_text(ours_ok("inventory", *guns.values(), "--server", notary.url, "--json"))
    signers = root / "signers.toml"
    entries = [
        f'[[signer]]\ngun = "{guns[name]}"\nrole = "targets/releases"\nkey = "shortlived"\n' for name in short_lived
    ]
    entries.append(f'[[signer]]\ngun = "dct.example/{stamp}/*"\nrole = "targets/releases"\nkey = "release"\n')
    signers.write_text("\n".join(entries))
    policy = root / "policy"
    args = ["policy", str(inventory), "--signers", str(signers), "-o", str(policy), "--config-dir", str(keys)]
    for name, repository in repositories.items():
        args += ["--registry-map", f"{guns[name]}={repository}"]
    if tsa_root is not None:
        args += ["--timestamp-root-cert", str(tsa_root)]
    ours_ok(*args)
    return Estate(root, keys, policy, dict(repositories), born + dt.timedelta(days=1), guns)


def push_image(host: str, repository: str, label: str, *, content: str | None = None) -> str:
    """An image manifest tagged ``label`` (its content from ``content``, default repository+label); its digest."""
    with RegistryClient(host, RegistryOptions(insecure_registries=frozenset({host}))) as client:
        client.push_blob(repository, EMPTY_JSON)
        raw = image_manifest(content or f"{repository}-{label}")
        client.put_manifest(repository, label, raw, OCI_MANIFEST)
    return sha256_digest(raw)


def image_size(repository: str, label: str) -> int:
    return len(image_manifest(f"{repository}-{label}"))


def layout_image(layout_dir: Path, label: str) -> str:
    layout = OCILayout(layout_dir)
    if not (layout_dir / "oci-layout").exists():
        layout.init()
    layout.put_blob(EMPTY_JSON)
    raw = image_manifest(label)
    layout.put_blob(raw)
    from dct2notation.oci import Descriptor

    with layout.locked():
        layout.tag(Descriptor(OCI_MANIFEST, sha256_digest(raw), len(raw)), label)
    return sha256_digest(raw)

