"""Trust policy v1.0 (trust-store-trust-policy.md), validated as notation-go ``verifier/trustpolicy`` does.

Every rule failure is a ``ConfigError`` whose message names the statement and the rule, worded like Notation's own
messages so operators can search for them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..config import DEFAULT_LIMITS
from ..errors import ConfigError, UsageError
from ..files import read_capped
from ..jsontext import loads as json_loads
from ..safetext import printable

CHECKS = ("integrity", "authenticity", "authenticTimestamp", "expiry", "revocation")
LEVELS: dict[str, dict[str, str]] = {
    "strict": dict.fromkeys(CHECKS, "enforce"),
    "permissive": {
        "integrity": "enforce",
        "authenticity": "enforce",
        "authenticTimestamp": "log",
        "expiry": "log",
        "revocation": "log",
    },
    "audit": {"integrity": "enforce", **dict.fromkeys(CHECKS[1:], "log")},
    "skip": dict.fromkeys(CHECKS, "skip"),
}
STORE_TYPES = ("ca", "signingAuthority", "tsa")
# Matched with fullmatch, as every name here: ``$`` also matches before a final newline ("acme\n" was a store).
STORE_NAME = re.compile(r"[a-zA-Z0-9_.-]+")
X509_SUBJECT = "x509.subject"
WILDCARD = "*"
# distribution/reference grammar, as notation-go validateRegistryScopeFormat uses it.
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))+)?(?::[0-9]+)?"
)
_REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*)*")
_STATEMENT_KEYS = {
    "oci": {"name", "registryScopes", "signatureVerification", "trustStores", "trustedIdentities"},
    "blob": {"name", "globalPolicy", "signatureVerification", "trustStores", "trustedIdentities"},
}
_VERIFICATION_KEYS = {"level", "override", "verifyTimestamp"}

Kind = Literal["oci", "blob"]


# --- RFC 4514 distinguished names ------------------------------------------------------------------------------------


def parse_dn(text: str) -> list[list[tuple[str, str]]]:
    """An RFC 4514 string → its RDNs, each a list of (type, value), split and unescaped as go-ldap's ``ParseDN``
    (v3.4.11, which notation-go uses) does: types keep their case, unescaped spaces around a type or value are
    dropped, ``\\`` escapes one special character or one hex byte, a value may be empty. Raises ``ValueError``."""
    if "=#" in text:
        # notation-go refuses these before parsing (hex-encoded BER values); go-ldap would decode them.
        raise ValueError('notation does not support x509.subject identities containing "=#"')
    rdns: list[list[tuple[str, str]]] = []
    if not text.strip():
        return rdns
    rdn: list[tuple[str, str]] = []
    kind = ""  # the current attribute's type; "" until its "=" (an empty decoded type counts as none, as in Go)
    start = 0
    escaping = False
    for i, ch in enumerate(text):
        if escaping:
            escaping = False
        elif ch == "\\":
            escaping = True
        elif ch == "=" and not kind:
            kind = _ldap_decode(text[start:i])
            start = i + 1
        elif ch in ",+;":
            if not kind:
                raise ValueError("is not valid RFC 4514 (incomplete type, value pair)")
            rdn.append((kind, _ldap_decode(text[start:i])))
            kind, start = "", i + 1
            if ch != "+":
                rdns.append(rdn)
                rdn = []
    if not kind:
        raise ValueError("is not valid RFC 4514 (it ends with an incomplete type, value pair)")
    rdn.append((kind, _ldap_decode(text[start:])))
    rdns.append(rdn)
    return rdns


_LDAP_SPECIAL = frozenset(' "#+,;<=>\\')


def _ldap_decode(raw: str) -> str:
    """go-ldap's ``decodeString``: trim unescaped spaces (an escaped trailing one stays), then unescape."""
    text = raw.strip(" ")
    if text.endswith("\\") and raw.endswith(" "):
        text += " "
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out += ch.encode("utf-8", "surrogatepass")  # a lone surrogate from JSON: kept, matching nothing
            i += 1
            continue
        if i + 1 >= len(text):
            raise ValueError("is not valid RFC 4514 (a corrupted escaped character)")
        if text[i + 1] in _LDAP_SPECIAL:
            out += text[i + 1].encode()
            i += 2
            continue
        pair = text[i + 1 : i + 3].encode("utf-8", "surrogatepass")
        if len(pair) != 2 or not all(c in b"0123456789abcdefABCDEF" for c in pair):
            raise ValueError(f"is not valid RFC 4514 (a bad escape {text[i : i + 3]!r})")
        out.append(int(pair, 16))
        i += 3
    # Go compares bytes: a hex escape that is not UTF-8 stays distinct from every certificate value.
    return out.decode("utf-8", "surrogateescape")


