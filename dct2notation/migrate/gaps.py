"""What DCT enforced that the emitted Notation policy cannot: one stable sentence per kind, repositories listed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

GAPS_FORMAT = "dct2notation-gaps/1"

# Exact wording is part of the interface: reviewers diff GAPS.md between runs and tests assert it.
WHAT = {
    "threshold": "delegation requires {detail} signatures; Notation accepts one valid signature per artifact",
    "path-restricted": "delegation {detail} is limited to paths; Notation trust policies scope by repository only",
    "non-release-only": "tag {detail} is signed only by a non-release delegation; docker pull never trusted it",
    "unmapped-signer": "DCT signer {detail} has no Notation key in signers.toml",
    "no-certificate": "mapped key for {detail} has no certificate; its identity cannot be trusted",
    "incomplete-subject": "certificate subject of {detail} lacks C, ST or O; Notation cannot name it as an identity",
    # What an admission target cannot carry of the trust policy (migrate/admission/).
    "kyverno-any-identity": 'Kyverno verifies statement {detail} with trustedIdentities ["*"]: any certificate '
    "chaining to its roots is accepted, not only the mapped identities",
    "kyverno-timestamp-always": "Kyverno's notary attestor verifies with verifyTimestamp always once tsaCerts are set: "
    "signatures of statement {detail} without a timestamp are denied, even while their certificate is valid",
    "kyverno-clusterpolicy-no-tsa": "a Kyverno ClusterPolicy Notary rule takes no TSA roots: timestamped signatures "
    "of statement {detail} fail once their signing certificate expires",
    "ratify-v2-one-statement": "Ratify v2 runs one notation verifier for every scope: statement {detail} loses its "
    "own trusted identities and trust stores",
    "ratify-v2-no-pull-secret": "Ratify v2's registry-store takes no Kubernetes secret (only a username and password "
    "written into the Executor, or Azure workload identity): pull secret {detail} is not used and Ratify reads the "
    "signatures anonymously",
    "nirmata-no-tsa": "Nirmata's TrustStore has no tsa type and its TrustPolicy drops verifyTimestamp: statement "
    "{detail} verifies without its TSA roots",
    "connaisseur-any-identity": "Connaisseur's notation validator verifies statement {detail} with trustedIdentities "
    '["*"]: any certificate chaining to its roots is accepted, not only the mapped identities',
    "connaisseur-releases-only": "Connaisseur's notaryv1 validator reads targets/releases in a repository with "
    "delegations: tags of {detail} signed only by the Repo Admin (targets) are denied in the dct phase",
    "connaisseur-moved": "repository {detail} moved registry: Connaisseur's notaryv1 rule covers the DCT name only, "
    "an image pulled by the new name matches no DCT rule",
}
TODO = {
    "threshold": "require every co-signer in admission (Kyverno attestors count) or accept a single signer",
    "path-restricted": "split the images into separate repositories per delegation, or accept repository scope",
    "non-release-only": "no signature is migrated for it; sign it explicitly if it should be deployable",
    "unmapped-signer": "add a [[signer]] entry for this GUN and role to signers.toml and rerun",
    "no-certificate": "set cert_file (and ca_file) on its signers.toml entry and rerun",
    "incomplete-subject": "issue a certificate whose subject has C, ST and O; the signer is left out of the policy",
    "kyverno-any-identity": "enforce identities with Ratify v1 or Nirmata's TrustPolicy (nirmata/), or give the "
    "statement a root of its own",
    "kyverno-timestamp-always": "timestamp every signature (sign --timestamp-url) before enforcing, or emit with "
    "--verify-timestamp always so every verifier agrees",
    "kyverno-clusterpolicy-no-tsa": "use the default ImageValidatingPolicy (tsaCerts, Kyverno 1.17 or later), or "
    "re-sign before the certificates expire",
    "ratify-v2-one-statement": "use Ratify v1 (the default) or Nirmata's TrustPolicy while more than one statement "
    "is needed",
    "ratify-v2-no-pull-secret": "set the Executor's stores[0].parameters.credential by hand (provider static with "
    "the registry login, kept out of version control), or use Ratify v1 (the default), whose Store reads the secret",
    "nirmata-no-tsa": "use Kyverno's ImageValidatingPolicy or Ratify v1 for timestamped signatures, or re-sign "
    "before the certificates expire",
    "connaisseur-any-identity": "enforce identities with Ratify v1 or Nirmata's TrustPolicy beside it, or give the "
    "statement a root of its own",
    "connaisseur-releases-only": "sign those tags into targets/releases too, or go straight to the notation phase "
    "for this repository",
    "connaisseur-moved": "deploy by the DCT name during the dct phase, or go straight to the notation phase",
}


@dataclass(frozen=True)
class Gap:
    kind: str
    detail: str
    repositories: tuple[str, ...]

    @property
    def what(self) -> str:
        return WHAT[self.kind].format(detail=self.detail)

    @property
    def todo(self) -> str:
        return TODO[self.kind]

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "detail": self.detail, "what": self.what, "todo": self.todo,
                "repositories": list(self.repositories)}  # fmt: skip


class GapCollector:
    """Merges the same gap found in several repositories into one entry listing them all."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, str], set[str]] = {}

    def add(self, kind: str, detail: str, repository: str) -> None:
        self._found.setdefault((kind, detail), set()).add(repository)

    def gaps(self) -> list[Gap]:
        order = list(WHAT)
        return [
            Gap(kind, detail, tuple(sorted(repos)))
            for (kind, detail), repos in sorted(self._found.items(), key=lambda i: (order.index(i[0][0]), i[0][1]))
        ]


def gaps_json(gaps: Iterable[Gap]) -> bytes:
    doc = {"format": GAPS_FORMAT, "gaps": [gap.to_dict() for gap in gaps]}
    return (json.dumps(doc, indent=2, sort_keys=False) + "\n").encode()


def gaps_markdown(gaps: Iterable[Gap]) -> bytes:
    lines = ["# Gaps between DCT and the emitted Notation policy", ""]
    listed = list(gaps)
    if not listed:
        lines.append("None: every DCT rule found has a Notation equivalent.")
    for gap in listed:
        lines.append(f"## {gap.kind}: {gap.detail}")
        lines.append("")
        lines.append(f"- What: {gap.what}.")
        lines.append(f"- Do: {gap.todo}.")
        lines.append(f"- Repositories: {', '.join(gap.repositories)}")
        lines.append("")
    return ("\n".join(lines).rstrip("\n") + "\n").encode()
