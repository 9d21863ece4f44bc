"""Issue #13 items 9 and 10: files the tool writes are written safely, and every OS failure is one line.

The full disk is real: a 256 KiB tmpfs mounted for the test (root only; skipped with the reason otherwise), filled
to the last page by a filler file the test writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dct2notation.cli import main
from dct2notation.migrate.journal import Journal
from tests.test_hostile_input import INVENTORY, SIGNERS_K, error_of, signoff_with_journal
from tests.test_signoff import Estate, ready_bundle  # noqa: F401 - the module-scoped demo estate fixture

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"
EXPECTED = json.loads((DEMO / "expected.json").read_text())


# --- cert generate-test: the private key -------------------------------------------------------------------


def test_generated_private_key_is_0600(tmp_path: Path) -> None:
    assert main(["cert", "generate-test", "k", "--key-type", "ec-p256", "--config-dir", str(tmp_path)]) == 0
    assert stat.S_IMODE((tmp_path / "localkeys" / "k.key").stat().st_mode) == 0o600


def test_attack_leftover_key_file_keeps_mode_0644(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "localkeys" / "k.key"
    key.parent.mkdir(parents=True)
    key.write_text("left over\n")
    key.chmod(0o644)
    argv = ["cert", "generate-test", "k", "--key-type", "ec-p256", "--config-dir", str(tmp_path)]
    assert error_of(argv, capsys) == (2, f"{key}: already exists; refusing to replace it (remove it first)")
    assert key.read_text() == "left over\n"
    assert sorted(p.name for p in key.parent.iterdir()) == ["k.key"]
    assert not (tmp_path / "signingkeys.json").exists()


def test_attack_planted_key_symlink_is_not_followed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("somebody else's file\n")
    config = tmp_path / "notation"
    key = config / "localkeys" / "k.key"
    key.parent.mkdir(parents=True)
    key.symlink_to(victim)
    argv = ["cert", "generate-test", "k", "--key-type", "ec-p256", "--config-dir", str(config)]
    assert error_of(argv, capsys) == (2, f"{key}: already exists; refusing to replace it (remove it first)")
    assert victim.read_text() == "somebody else's file\n"


def test_attack_planted_signingkeys_temp_symlink_is_not_followed(tmp_path: Path) -> None:
    # The old fixed temp name signingkeys.json.tmp, planted as a symlink: the key list must not land there.
    victim = tmp_path / "victim.txt"
    victim.write_text("somebody else's file\n")
    config = tmp_path / "notation"
    config.mkdir()
    (config / "signingkeys.json.tmp").symlink_to(victim)
    assert main(["cert", "generate-test", "k", "--key-type", "ec-p256", "--config-dir", str(config)]) == 0
    assert victim.read_text() == "somebody else's file\n"
    assert json.loads((config / "signingkeys.json").read_text())["keys"][0]["name"] == "k"
    assert stat.S_IMODE((config / "signingkeys.json").stat().st_mode) == 0o600


# --- a real full disk ----------------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a 256 KiB tmpfs ({proc.stderr.strip() or proc.returncode}): needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int = 0) -> None:
    """Write a filler until the disk is full, then give back ``leave`` bytes (whole pages)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))