def dn_map(text: str) -> dict[str, str]:
    """notation-go's ``ParseDistinguishedName``: single-valued RDNs only, each type once (``S`` is ``ST``), and
    non-empty C, ST and O. Types are case-sensitive, as there: ``o=Acme`` is not an ``O``."""
    result: dict[str, str] = {}
    for rdn in parse_dn(text):
        if len(rdn) > 1:
            raise ValueError("has multi-valued RDN attributes, which are not supported")
        for attr, value in rdn:
            name = "ST" if attr == "S" else attr
            if result.get(name):
                raise ValueError(f'has duplicate RDN attribute for "{name}", DN can only have unique RDN attributes')
            result[name] = value  # an empty earlier value is overwritten, as Go's map check allows
    for mandatory in ("C", "ST", "O"):
        if not result.get(mandatory):
            raise ValueError(f'has no mandatory RDN attribute for "{mandatory}" (C, ST and O are all required)')
    return result


def is_subset_dn(small: Mapping[str, str], big: Mapping[str, str]) -> bool:
    """Every pair of ``small`` is in ``big``; a missing type reads as the empty value (a Go map lookup)."""
    return all(big.get(k, "") == v for k, v in small.items())


# --- model ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustPolicyStatement:
    name: str
    level: str
    overrides: dict[str, str]
    verify_timestamp: str
    trust_stores: tuple[tuple[str, str], ...]
    trusted_identities: tuple[str, ...]
    registry_scopes: tuple[str, ...] = ()
    global_policy: bool = False
    x509_subjects: tuple[dict[str, str], ...] = field(default=(), compare=False)

    def action(self, check: str) -> str:
        """``enforce``, ``log`` or ``skip`` for a check, after overrides."""
        return self.overrides.get(check, LEVELS[self.level][check])

    def stores(self, store_type: str) -> list[str]:
        return [name for kind, name in self.trust_stores if kind == store_type]

    def unenforced(self) -> str | None:
        """Why a pass under this statement shows no trusted signer, or None when it enforces integrity and
        authenticity (strict, permissive). ``audit`` only logs authenticity and ``skip`` checks nothing: Notation
        reports such a signature verified, but a gate or sign-off that counted it would certify any signer."""
        lax = [
            (check, self.action(check)) for check in ("integrity", "authenticity") if self.action(check) != "enforce"
        ]
        if not lax:
            return None
        what = ", ".join(f"{check} is {'skipped' if action == 'skip' else 'only logged'}" for check, action in lax)
        return (
            f'trust policy statement "{self.name}" (level {self.level}) does not enforce integrity and authenticity '
            f"({what}), so a signature passing under it is not counted as Notation-valid"
        )


def _fail(statement: str, rule: str) -> ConfigError:
    return ConfigError(f'trust policy statement "{statement}" {rule}')


