"""``docker trust inspect``'s names and document, so scripts written against it (gone from Docker 29) keep working.

Docker normalises a name as its ``reference.ParseNormalizedNamed`` does: a first component without ``.`` or ``:``
(and not ``localhost``) is a Docker Hub repository, ``docker.io/`` in front, ``library/`` for a single component;
``NAME:TAG`` keeps that tag's row only. The document is the top-level array Docker prints, one object per name as the
user wrote it, with Docker's keys and order: ``Name``, ``SignedTags`` (``SignedTag``, ``Digest`` as bare hex,
``Signers``), ``Signers`` (``Name``, ``Keys[].ID``) and ``AdministrativeKeys`` (Repository before Root, as the
inventory keeps them), indented four spaces and HTML-escaped as Go's ``json.MarshalIndent`` writes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..imagename import REPOSITORY, split_name

_GO_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


@dataclass(frozen=True)
class DockerName:
    written: str  # as given: docker prints it as "Name"
    gun: str
    tag: str | None


def docker_name(text: str) -> DockerName:
    """``alpine`` → docker.io/library/alpine, ``acme/web:1`` → docker.io/acme/web tag 1, ``host:5000/a/b`` as is."""
    if "@" in text:
        raise UsageError(f"{text!r}: docker trust inspect takes NAME or NAME:TAG, not a digest")
    host, path, tag = split_name(text, where=repr(text))
    if not REPOSITORY.fullmatch(path):
        raise UsageError(f"{text!r}: invalid repository name (docker's: lowercase components separated by /)")
    return DockerName(text, f"{host}/{path}", tag)


def _keys(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"Name": e["name"], "Keys": [{"ID": k["id"]} for k in e["keys"]]} for e in entries]


def trust_inspect_document(names: Sequence[DockerName], repositories: Sequence[Mapping[str, Any]]) -> list[Any]:
    """One object per name, in the order given (a name twice is listed twice, as docker does)."""
    by_gun = {repo["gun"]: repo for repo in repositories}
    out: list[Any] = []
    for name in names:
        repo = by_gun.get(name.gun)
        if repo is None:
            continue  # its failure is reported as the inventory reports it
        rows = [r for r in repo["signed_tags"] if name.tag is None or r["tag"] == name.tag]
        out.append(
            {
                "Name": name.written,
                "SignedTags": [
                    {"SignedTag": r["tag"], "Digest": r["digest"].removeprefix("sha256:"), "Signers": r["signers"]}
                    for r in rows
                ],
                "Signers": _keys(repo["signers"]),
                "AdministrativeKeys": _keys(repo["administrative_keys"]),
            }
        )
    return out


def render(document: list[Any]) -> str:
    """The bytes ``docker trust inspect`` writes: Go's MarshalIndent with four spaces, then a newline."""
    text = json.dumps(document, indent=4, ensure_ascii=False)
    # Go escapes these in every string (HTML safety) and the two line separators JavaScript cannot hold.
    for raw, escaped in _GO_ESCAPES:
        text = text.replace(raw, escaped)
    return text + "\n"
