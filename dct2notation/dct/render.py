"""Human output of an inventory: the tables ``docker trust inspect --pretty`` prints."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ..report import shown
from ..safetext import printable
from .inventory import Inventory


def print_inventory(inventory: Inventory, console: Console | None = None) -> None:
    # Full key IDs and digests matter more than fitting a narrow pipe; 200 columns when not a terminal.
    out = console or Console(width=None if __import__("sys").stdout.isatty() else 200)
    for repo in inventory.repositories:
        gun = shown(repo["gun"])
        tags = Table(title=f"Signatures for {gun}", title_justify="left")
        # At 80 columns nothing is cut with "…": the tag keeps its width, the rest folds onto more lines.
        longest = max((len(printable(r["tag"])) for r in repo["signed_tags"]), default=0)
        tags.add_column("SIGNED TAG", no_wrap=True, min_width=max(len("SIGNED TAG"), longest))
        for column in ("DIGEST", "SIGNERS", "PULL-TRUSTED"):
            tags.add_column(column, overflow="fold")
        trusted = {(t["tag"], t["digest"]) for t in repo["trusted_tags"]}
        for row in repo["signed_tags"]:
            pulled = "yes" if (row["tag"], row["digest"]) in trusted else ""
            cells = (row["tag"], row["digest"].removeprefix("sha256:"), ", ".join(row["signers"]))
            tags.add_row(*map(shown, cells), pulled)
        out.print(tags)
        if repo["signers"]:
            signers = Table(title=f"List of signers and their keys for {gun}", title_justify="left")
            signers.add_column("SIGNER", overflow="fold")
            signers.add_column("KEYS", overflow="fold")
            for signer in repo["signers"]:
                signers.add_row(shown(signer["name"]), shown(", ".join(k["id"][:12] for k in signer["keys"])))
            out.print(signers)
        admin = Table(title=f"Administrative keys for {gun}", title_justify="left")
        admin.add_column("ROLE", no_wrap=True)
        admin.add_column("KEYS", overflow="fold")
        # docker trust inspect --pretty lists the Repository Key before the Root Key.
        for entry in sorted(repo["administrative_keys"], key=lambda entry: entry["name"] == "Root"):
            admin.add_row(
                entry["name"] + " Key" if entry["name"] == "Root" else "Repository Key",
                shown(", ".join(k["id"] for k in entry["keys"])),
            )
        out.print(admin)
        for conflict in repo["conflicts"]:
            detail = ", ".join(f"{role}={digest}" for role, digest in conflict["digests"].items())
            out.print(f"[yellow]conflict[/yellow]: tag {shown(conflict['tag'])}: {shown(detail)}")