def _strings(value: Any, what: str, statement: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(statement, f"has a malformed {what}: must be an array of strings")
    return list(value)


def _validate_scope(statement: str, scope: str) -> None:
    head, slash, repo = scope.partition("/")
    if not slash or not head or not repo or not _DOMAIN.fullmatch(head) or not _REPOSITORY.fullmatch(repo):
        # printable here, not only in the error base: that one makes a newline a space, and "app " would hide it.
        raise _fail(
            statement,
            f'registry scope "{printable(scope)}" is not valid, make sure it is a fully qualified repository without '
            "the scheme, tag or digest, e.g. example.com/my/repository "
            "(wildcards are only allowed as the sole scope '*')",
        )


def _parse_verification(name: str, obj: Any) -> tuple[str, dict[str, str], str]:
    if not isinstance(obj, dict):
        raise _fail(name, "has no signatureVerification object")
    unknown = set(obj) - _VERIFICATION_KEYS
    if unknown:
        raise _fail(name, f"has unknown signatureVerification field(s) {sorted(unknown)}")
    level = obj.get("level")
    if not isinstance(level, str) or not level:
        raise _fail(name, "is missing signatureVerification.level")
    if level not in LEVELS:
        raise _fail(name, f'uses invalid signature verification level "{level}" (strict, permissive, audit or skip)')
    overrides: dict[str, str] = {}
    raw_override = obj.get("override")
    if raw_override is not None:
        if not isinstance(raw_override, dict):
            raise _fail(name, "has a malformed signatureVerification.override: must be an object")
        if level == "skip" and raw_override:
            raise _fail(name, 'uses the "skip" level, which cannot be overridden')
        for check, action in raw_override.items():
            if check == "integrity":
                raise _fail(name, 'overrides "integrity" verification, which can not be overridden')
            if check not in CHECKS:
                raise _fail(name, f'overrides an unknown validation type "{check}"')
            if action not in ("enforce", "log", "skip"):
                raise _fail(name, f'uses an unsupported verification action "{action}" for "{check}"')
            if action == "skip" and check != "revocation":
                raise _fail(name, f'uses verification action "skip" for "{check}"; only "revocation" can be skipped')
            overrides[check] = action
    verify_ts = obj.get("verifyTimestamp", "always")
    if verify_ts not in ("always", "afterCertExpiry"):
        raise _fail(name, f'uses an invalid verifyTimestamp value "{verify_ts}" (always or afterCertExpiry)')
    return level, overrides, verify_ts


def _parse_stores(name: str, values: list[str]) -> tuple[tuple[str, str], ...]:
    stores: list[tuple[str, str]] = []
    for value in values:
        kind, sep, store = value.partition(":")
        if not sep:
            raise _fail(
                name,
                f'has malformed trust store value "{value}". The required format is <TrustStoreType>:<TrustStoreName>',
            )
        if kind not in STORE_TYPES:
            raise _fail(name, f'uses an unsupported trust store type "{kind}" in trust store value "{value}"')
        if not STORE_NAME.fullmatch(store):
            raise _fail(
                name,
                f'uses an unsupported trust store name "{printable(store)}" in trust store value '
                f'"{printable(value)}". '
                "Named store name needs to follow [a-zA-Z0-9_.-]+ format",
            )
        if (kind, store) in stores:
            raise _fail(name, f'lists trust store "{value}" more than once')
        stores.append((kind, store))
    return tuple(stores)


def _parse_identities(name: str, values: list[str]) -> tuple[dict[str, str], ...]:
    if WILDCARD in values:
        if len(values) > 1:
            raise _fail(
                name,
                "uses a wildcard trusted identity '*', a wildcard identity cannot be used in conjunction with "
                "other values",
            )
        return ()
    parsed: list[tuple[str, dict[str, str]]] = []
    for identity in values:
        if not identity.strip():
            raise _fail(name, "has an empty trusted identity")
        prefix, sep, value = identity.partition(":")
        if not sep:
            raise _fail(name, f'has trusted identity "{identity}" missing separator')
        if prefix != X509_SUBJECT:
            continue  # other identity types belong to verification plugins (notation-go compares the prefix exactly)
        if not value.strip():
            raise _fail(name, f'has trusted identity "{identity}" without an identity value')
        try:
            parsed.append((identity, dn_map(value)))  # as notation-go: go-ldap trims the spaces it should
        except ValueError as exc:
            raise _fail(name, f'has trusted identity "{identity}" whose distinguished name (DN) {exc}') from exc
    for i, (raw_a, dn_a) in enumerate(parsed):
        for raw_b, dn_b in parsed[i + 1 :]:
            if is_subset_dn(dn_a, dn_b) or is_subset_dn(dn_b, dn_a):
                raise _fail(name, f'has overlapping x509 trustedIdentities, "{raw_a}" overlaps with "{raw_b}"')
    return tuple(dn for _, dn in parsed)


def _parse_statement(obj: Any, index: int, kind: Kind) -> TrustPolicyStatement:
    if not isinstance(obj, dict):
        raise ConfigError(f"trust policy statement #{index + 1} is not a JSON object")
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"trust policy statement #{index + 1} is missing a name")
    unknown = set(obj) - _STATEMENT_KEYS[kind]
    if unknown:
        raise _fail(name, f"has unknown field(s) {sorted(unknown)} for a {kind} trust policy")
    level, overrides, verify_ts = _parse_verification(name, obj.get("signatureVerification"))

    scopes: list[str] = []
    if kind == "oci":
        scopes = _strings(obj.get("registryScopes", []), "registryScopes", name)
        if not scopes:
            raise _fail(name, "has zero registry scopes, it must specify registry scopes with at least one value")
        if WILDCARD in scopes and len(scopes) > 1:
            raise _fail(
                name,
                "uses wildcard registry scope '*', a wildcard scope cannot be used in conjunction with other scope "
                "values",
            )
        for scope in scopes:
            if scope != WILDCARD:
                _validate_scope(name, scope)
    global_policy = obj.get("globalPolicy", False)
    if not isinstance(global_policy, bool):
        raise _fail(name, "has a non-boolean globalPolicy")

    stores_raw = _strings(obj.get("trustStores", []), "trustStores", name)
    identities_raw = _strings(obj.get("trustedIdentities", []), "trustedIdentities", name)
    if level == "skip":
        if stores_raw or identities_raw:
            raise _fail(
                name,
                "is set to skip signature verification but configured with trust stores and/or trusted identities, "
                "remove them as they are not needed",
            )
        if global_policy:
            raise _fail(name, "is set to skip signature verification, which a global blob policy cannot do")
    elif not stores_raw or not identities_raw:
        raise _fail(name, "is either missing trust stores or trusted identities, both must be specified")
    stores = _parse_stores(name, stores_raw)
    subjects = _parse_identities(name, identities_raw)
    return TrustPolicyStatement(
        name=name,
        level=level,
        overrides=overrides,
        verify_timestamp=verify_ts,
        trust_stores=stores,
        trusted_identities=tuple(identities_raw),
        registry_scopes=tuple(scopes),
        global_policy=global_policy,
        x509_subjects=subjects,
    )


