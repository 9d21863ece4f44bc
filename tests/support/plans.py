"""Plans the tests write by hand, bound to an inventory that trusts exactly their jobs (as `plan` would bind them)."""

from __future__ import annotations

import json
from pathlib import Path

from dct2notation.dct.inventory import load_inventory
from dct2notation.migrate.plan import InventoryBinding, Plan


def save_bound(plan: Plan, path: Path, inventory: Path | None = None) -> Path:
    """Write an inventory trusting each job's (GUN, digest, size, tags, roles), bind ``plan`` to it, save the plan at
    ``path``. The inventory goes to ``inventory`` (default ``inventory.json`` beside the plan); returns its path."""
    where = inventory or path.with_name("inventory.json")
    guns: dict[str, list[dict[str, object]]] = {}
    for job in plan.jobs:
        rows = guns.setdefault(job.gun, [])
        for tag in job.tags:
            for role in job.role.split(","):
                rows.append({"tag": tag, "digest": job.digest, "size": job.size, "role": role})
    doc = {
        "format": "dct2notation-inventory/1",
        "evaluated_at": "2026-01-01T00:00:00Z",
        "repositories": [{"gun": gun, "trusted_tags": rows} for gun, rows in sorted(guns.items())],
    }
    where.write_text(json.dumps(doc, indent=2) + "\n")
    loaded = load_inventory(where)
    assert loaded.digest is not None
    plan.inventory = InventoryBinding(loaded.digest, loaded.evaluated_at)
    plan.save(path)
    return where
