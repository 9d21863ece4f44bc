"""Issue #13 item 8: OCI layouts and sign-off bundles are files we do not trust.

Each attack plants something in a layout or a bundle the test wrote — a symlink, a FIFO, a character device, a
symlinked ``blobs/sha256`` — and runs the real CLI in a child process, under a timeout and an address-space limit, so
the defect it guards against (a read that never ends, a hang, a write outside the layout) fails the test instead of
taking the machine down.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dct2notation.cli import main
from dct2notation.keys.testcert import generate_test_key
from dct2notation.registry.layout import OCILayout
from tests.support.images import layout_with_image
from tests.test_signoff import bundle_copy, ready_bundle  # noqa: F401 - the module-scoped demo bundle fixture

REPO = Path(__file__).resolve().parents[1]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI in a child: a hang is a timeout and an endless read a MemoryError, both failures of the test."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "dct2notation", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        preexec_fn=_limit_memory,  # noqa: PLW1509 - a plain setrlimit, no threads in the child yet
    )


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("dct2notation: error: "), proc.stderr
    return proc.stderr.removeprefix("dct2notation: error: ").rstrip("\n")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("notation")
    generate_test_key("tester", directory, key_type="ec-p256", make_default=True)
    return directory


@pytest.fixture
def signed_layout(tmp_path: Path, config: Path) -> tuple[Path, str]:
    """A layout holding one image and its signature; returns (layout, digest of the signature manifest)."""
    layout, digest = layout_with_image(tmp_path)
    code = main(["sign", f"app@{digest}", "--key", "tester", "--config-dir", str(config), "--oci-layout", str(layout)])
    assert code == 0
    entries = json.loads((layout / "index.json").read_text())["manifests"]
    signature = next(m["digest"] for m in entries if "annotations" not in m)
    return layout, signature


def blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def test_attack_layout_blob_is_dev_zero(signed_layout: tuple[Path, str]) -> None:
    layout, signature = signed_layout
    path = blob(layout, signature)
    path.unlink()
    try:
        os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 5))  # the device /dev/zero is
    except PermissionError:
        pytest.skip("creating a character device needs root")
    proc = cli("ls", "v1", "--oci-layout", str(layout))
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc) == f"{path}: is not a regular file; refused"


def test_attack_layout_blob_symlink_to_dev_zero(signed_layout: tuple[Path, str]) -> None:
    layout, signature = signed_layout
    path = blob(layout, signature)
    path.unlink()
    path.symlink_to("/dev/zero")
    proc = cli("ls", "v1", "--oci-layout", str(layout))
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc) == f"{path}: is a symbolic link; refused (only plain files and directories are read)"


def test_attack_layout_blob_fifo_hangs_verify(signed_layout: tuple[Path, str], config: Path) -> None:
    layout, signature = signed_layout
    path = blob(layout, signature)
    path.unlink()
    os.mkfifo(path)
    policy = config / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "version": "1.0",
                "trustPolicies": [
                    {
                        "name": "p",
                        "registryScopes": ["*"],
                        "signatureVerification": {"level": "strict"},
                        "trustStores": ["ca:tester"],
                        "trustedIdentities": ["*"],
                    }
                ],
            }
        )
    )
    proc = cli(
        "verify", "v1", "--oci-layout", str(layout), "--policy", str(policy),
        "--truststore", str(config / "truststore"), timeout=30,
    )  # fmt: skip
    # Read as every unreadable signature is (#14 item 7): an integrity failure of that signature, naming the file.
    assert proc.returncode == 1, proc.stderr
    assert one_line(proc).endswith(f"is unreadable: {path}: is not a regular file; refused")


def test_attack_layout_index_is_dev_zero(tmp_path: Path) -> None:
    layout, _ = layout_with_image(tmp_path)
    (layout / "index.json").unlink()
    (layout / "index.json").symlink_to("/dev/zero")
    proc = cli("ls", "v1", "--oci-layout", str(layout))
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc) == (
        f"{layout / 'index.json'}: is a symbolic link; refused (only plain files and directories are read)"
    )


def test_attack_layout_blobs_dir_symlink_is_not_written_through(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout, digest = layout_with_image(tmp_path)
    outside = tmp_path / "outside"
    shutil.move(layout / "blobs" / "sha256", outside)
    (layout / "blobs" / "sha256").symlink_to(outside, target_is_directory=True)
    before = sorted(p.name for p in outside.iterdir())
    code = main(["sign", f"app@{digest}", "--key", "tester", "--config-dir", str(config), "--oci-layout", str(layout)])
    assert code == 2
    assert capsys.readouterr().err == (
        f"dct2notation: error: {layout / 'blobs' / 'sha256'}: is a symbolic link; refused "
        "(only plain files and directories are read)\n"
    )
    assert sorted(p.name for p in outside.iterdir()) == before


def test_layout_index_cap_is_the_layout_index_limit_for_every_command(signed_layout: tuple[Path, str]) -> None:
    # 17 MiB of index.json (about 90,000 tags' worth): over a referrers index's 16 MiB, well under 256 MiB.
    layout, signature = signed_layout
    index = layout / "index.json"
    index.write_bytes(index.read_bytes() + b" " * (17 << 20))
    code = main(["ls", "v1", "--json", "--oci-layout", str(layout)])
    assert code == 0
    assert OCILayout(layout).manifests()  # the same reader, the same cap


# --- sign-off bundles ------------------------------------------------------------------------------------------


@pytest.fixture
def bundle(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return bundle_copy(request.getfixturevalue("ready_bundle"), tmp_path)


def test_attack_bundle_symlinked_directory_outside_integrity(bundle: Path, tmp_path: Path) -> None:
    # An extra signatures/<subject> directory that is a symlink: not listed in MANIFEST.json, yet read by verify.
    signatures = bundle / "signatures"
    real = next(p for p in sorted(signatures.iterdir()) if p.is_dir())
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(real, elsewhere)
    planted = signatures / ("f" * 64)
    planted.symlink_to(elsewhere, target_is_directory=True)
    proc = cli("signoff", "verify", str(bundle))
    assert proc.returncode == 1, proc.stderr
    assert one_line(proc) == f"{planted}: is a symbolic link; refused (only plain files and directories are read)"


def test_attack_bundle_manifest_is_a_fifo(bundle: Path) -> None:
    (bundle / "MANIFEST.json").unlink()
    os.mkfifo(bundle / "MANIFEST.json")
    proc = cli("signoff", "verify", str(bundle), timeout=30)
    assert proc.returncode == 1, proc.stderr
    assert one_line(proc) == f"{bundle / 'MANIFEST.json'}: is not a regular file; refused"


def test_attack_bundle_file_is_a_symlink(bundle: Path, tmp_path: Path) -> None:
    target = tmp_path / "plan.json"
    shutil.copyfile(bundle / "plan.json", target)
    (bundle / "plan.json").unlink()
    (bundle / "plan.json").symlink_to(target)
    proc = cli("signoff", "verify", str(bundle))
    assert proc.returncode == 1, proc.stderr
    assert one_line(proc) == (
        f"{bundle / 'plan.json'}: is a symbolic link; refused (only plain files and directories are read)"
    )


def test_attack_trust_policy_fifo_hangs_verify(signed_layout: tuple[Path, str], config: Path, tmp_path: Path) -> None:
    layout, _ = signed_layout
    policy = tmp_path / "trustpolicy.json"
    os.mkfifo(policy)
    proc = cli(
        "verify", "v1", "--oci-layout", str(layout), "--policy", str(policy),
        "--truststore", str(config / "truststore"), timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc) == f"{policy}: is not a regular file; refused"


def test_attack_trust_store_entry_fifo(signed_layout: tuple[Path, str], config: Path, tmp_path: Path) -> None:
    layout, _ = signed_layout
    store = tmp_path / "truststore"
    shutil.copytree(config / "truststore", store)
    fifo = store / "x509" / "ca" / "tester" / "zz.pem"
    os.mkfifo(fifo)
    policy = tmp_path / "trustpolicy.json"
    statement = {
        "name": "p",
        "registryScopes": ["*"],
        "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:tester"],
        "trustedIdentities": ["*"],
    }
    policy.write_text(json.dumps({"version": "1.0", "trustPolicies": [statement]}))
    proc = cli(
        "verify", "v1", "--oci-layout", str(layout), "--policy", str(policy), "--truststore", str(store), timeout=30
    )
    assert proc.returncode == 1, proc.stderr  # a trust store that cannot be read fails authenticity
    assert one_line(proc).endswith(f": {fifo}: trust store entries must be regular files (a FIFO or device is not)")


def test_attack_inventory_fifo_hangs_plan(tmp_path: Path) -> None:
    from tests.test_hostile_input import SIGNERS_K

    inventory = tmp_path / "inventory.json"
    os.mkfifo(inventory)
    (tmp_path / "signers.toml").write_text(SIGNERS_K)
    proc = cli(
        "plan", str(inventory), "--signers", str(tmp_path / "signers.toml"), "--no-preflight",
        "-o", str(tmp_path / "plan.json"), timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc) == f"{inventory}: is not a regular file; refused"
    assert not (tmp_path / "plan.json").exists()


@pytest.mark.parametrize("name", ["signers.toml", "signingkeys.json"])
def test_attack_config_file_fifo_hangs_plan(tmp_path: Path, name: str) -> None:
    # signers.toml, or the Notation config's signingkeys.json, replaced by a FIFO: plan would wait forever.
    from tests.test_hostile_input import INVENTORY, SIGNERS_K

    (tmp_path / "inventory.json").write_text(json.dumps(INVENTORY))
    config = tmp_path / "notation"
    config.mkdir()
    signers = tmp_path / "signers.toml"
    signers.write_text(SIGNERS_K)
    fifo = signers if name == "signers.toml" else config / name
    if fifo.exists():
        fifo.unlink()
    os.mkfifo(fifo)
    proc = cli(
        "plan", str(tmp_path / "inventory.json"), "--signers", str(signers), "--config-dir", str(config),
        "--no-preflight", "-o", str(tmp_path / "plan.json"), timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc) == f"{fifo}: is not a regular file; refused"


def test_attack_from_check_fifo_hangs_plan(tmp_path: Path) -> None:
    # `plan --from-check` read its `check --json` document with a plain read_bytes(): a FIFO waited forever and a
    # device never ended. It now goes through the one user-document reader, like the inventory beside it.
    from tests.test_hostile_input import INVENTORY, SIGNERS_K

    (tmp_path / "inventory.json").write_text(json.dumps(INVENTORY))
    (tmp_path / "signers.toml").write_text(SIGNERS_K)
    check = tmp_path / "check.json"
    os.mkfifo(check)
    proc = cli(
        "plan", str(tmp_path / "inventory.json"), "--signers", str(tmp_path / "signers.toml"), "--no-preflight",
        "--from-check", str(check), "-o", str(tmp_path / "plan.json"), timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc) == f"{check}: is not a regular file; refused"
    assert not (tmp_path / "plan.json").exists()