def policy_file(config_dir: Path) -> Path:
    """The OCI trust policy file ``notation verify`` reads from its config dir: ``trustpolicy.oci.json`` (Notation
    1.2 and later look for it first), else ``trustpolicy.json`` (the only name older Notation reads)."""
    for name in ("trustpolicy.oci.json", "trustpolicy.json"):
        path = config_dir / name
        if path.exists() or path.is_symlink():
            return path
    raise ConfigError(f"{config_dir}: no trustpolicy.oci.json or trustpolicy.json (or give --policy FILE)")


def notation_trust_files(policy: Path | None, truststore: Path | None) -> tuple[Path, Path]:
    """``--policy`` and ``--truststore``, else what ``notation verify`` reads: the policy file of $NOTATION_CONFIG
    (default ~/.config/notation) and its ``truststore`` directory."""
    from ..keys.signingkeys import notation_config_dir

    config = notation_config_dir(None)
    return (policy if policy is not None else policy_file(config)), (
        truststore if truststore is not None else config / "truststore"
    )


@dataclass(frozen=True)
class TrustPolicyDocument:
    version: str
    statements: tuple[TrustPolicyStatement, ...]
    kind: Kind = "oci"

    @classmethod
    def load(cls, path: Path, *, kind: Kind = "oci") -> TrustPolicyDocument:
        if path.is_symlink():
            raise ConfigError(f"{path}: trust policy is a symlink, which Notation refuses")
        try:
            # O_NOFOLLOW, a regular file only (a FIFO would hang), at most config_file_bytes + 1 bytes.
            data = read_capped(path.parent, path.name, DEFAULT_LIMITS.config_file_bytes, what="trust policy")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read trust policy ({exc.strerror})") from exc
        try:
            obj = json_loads(data)
        except ValueError as exc:
            raise ConfigError(f"{path}: malformed trust policy, not valid JSON ({exc})") from exc
        try:
            return cls.from_dict(obj, kind=kind)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc

    @classmethod
    def load_from_config(cls, config_dir: Path) -> TrustPolicyDocument:
        """The OCI policy of a Notation config dir: ``trustpolicy.oci.json`` (Notation 2), else ``trustpolicy.json``
        (the only name Notation 1.x reads)."""
        return cls.load(policy_file(config_dir))

    @classmethod
    def from_dict(cls, obj: Any, where: str = "", *, kind: Kind = "oci") -> TrustPolicyDocument:
        try:
            return cls._from_dict(obj, kind)
        except ConfigError as exc:
            if where:
                raise ConfigError(f"{where}: {exc}") from exc
            raise

    @classmethod
    def _from_dict(cls, obj: Any, kind: Kind) -> TrustPolicyDocument:
        if not isinstance(obj, dict):
            raise ConfigError("trust policy document is not a JSON object")
        unknown = set(obj) - {"version", "trustPolicies"}
        if unknown:
            raise ConfigError(f"trust policy document has unknown field(s) {sorted(unknown)}")
        version = obj.get("version")
        if version != "1.0":
            raise ConfigError(f'trust policy document uses unsupported version "{version}" (only "1.0")')
        raw = obj.get("trustPolicies")
        if not isinstance(raw, list) or not raw:
            raise ConfigError("trust policy document can not have zero trust policy statements")
        statements = [_parse_statement(item, i, kind) for i, item in enumerate(raw)]
        seen_names: set[str] = set()
        for st in statements:
            if st.name in seen_names:
                raise ConfigError(
                    f'multiple {kind} trust policy statements use the same name "{st.name}", '
                    "statement names must be unique"
                )
            seen_names.add(st.name)
        scope_owner: dict[str, str] = {}
        for st in statements:
            for scope in st.registry_scopes:
                if scope in scope_owner and scope_owner[scope] == st.name:
                    raise _fail(
                        st.name,
                        f'lists registry scope "{scope}" twice: registry scope "{scope}" is present in multiple oci '
                        "trust policy statements, one registry scope value can only be associated with one statement",
                    )
                if scope in scope_owner:
                    raise ConfigError(
                        f'registry scope "{scope}" is present in multiple oci trust policy statements, one registry '
                        f'scope value can only be associated with one statement ("{scope_owner[scope]}" and '
                        f'"{st.name}")'
                    )
                scope_owner[scope] = st.name
        globals_ = [st.name for st in statements if st.global_policy]
        if len(globals_) > 1:
            raise ConfigError(f"multiple blob trust policy statements are marked global: {', '.join(globals_)}")
        return cls(version=version, statements=tuple(statements), kind=kind)

    def statement_for(self, reference: str) -> TrustPolicyStatement:
        """The statement governing ``reference`` (``registry/repo@sha256:…``): exact scope, else ``*``."""
        scope = repository_of(reference)
        wildcard: TrustPolicyStatement | None = None
        for st in self.statements:
            if scope in st.registry_scopes:
                return st
            if WILDCARD in st.registry_scopes:
                wildcard = st
        if wildcard is not None:
            return wildcard
        raise ConfigError(f'artifact "{reference}" has no applicable oci trust policy statement (scope "{scope}")')

    def statement_named(self, name: str | None = None) -> TrustPolicyStatement:
        """Blob policies: the named statement, else the global one."""
        for st in self.statements:
            if (name is not None and st.name == name) or (name is None and st.global_policy):
                return st
        raise ConfigError(f"no blob trust policy statement {'named ' + repr(name) if name else 'is global'}")


def repository_of(reference: str) -> str:
    """``registry/repo[:tag]@sha256:…`` → ``registry/repo``; a reference without a digest is refused."""
    name, at, digest = reference.partition("@")
    if not at or not digest:
        raise UsageError(f'artifact reference "{reference}" must contain a digest (@sha256:…)')
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:
        name = name[:colon]
    return name
