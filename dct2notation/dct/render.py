"""Human output of an inventory: the tables ``docker trust inspect --pretty`` prints."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ..report import shown
from .inventory import Inventory


def print_inventory(inventory: Inventory, console: Console | None = None) -> None:
    # Full key IDs and digests matter more than fitting a narrow pipe; 200 columns when not a terminal.
    out = console or Console(width=None if __import__("sys").stdout.isatty() else 200)
    for repo in inventory.repositories:
        gun = shown(repo["gun"])
        tags = Table(title=f"Signatures for {gun}", title_justify="left")
        for column in ("SIGNED TAG", "DIGEST", "SIGNERS", "PULL-TRUSTED"):
            tags.add_column(column)
        trusted = {(t["tag"], t["digest"]) for t in repo["trusted_tags"]}
        for row in repo["signed_tags"]:
            pulled = "yes" if (row["tag"], row["digest"]) in trusted else ""
            cells = (row["tag"], row["digest"].removeprefix("sha256:"), ", ".join(row["signers"]))
            tags.add_row(*map(shown, cells), pulled)
        out.print(tags)
        if repo["signers"]:
            signers = Table(title=f"List of signers and their keys for {gun}", title_justify="left")
            signers.add_column("SIGNER")
            signers.add_column("KEYS")
            for signer in repo["signers"]:
                signers.add_row(shown(signer["name"]), shown(", ".join(k["id"][:12] for k in signer["keys"])))
            out.print(signers)
        admin = Table(title=f"Administrative keys for {gun}", title_justify="left")
        admin.add_column("ROLE")
        admin.add_column("KEYS")
        for entry in repo["administrative_keys"]:
            admin.add_row(
                entry["name"] + " Key" if entry["name"] == "Root" else "Repository Key",
                shown(", ".join(k["id"] for k in entry["keys"])),
            )
        out.print(admin)
        for conflict in repo["conflicts"]:
            detail = ", ".join(f"{role}={digest}" for role, digest in conflict["digests"].items())
            out.print(f"[yellow]conflict[/yellow]: tag {shown(conflict['tag'])}: {shown(detail)}")
