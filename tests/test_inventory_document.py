"""Docker's rules over a verified repository: ordering of ties, shadowing, signers and conflicts, exactly."""

from __future__ import annotations

import datetime as dt
import json

from dct2notation.dct.inventory import Inventory, natural_key, repository_document
from dct2notation.dct.tuf import Delegation, Target, VerifiedRepository, VerifiedRole

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")
EXPIRES = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def role(name: str, *targets: tuple[str, str, int]) -> VerifiedRole:
    return VerifiedRole(name, 1, EXPIRES, {t: Target(t, d, s) for t, d, s in targets}, [], ("",))


def repo(*roles: VerifiedRole) -> VerifiedRepository:
    delegations = [Delegation(r.name, 1, ("",), ()) for r in roles if r.name != "targets"]
    return VerifiedRepository(
        gun="example.com/app",
        root_version=1,
        root_keys=["r"],
        targets_keys=["t"],
        roles={r.name: r for r in roles},
        delegations=delegations,
        versions={r.name: 1 for r in roles},
        files={},
    )


def test_natural_key_orders_digit_runs_as_numbers() -> None:
    names = ["v10", "v9", "v1.10", "v1.9", "a", "1a", "a1", "", "12", "3", "b-007x", "b-7"]
    assert sorted(names, key=natural_key) == [
        "",
        "1a",
        "3",
        "12",
        "a",
        "a1",
        "b-7",
        "b-007x",
        "v1.9",
        "v1.10",
        "v9",
        "v10",
    ]
    assert natural_key("v01") == natural_key("v1") == ((1, "v"), (0, 1))


def test_equal_natural_keys_keep_releases_then_targets_order() -> None:
    # "v01" and "v1" sort equal; the trusted list keeps releases' tags before targets', each in file order.
    doc = repository_document(
        repo(
            role("targets", ("v1", D1, 1), ("v2", D2, 2)),
            role("targets/releases", ("v01", D1, 3), ("v2", D3, 4)),
        )
    )
    assert doc["trusted_tags"] == [
        {"tag": "v01", "digest": D1, "size": 3, "role": "targets/releases"},
        {"tag": "v1", "digest": D1, "size": 1, "role": "targets"},
        {"tag": "v2", "digest": D3, "size": 4, "role": "targets/releases"},
    ]
    # Rows are keyed by (tag, digest) in walk order (targets first), then sorted by (natural key, digest).
    assert doc["signed_tags"] == [
        {"tag": "v1", "digest": D1, "signers": ["Repo Admin"]},
        {"tag": "v01", "digest": D1, "signers": ["Repo Admin"]},
        {"tag": "v2", "digest": D2, "signers": ["Repo Admin"]},
        {"tag": "v2", "digest": D3, "signers": ["Repo Admin"]},
    ]
    assert doc["conflicts"] == [{"tag": "v2", "digests": {"targets": D2, "targets/releases": D3}}]


def test_signers_conflicts_and_role_targets() -> None:
    doc = repository_document(
        repo(
            role("targets", ("b10", D1, 1)),
            role("targets/releases", ("b9", D2, 2)),
            role("targets/alice", ("b9", D2, 2), ("b10", D1, 1), ("only-alice", D3, 5), ("c1", D1, 1)),
            role("targets/bob", ("b9", D2, 2), ("only-alice", D1, 5), ("c1", D2, 1)),
        )
    )
    assert [t["tag"] for t in doc["trusted_tags"]] == ["b9", "b10"]
    assert doc["signed_tags"] == [
        {"tag": "b9", "digest": D2, "signers": ["alice", "bob"]},
        {"tag": "b10", "digest": D1, "signers": ["alice"]},
    ]
    # Conflicts need different digests, not just several roles; order is natural, first-seen on ties.
    assert doc["conflicts"] == [
        {"tag": "c1", "digests": {"targets/alice": D1, "targets/bob": D2}},
        {"tag": "only-alice", "digests": {"targets/alice": D3, "targets/bob": D1}},
    ]
    assert doc["role_targets"]["targets/bob"] == [
        {"tag": "b9", "digest": D2, "size": 2},
        {"tag": "only-alice", "digest": D1, "size": 5},
        {"tag": "c1", "digest": D2, "size": 1},
    ]
    assert [s["name"] for s in doc["signers"]] == ["bob", "alice"]


def test_json_text_is_jsons_compact_text() -> None:
    names = ['q"b\\s', "ü-é-😀", "ls\u2028ps\u2029", "<a&b>", "del\x7f", "ctl\x01\t\n", "v10", "v9"]
    inventory = Inventory(
        evaluated_at="2026-01-01T00:00:00Z",
        repositories=[repository_document(repo(role("targets/releases", *((n, D1, 2**40) for n in names))))],
    )
    expected = json.dumps(inventory.to_dict(), ensure_ascii=False, separators=(",", ":"))
    assert inventory.to_json() == expected
    assert json.loads(expected)["repositories"][0]["trusted_tags"][0]["tag"] == "<a&b>"


def test_json_text_falls_back_where_orjson_refuses() -> None:
    inventory = Inventory(evaluated_at="x", repositories=[{"gun": "g", "lone": "\ud800", "big": 2**70}])
    assert inventory.to_json() == '{"format":"dct2notation-inventory/1","evaluated_at":"x","repositories":' + (
        '[{"gun":"g","lone":"\ud800","big":1180591620717411303424}]}'
    )
