"""Connaisseur Helm values for the coexistence window: a ``notaryv1`` validator (DCT) and ``notation`` validators.

Connaisseur applies exactly one validator per image (the rule with the most specific pattern), so the window is two
files holding the same validators and different rules: ``values-dct.yaml`` keeps DCT as the admission gate while
Notation is observed (``either``) and then enforced beside it by Kyverno or Ratify (``both``); ``values-notation.yaml``
switches the migrated repositories to Notation only (runbooks 05, 06, 07). The notaryv1 validator pins each GUN's
root key from the archive and requires the delegations that signed every pullable tag. Its notation validator checks
the certificate chain only (trustedIdentities "*"), reported per statement like Kyverno's.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..gaps import Gap
from .base import PREFIX, AdmissionInput, Document, Rendered, any_identity_gaps
from .image_names import connaisseur_globs

DCT_VALIDATOR = f"{PREFIX}-dct"


def root_name(key_pem: str) -> str:
    return "root-" + hashlib.sha256(key_pem.encode()).hexdigest()[:12]


def _notation_validators(inp: AdmissionInput) -> list[dict[str, Any]]:
    validators = []
    for statement in inp.statements():
        tsa = inp.pem_bundle(statement, "tsa")
        roots = []
        for store in inp.store_names(statement, "ca"):
            root: dict[str, Any] = {"name": store, "cert": inp.pem_bundle({"trustStores": [f"ca:{store}"]}, "ca")}
            if tsa:
                root["tsCert"] = tsa
            roots.append(root)
        validator: dict[str, Any] = {"name": f"{PREFIX}-{statement['name']}", "type": "notation", "trustRoots": roots}
        if inp.pull_secret:
            validator["auth"] = {"secretName": inp.pull_secret}
        validators.append(validator)
    return validators


def _dct_validator(inp: AdmissionInput) -> dict[str, Any]:
    roots = {root_name(r.root_key_pem): r.root_key_pem for r in inp.dct}
    return {
        "name": DCT_VALIDATOR,
        "type": "notaryv1",
        "host": inp.notary_host,
        "trustRoots": [{"name": name, "key": key} for name, key in sorted(roots.items())],
    }


def _dct_rules(inp: AdmissionInput) -> list[dict[str, Any]]:
    rules = []
    for repo in sorted(inp.dct, key=lambda r: r.gun):
        options: dict[str, Any] = {"trustRoot": root_name(repo.root_key_pem)}
        if repo.delegations:
            options["delegations"] = list(repo.delegations)
        rules += [{"pattern": g, "validator": DCT_VALIDATOR, "with": options} for g in connaisseur_globs(repo.gun)]
    return rules


def _notation_rules(inp: AdmissionInput) -> list[dict[str, Any]]:
    rules = []
    for statement in inp.statements():
        verification = statement["signatureVerification"]
        options: dict[str, Any] = {"trustRoot": "*", "verificationLevel": verification["level"]}
        if inp.store_names(statement, "tsa"):
            options["verifyTimestamp"] = verification.get("verifyTimestamp", "always")
        validator = f"{PREFIX}-{statement['name']}"
        for scope in statement["registryScopes"]:
            rules += [{"pattern": g, "validator": validator, "with": options} for g in connaisseur_globs(str(scope))]
    return rules


def render(inp: AdmissionInput) -> Rendered:
    if not inp.dct or inp.notary_host is None:
        return Rendered()
    validators = [_dct_validator(inp), *_notation_validators(inp)]
    files: list[tuple[str, list[Document]]] = [
        ("connaisseur/values-dct.yaml", [{"application": {"validators": validators, "policy": _dct_rules(inp)}}]),
        (
            "connaisseur/values-notation.yaml",
            [{"application": {"validators": validators, "policy": _notation_rules(inp)}}],
        ),
    ]
    gaps = [
        Gap("connaisseur-releases-only", f"{r.gun} ({', '.join(r.admin_only_tags)})", (r.repository,))
        for r in inp.dct
        if r.admin_only_tags and not r.delegations
    ]
    gaps += [
        Gap("connaisseur-moved", f"{r.gun} -> {r.repository}", (r.repository,))
        for r in inp.dct
        if r.gun != r.repository
    ]
    # notation-go under Connaisseur runs with trustedIdentities ["*"]: the chain is checked, not the subject.
    gaps += any_identity_gaps(inp, "connaisseur-any-identity")
    return Rendered(files=files, gaps=gaps)