def listing(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*"))


def test_attack_disk_full_during_plan_rewrite_keeps_the_old_plan(
    tiny_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "inventory.json").write_text(json.dumps(INVENTORY))
    (tmp_path / "signers.toml").write_text(SIGNERS_K)
    config = tmp_path / "notation"
    assert main(["cert", "generate-test", "k", "--key-type", "ec-p256", "--config-dir", str(config)]) == 0
    plan = tiny_disk / "plan.json"
    argv = ["plan", str(tmp_path / "inventory.json"), "--signers", str(tmp_path / "signers.toml"), "--no-preflight"]
    argv += ["--config-dir", str(config)]
    assert main([*argv, "-o", str(plan)]) == 0
    good = plan.read_bytes()
    capsys.readouterr()
    fill(tiny_disk)
    assert error_of([*argv, "-o", str(plan)], capsys) == (
        2,
        f"{plan}: cannot write the plan (No space left on device)",
    )
    assert plan.read_bytes() == good
    assert listing(tiny_disk) == ["filler", "plan.json"]


def test_attack_disk_full_during_archive(tiny_disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(tiny_disk, leave=16 << 10)
    out = tiny_disk / "archive"
    argv = ["archive", *EXPECTED["guns"], "--trust-dir", str(DEMO / "trust"), "--at", EXPECTED["evaluate_at"]]
    code, message = error_of([*argv, "-o", str(out)], capsys)
    assert code == 2
    assert message.startswith(f"-o {out}: {tiny_disk}/.archive.")
    assert message.endswith(": cannot write (No space left on device)")
    assert listing(tiny_disk) == ["filler"]  # staging removed


def test_attack_disk_full_during_signoff(
    tiny_disk: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    work = request.getfixturevalue("ready_bundle").parent
    estate = Estate(work, work / "plan.json", work / "policy")
    capsys.readouterr()
    fill(tiny_disk, leave=16 << 10)
    out = tiny_disk / "bundle"
    code, message = error_of(estate.signoff_args(out), capsys)
    assert code == 2
    assert message.startswith(f"-o {out}: {tiny_disk}/.bundle.")
    assert re.search(r": No space left on device( \(and \d+ more\))?$", message), message
    assert listing(tiny_disk) == ["filler"]  # staging removed


# --- the journal ---------------------------------------------------------------------------------------------


def damaged_journal(path: Path) -> None:
    """A real journal of many pages whose header page stays good and whose table pages are overwritten."""
    journal = Journal(path)
    journal.add(f"job-{n:05d}-" + "x" * 100 for n in range(2000))
    journal.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        page = int(db.execute("PRAGMA page_size").fetchone()[0])
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    assert size > 8 * page
    with path.open("r+b") as handle:
        handle.seek(2 * page)
        handle.write(b"\xa5" * (size - 2 * page))


def test_attack_journal_with_good_header_and_damaged_pages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = tmp_path / "journal.db"
    damaged_journal(journal)
    code, message = error_of(signoff_with_journal(tmp_path, journal), capsys)
    assert code == 2
    assert message.startswith(f"{journal}: the journal is damaged (*** in database main *** Page ")
    assert not (tmp_path / "bundle").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_new_journal_appears_whole(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    Journal(path).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.db"]  # no temp file, no -wal/-shm left over
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"jobs", "meta"}


# --- outputs the user points elsewhere -------------------------------------------------------------------------


def plan_argv(tmp_path: Path) -> list[str]:
    (tmp_path / "inventory.json").write_text(json.dumps(INVENTORY))
    (tmp_path / "signers.toml").write_text(SIGNERS_K)
    config = tmp_path / "notation"
    assert main(["cert", "generate-test", "k", "--key-type", "ec-p256", "--config-dir", str(config)]) == 0
    argv = ["plan", str(tmp_path / "inventory.json"), "--signers", str(tmp_path / "signers.toml"), "--no-preflight"]
    return [*argv, "--config-dir", str(config)]


def test_output_to_a_fifo_is_written_into_not_replaced(tmp_path: Path) -> None:
    # `-o /dev/stdout` or a FIFO: renaming over it (as root, over a device node) would destroy it.
    argv = plan_argv(tmp_path)
    fifo = tmp_path / "plan.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    code = main([*argv, "-o", str(fifo)])
    reader.join(timeout=30)
    assert code == 0
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert json.loads(received[0])["format"] == "dct2notation-plan/1"


def test_output_through_a_symlink_keeps_the_symlink(tmp_path: Path) -> None:
    argv = plan_argv(tmp_path)
    real = tmp_path / "plans" / "plan.json"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "plan.json"
    link.symlink_to(real)
    assert main([*argv, "-o", str(link)]) == 0
    assert link.is_symlink()
    assert json.loads(real.read_text())["format"] == "dct2notation-plan/1"
    assert sorted(p.name for p in real.parent.iterdir()) == ["plan.json"]


def test_attack_planted_certificate_symlink_is_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("somebody else's file\n")
    config = tmp_path / "notation"
    (config / "localkeys").mkdir(parents=True)
    (config / "localkeys" / "k.crt").symlink_to(victim)
    assert main(["cert", "generate-test", "k", "--key-type", "ec-p256", "--config-dir", str(config)]) == 0
    assert victim.read_text() == "somebody else's file\n"
    assert not (config / "localkeys" / "k.crt").is_symlink()


def test_attack_planted_partial_directory_is_not_deleted(
    tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    # "<output>.partial" is a name anyone can take: sign-off must neither delete nor fill it.
    work = request.getfixturevalue("ready_bundle").parent
    estate = Estate(work, work / "plan.json", work / "policy")
    planted = tmp_path / "bundle.partial"
    planted.mkdir()
    (planted / "keep.txt").write_text("not the tool's\n")
    assert main(estate.signoff_args(tmp_path / "bundle")) == 0
    assert (planted / "keep.txt").read_text() == "not the tool's\n"
    assert sorted(p.name for p in planted.iterdir()) == ["keep.txt"]
    assert (tmp_path / "bundle" / "MANIFEST.json").is_file()


def test_attack_disk_full_during_sign_into_a_layout(
    tiny_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.images import layout_with_image

    config = tmp_path / "notation"
    assert main(["cert", "generate-test", "k", "--key-type", "ec-p256", "--config-dir", str(config)]) == 0
    layout, digest = layout_with_image(tiny_disk)
    index = (layout / "index.json").read_bytes()
    capsys.readouterr()
    fill(tiny_disk)
    argv = ["sign", f"app@{digest}", "--key", "k", "--config-dir", str(config), "--oci-layout", str(layout)]
    code, message = error_of(argv, capsys)
    assert code == 2
    assert re.fullmatch(rf"{layout}/blobs/sha256/[0-9a-f]{{64}}: cannot write \(No space left on device\)", message)
    assert (layout / "index.json").read_bytes() == index
    assert not [p for p in layout.rglob("*") if p.name.endswith(".tmp")]


def test_attack_disk_full_during_generate_test_leaves_no_key(
    tiny_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tiny_disk / "notation"
    (config / "localkeys").mkdir(parents=True)
    fill(tiny_disk)
    code, message = error_of(
        ["cert", "generate-test", "k", "--key-type", "ec-p256", "--config-dir", str(config)], capsys
    )
    assert code == 2
    assert message == f"{config / 'localkeys' / 'k.key'}: cannot write (No space left on device)"
    assert [p for p in config.rglob("*") if not p.is_dir()] == []  # no key without its certificate


def test_rewrite_keeps_the_outputs_mode(tmp_path: Path) -> None:
    argv = plan_argv(tmp_path)
    plan = tmp_path / "plan.json"
    plan.write_text("old\n")
    plan.chmod(0o600)
    assert main([*argv, "-o", str(plan)]) == 0
    assert stat.S_IMODE(plan.stat().st_mode) == 0o600
    assert json.loads(plan.read_text())["format"] == "dct2notation-plan/1"
