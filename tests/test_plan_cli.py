"""`dct2notation plan` through the CLI against a notary-built GUN and a real registry."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import yaml

from dct2notation.cli import main
from tests.support.servers import NotaryServer, Registry
from tests.test_batch import push_images

_ids = itertools.count()


def _inventory(
    notary_server: NotaryServer, registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[str, str]:
    n = next(_ids)
    gun = f"dct.example/cli{n}/app"
    ((_, size, digest),) = push_images(registry.host, f"cli{n}/app", 1, "v")
    notary = notary_server.client(tmp_path / "trust")
    notary.init(gun)
    notary.addhash(gun, "v1", size, digest.removeprefix("sha256:"))
    notary.publish(gun)
    assert main(["inventory", gun, "--server", notary_server.url, "--json"]) == 0
    (tmp_path / "inventory.json").write_text(capsys.readouterr().out)
    return gun, digest


def test_plan_cli_document_dry_run_k8s_and_unmapped(
    notary_server: NotaryServer,
    notary_binary: None,
    registry: Registry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gun, digest = _inventory(notary_server, registry, tmp_path, capsys)
    prefix = gun.rsplit("/", 1)[0]
    common = [
        str(tmp_path / "inventory.json"),
        "--insecure-registry",
        registry.host,
        "--registry-map",
        f"{prefix}={registry.host}/{prefix.split('/', 1)[1]}",
        "--migration-id",
        "m-cli",
    ]
    (tmp_path / "none.toml").write_text('[[signer]]\ngun = "other/*"\nkey = "x"\n')
    assert main(["plan", *common, "--signers", str(tmp_path / "none.toml"), "-o", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{gun} targets" in err and "no Notation key mapped" in err
    assert not (tmp_path / "p.json").exists()

    (tmp_path / "signers.toml").write_text(f'[[signer]]\ngun = "{prefix}/*"\nkey = "admin"\n')
    signers = ["--signers", str(tmp_path / "signers.toml")]
    assert (
        main(
            [
                "plan",
                *common,
                *signers,
                "-o",
                str(tmp_path / "p.json"),
                "--emit-k8s-job",
                str(tmp_path / "job.yaml"),
                "--shards",
                "3",
            ]
        )
        == 0
    )
    doc = json.loads((tmp_path / "p.json").read_text())
    assert [(j["digest"], j["identity"], j["tags"]) for j in doc["jobs"]] == [(digest, "admin", ["v1"])]
    jobs = [d for d in yaml.safe_load_all((tmp_path / "job.yaml").read_text()) if d and d.get("kind") == "Job"]
    assert len(jobs) == 1
    spec = jobs[0]["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == 3
    assert "JOB_COMPLETION_INDEX" in (tmp_path / "job.yaml").read_text()
    assert (
        f"plan {tmp_path / 'job.yaml'}: a Job sketch without keys or credentials; `dct2notation k8s-job` writes one "
        "that runs as written (docs/k8s.md)\n"
    ) in capsys.readouterr().err

    capsys.readouterr()
    assert main(["plan", *common, *signers, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert digest[:19] in out and "admin" in out
