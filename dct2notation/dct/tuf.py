"""Verify a GUN's Notary v1 (TUF) metadata: signatures, thresholds, hash chain, expiry, rotation, delegations.

Signature checks go through securesystemslib keys; the Notary-specific rules (key IDs, root certificates,
prefix paths, base64 hashes over raw bytes) are ours because python-tuf cannot read Notary's format.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import posixpath
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.exceptions import VerificationError as SslibVerificationError

from ..config import Clock, Limits, format_rfc3339, parse_rfc3339
from ..errors import Dct2NotationError, DCTVerificationError, NotFoundError
from ._sslib import Signature, SSlibKey
from .canonical import CanonicalError, encode, go_string, loads

BASE_ROLES = ("root", "targets", "snapshot", "timestamp")
# The role docker pulls from before ``targets`` (docker/cli trust.ReleasesRole).
RELEASES = "targets/releases"
_KEYTYPES = frozenset({"ecdsa", "ecdsa-x509", "rsa", "rsa-x509", "ed25519"})


class MetadataSource(Protocol):
    def fetch(self, gun: str, name: str, *, max_bytes: int | None = None) -> bytes:
        """Raw bytes of ``<name>.json`` for ``gun``; ``NotFoundError`` when absent."""
        ...

    def fetch_many(self, gun: str, wanted: Sequence[tuple[str, int]]) -> list[bytes | Dct2NotationError]:
        """Read several (name, max_bytes) at once, where the source can: ``fetch``'s answer for each of the first
        ones, in order (its bytes or the error it raised), possibly none; the rest are ``fetch``ed when needed.

        Several connections to a notary server answer them all in one round trip; a source that reads one file
        at a time answers none (reading early would only read files a failed check makes useless).
        """
        ...


# What notary's signatures cover (dct/canonical.py); also how TUF key IDs are hashed.
canonical = encode


@dataclass(frozen=True)
class PublicKey:
    id: str
    canonical_id: str
    keytype: str
    certificate_pem: str | None
    crypto: Any = field(repr=False, compare=False)
    certificate: x509.Certificate | None = field(default=None, repr=False, compare=False)


class Target(NamedTuple):
    """One signed tag. A tuple: a role holds thousands and a frozen dataclass costs 3x as much to build."""

    name: str
    digest: str  # sha256:<hex>
    size: int


@dataclass(frozen=True)
class Delegation:
    role: str
    threshold: int
    paths: tuple[str, ...]
    keys: tuple[PublicKey, ...]


@dataclass
class VerifiedRole:
    name: str
    version: int
    expires: dt.datetime
    targets: dict[str, Target]
    delegations: list[Delegation]
    paths: tuple[str, ...]


@dataclass(frozen=True)
class TrustedState:
    """What an earlier verification of one GUN established, as the notary client's cache holds it.

    ``root`` is the root.json verified then: the anchor every newer root must chain from (never trust on first use
    again). ``versions`` are the role versions seen then: a lower one is a rollback, a missing one an omission.
    """

    root: bytes | None = None
    versions: Mapping[str, int] = field(default_factory=dict)


class SkippedRole(NamedTuple):
    """A delegation notary would only warn about (expired or under-signed): its targets are not counted."""

    role: str
    reason: str

    def warning(self, gun: str) -> str:
        return f"{gun}: {self.role}: {self.reason}; skipped as notary does, its tags are not counted"


@dataclass
class VerifiedRepository:
    gun: str
    root_version: int
    root_keys: list[str]
    targets_keys: list[str]
    # Breadth-first order from ``targets``: the order notary walks and docker lists signers in.
    roles: dict[str, VerifiedRole]
    delegations: list[Delegation]
    versions: dict[str, int]
    # Raw bytes of every file read (``root``, ``N.root``, ``targets/x`` …) so an archive writes what was verified;
    # empty unless asked for (``keep_files``): an inventory needs none of them once verified.
    files: dict[str, bytes]
    skipped: list[SkippedRole] = field(default_factory=list)


class UnderSigned(DCTVerificationError):
    """Fewer valid signatures than the threshold (notary's ``ErrRoleThreshold``)."""


class Expired(DCTVerificationError):
    """Validly signed but past its ``expires`` (notary's ``ErrExpired``)."""


class _Fail:
    """Builds ``DCTVerificationError`` (or the given subclass) for one GUN."""

    def __init__(self, gun: str) -> None:
        self.gun = gun

    def __call__(
        self, role: str, reason: str, kind: type[DCTVerificationError] = DCTVerificationError
    ) -> DCTVerificationError:
        return kind(self.gun, role, reason)


_KEY_CACHE: dict[tuple[str, str], PublicKey] = {}


def _load_key(fail: _Fail, role: str, key_id: str, key: Any) -> PublicKey:
    if not isinstance(key, dict) or not isinstance(key.get("keyval"), dict):
        raise fail(role, f"key {key_id}: not a key object")
    keytype = key.get("keytype")
    public = key["keyval"].get("public")
    if not isinstance(keytype, str) or not isinstance(public, str):
        raise fail(role, f"key {key_id}: keytype/keyval.public missing")
    cached = _KEY_CACHE.get((keytype, public))
    if cached is not None and cached.id == key_id:
        return cached
    if keytype not in _KEYTYPES:
        raise fail(role, f"key {key_id}: unknown key type {keytype!r}")
    computed = hashlib.sha256(
        canonical({"keytype": keytype, "keyval": {"private": None, "public": public}})
    ).hexdigest()
    if computed != key_id:
        raise fail(role, f"key ID {key_id} does not match its key (computed {computed})")
    try:
        raw = base64.b64decode(public, validate=True)
    except binascii.Error as exc:
        raise fail(role, f"key {key_id}: public key is not base64") from exc
    cert: x509.Certificate | None = None
    pem: str | None = None
    try:
        if keytype.endswith("-x509"):
            certs = x509.load_pem_x509_certificates(raw)
            cert = certs[0]
            pem = raw.decode("ascii")
            crypto: Any = cert.public_key()
        elif keytype == "ed25519":
            crypto = ed25519.Ed25519PublicKey.from_public_bytes(raw)
        else:
            crypto = serialization.load_der_public_key(raw)
    except ValueError as exc:
        raise fail(role, f"key {key_id}: cannot parse {keytype} public key") from exc
    wants_ec = keytype.startswith("ecdsa")
    if wants_ec and not isinstance(crypto, ec.EllipticCurvePublicKey):
        raise fail(role, f"key {key_id}: keytype {keytype} but not an EC key")
    if keytype.startswith("rsa") and not isinstance(crypto, rsa.RSAPublicKey):
        raise fail(role, f"key {key_id}: keytype {keytype} but not an RSA key")
    if keytype.endswith("-x509"):
        spki = crypto.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        bare = "ecdsa" if wants_ec else "rsa"
        canonical_id = hashlib.sha256(
            canonical({"keytype": bare, "keyval": {"private": None, "public": base64.b64encode(spki).decode()}})
        ).hexdigest()
    else:
        canonical_id = key_id
    loaded = PublicKey(key_id, canonical_id, keytype, pem, crypto, cert)
    _KEY_CACHE[(keytype, public)] = loaded
    return loaded


def _sslib(key: PublicKey) -> SSlibKey | None:
    """The securesystemslib key, or None where sslib's scheme would hash differently than notary does."""
    crypto = key.crypto
    if isinstance(crypto, ec.EllipticCurvePublicKey):
        if crypto.curve.name != "secp256r1":
            return None  # notary hashes every curve with SHA-256; sslib would pick SHA-384/512
        return SSlibKey.from_crypto(crypto, keyid=key.id, scheme="ecdsa-sha2-nistp256")
    if isinstance(crypto, rsa.RSAPublicKey):
        return SSlibKey.from_crypto(crypto, keyid=key.id, scheme="rsassa-pss-sha256")
    return SSlibKey.from_crypto(crypto, keyid=key.id, scheme="ed25519")


_SSLIB_CACHE: dict[str, SSlibKey | None] = {}


def _signature_valid(key: PublicKey, method: str, raw: bytes, payload: bytes) -> bool:
    crypto = key.crypto
    if isinstance(crypto, ec.EllipticCurvePublicKey):
        if method != "ecdsa":
            return False
        half = (crypto.curve.key_size + 7) // 8
        if len(raw) != 2 * half:
            return False  # notary accepts only fixed-width r||s
        der = encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
        if crypto.curve.name != "secp256r1":
            try:
                crypto.verify(der, payload, ec.ECDSA(hashes.SHA256()))
                return True
            except InvalidSignature:
                return False
        sig_bytes = der
    elif isinstance(crypto, rsa.RSAPublicKey):
        if method == "rsapkcs1v15":
            try:
                crypto.verify(raw, payload, padding.PKCS1v15(), hashes.SHA256())
                return True
            except InvalidSignature:
                return False
        if method not in ("rsapss", "pycrypto-pkcs#1 pss"):
            return False
        sig_bytes = raw
    else:
        if method != "eddsa":
            return False
        sig_bytes = raw
    if key.id not in _SSLIB_CACHE:
        _SSLIB_CACHE[key.id] = _sslib(key)
    sslib = _SSLIB_CACHE[key.id]
    if sslib is None:
        return False
    try:
        sslib.verify_signature(Signature(key.id, sig_bytes.hex()), payload)
    except (UnverifiedSignatureError, SslibVerificationError):
        return False
    return True


def _check_threshold(
    fail: _Fail, role: str, doc: dict[str, Any], keys: Mapping[str, PublicKey], threshold: int, what: str = ""
) -> None:
    signatures = doc.get("signatures")
    if not isinstance(signatures, list):
        raise fail(role, "signatures: expected a list")
    try:
        payload = canonical(doc["signed"])
    except CanonicalError as exc:
        raise fail(role, f"signed part has no canonical JSON form, so no signature can match: {exc}") from exc
    valid: set[str] = set()
    bad = 0
    for sig in signatures:
        if not isinstance(sig, dict):
            raise fail(role, "signatures: expected objects")
        key = keys.get(sig.get("keyid", ""))
        if key is None or key.id in valid:
            continue
        try:
            raw = base64.b64decode(str(sig.get("sig", "")), validate=True)
        except binascii.Error:
            bad += 1
            continue
        if _signature_valid(key, str(sig.get("method", "")).lower(), raw, payload):
            valid.add(key.id)
        else:
            bad += 1
    if len(valid) < threshold:
        reason = "bad signature" if bad else "threshold not met"
        raise fail(role, f"{reason}: {len(valid)} valid of threshold {threshold}{what}", UnderSigned)


def _parse(fail: _Fail, role: str, raw: bytes, expected_type: str) -> dict[str, Any]:
    try:
        doc = loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise fail(role, f"malformed JSON ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("signed"), dict):
        raise fail(role, "malformed metadata: no 'signed' object")
    signed = doc["signed"]
    if signed.get("_type") != expected_type:
        raise fail(role, f"_type is {signed.get('_type')!r}, expected {expected_type!r}")
    if not isinstance(signed.get("version"), int) or isinstance(signed.get("version"), bool):
        raise fail(role, "version: expected an integer")
    return doc


def _expires(fail: _Fail, role: str, signed: dict[str, Any], clock: Clock) -> dt.datetime:
    text = signed.get("expires")
    if not isinstance(text, str):
        raise fail(role, "expires: missing")
    try:
        when = parse_rfc3339(text)
    except Dct2NotationError as exc:
        raise fail(role, f"expires: not an RFC 3339 time ({text!r})") from exc
    now = clock.now()
    if when <= now:
        raise fail(role, f"expired at {text} (evaluated at {format_rfc3339(now, fraction=True)})", Expired)
    return when


def _check_meta(fail: _Fail, role: str, raw: bytes, meta: Any, parent: str) -> None:
    if not isinstance(meta, dict):
        raise fail(role, f"{parent} has no entry for {role}")
    length = meta.get("length")
    if length != len(raw):
        raise fail(role, f"length {len(raw)} does not match {parent}'s {length}")
    hashes_ = meta.get("hashes")
    if not isinstance(hashes_, dict) or "sha256" not in hashes_:
        raise fail(role, f"{parent} records no sha256 for {role}")
    for alg, func in (("sha256", hashlib.sha256), ("sha512", hashlib.sha512)):
        if alg in hashes_ and base64.b64encode(func(raw).digest()).decode() != hashes_[alg]:
            raise fail(role, f"{alg} hash does not match {parent}")


def _role_keys(fail: _Fail, role: str, all_keys: Mapping[str, Any], entry: Any) -> tuple[dict[str, PublicKey], int]:
    if not isinstance(entry, dict) or not isinstance(entry.get("keyids"), list):
        raise fail(role, "role entry has no keyids")
    threshold = entry.get("threshold")
    if not isinstance(threshold, int) or threshold < 1:
        raise fail(role, f"threshold {threshold!r} is not a positive integer")
    keys: dict[str, PublicKey] = {}
    for key_id in entry["keyids"]:
        if key_id not in all_keys:
            raise fail(role, f"key {key_id} listed but not defined")
        keys[key_id] = _load_key(fail, role, key_id, all_keys[key_id])
    return keys, threshold


class _Fetcher:
    """Reads one GUN's files under two caps: each file's own, and ``limits.gun_bytes`` for all of them together.

    The total is what bounds memory: a server that signs a thousand 2 MiB root versions passes every per-file cap.
    ``ahead`` asks for several files at once before verification needs them (``prefetch``); ``get`` then hands
    each out in verification's own order, with the same checks, and raises a file's error only when it is needed.
    """

    def __init__(self, gun: str, source: MetadataSource, limits: Limits, keep: bool) -> None:
        self.gun = gun
        self.source = source
        self.limits = limits
        self.keep = keep
        self.total = 0
        self.files: dict[str, bytes] = {}
        # name -> (what the early read answered, the cap it was read under)
        self.ahead: dict[str, tuple[bytes | Dct2NotationError, int]] = {}

    def prefetch(self, wanted: Sequence[tuple[str, int]]) -> None:
        """Read ``wanted`` (name, cap) at once; only as many as fit in what is left of the GUN's total, so the
        bytes held never exceed it (a read that would not fit is made later, when verification asks for it)."""
        room = self.limits.gun_bytes - self.total
        chosen: list[tuple[str, int]] = []
        for name, cap in wanted:
            if name in self.ahead or cap + 1 > room:
                continue
            room -= cap + 1  # a read answers up to one byte past its cap
            chosen.append((name, cap))
        if not chosen:
            return
        # The first ones only, where the source answers fewer (none: it reads each file when asked).
        for (name, cap), answer in zip(chosen, self.source.fetch_many(self.gun, chosen), strict=False):
            if isinstance(answer, bytes):
                self.total += len(answer)  # held from now on: counted now
            self.ahead[name] = (answer, cap)

    def get(self, name: str, cap: int, *, keep_as: str | None = None) -> bytes:
        budget = self.limits.gun_bytes
        answer, early_cap = self.ahead.pop(name, (None, cap))
        if isinstance(answer, Dct2NotationError):
            raise answer
        if answer is not None and len(answer) > early_cap < cap:
            # Cut at the early read's tighter cap (a delegation's signed length): read again as it always was,
            # so an oversized file is measured and named as before.
            self.total -= len(answer)
            answer = None
        if answer is None:
            raw = self.source.fetch(self.gun, name, max_bytes=min(cap, budget - self.total))
            self.total += len(raw)
        else:
            raw = answer
        if len(raw) > cap:
            raise DCTVerificationError(self.gun, name, f"file is larger than the {cap}-byte limit")
        if self.total > budget:
            raise DCTVerificationError(
                self.gun, name, f"the GUN's metadata is larger than the {budget}-byte total limit"
            )
        if self.keep:
            self.files[keep_as or name] = raw
        return raw

    def matching(self, fail: _Fail, role: str, raw: bytes, meta: Any, parent: str, cap: int) -> bytes:
        """``raw`` when it is what ``parent`` records for ``role``; else the file of that hash, as notary reads it.

        A file read by name before (or while) its parent was read may belong to a publish that raced the read:
        the server keeps each version under ``<role>.<sha256 hex>`` (notary's consistent name, what the notary
        client always asks for). That copy must match exactly as well; when there is none, or it does not
        match either, the mismatch of what was served by name is the error, as it was.
        """
        try:
            _check_meta(fail, role, raw, meta, parent)
            return raw
        except DCTVerificationError as mismatch:
            by_hash = _sha256_hex(meta)
            if by_hash is None:
                raise
            try:
                again = self.get(f"{role}.{by_hash}", cap, keep_as=role)
                _check_meta(fail, role, again, meta, parent)
            except Dct2NotationError:
                # Absent (404), refused (403), failing (5xx) or not matching either: what was served by name is
                # the GUN's error, worded as it always was.
                raise mismatch from None
            return again


def _sha256_hex(meta: Any) -> str | None:
    """The hex of the sha256 a parent records (base64 over raw bytes), None when it records no valid one."""
    try:
        digest = binascii.a2b_base64(meta["hashes"]["sha256"], strict_mode=True)
    except (KeyError, TypeError, ValueError):
        return None
    return digest.hex() if len(digest) == 32 else None


def _verify_root_doc(fail: _Fail, role: str, doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, PublicKey], int]:
    signed = doc["signed"]
    keys = signed.get("keys")
    roles = signed.get("roles")
    if not isinstance(keys, dict) or not isinstance(roles, dict):
        raise fail(role, "root: keys/roles missing")
    for base in BASE_ROLES:
        if base not in roles:
            raise fail(role, f"root: role {base} missing")
    root_keys, threshold = _role_keys(fail, role, keys, roles["root"])
    return signed, root_keys, threshold


def _check_root_certs(fail: _Fail, gun: str, root_keys: Mapping[str, PublicKey], clock: Clock) -> None:
    now = clock.now()
    for key in root_keys.values():
        cert = key.certificate
        if cert is None:
            raise fail("root", f"root key {key.id} is {key.keytype}, not an x509 certificate")
        try:
            basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            if basic.ca:
                raise fail("root", f"root certificate {key.id} is a CA certificate, not a leaf")
        except x509.ExtensionNotFound:
            pass
        names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        cn = str(names[0].value) if names else ""
        if not (cn == gun or (cn.endswith("*") and gun.startswith(cn[:-1]))):
            raise fail("root", f"root certificate CN {cn!r} does not match GUN {gun!r}")
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise fail(
                "root",
                f"root certificate {key.id} is valid {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}.."
                f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}, not at {now:%Y-%m-%dT%H:%M:%SZ}",
            )


class _Root(NamedTuple):
    signed: dict[str, Any]
    keys: dict[str, PublicKey]
    raw: bytes


def _verify_root(fetch: _Fetcher, fail: _Fail, clock: Clock, trusted: TrustedState) -> _Root:
    """The current root, reached from the anchor through every ``N.root``: each signed by old and new thresholds.

    The anchor is the baseline's root when there is one (as the notary client anchors on its cached root); only
    without one is the first root trusted on first use.
    """
    cap = fetch.limits.root_bytes
    latest_raw = fetch.get("root", cap)
    latest = _parse(fail, "root", latest_raw, "Root")
    latest_version: int = latest["signed"]["version"]
    if latest_version < trusted.versions.get("root", 0):
        raise fail(
            "root", f"version {latest_version} is lower than the trusted version {trusted.versions['root']} (rollback)"
        )
    if trusted.root is not None:
        anchor = _parse(fail, "baseline root", trusted.root, "Root")
        signed, keys, threshold = _verify_root_doc(fail, "baseline root", anchor)
        _check_threshold(fail, "baseline root", anchor, keys, threshold)
        first: int = anchor["signed"]["version"]
        if latest_version < first:
            raise fail("root", f"version {latest_version} is lower than the trusted version {first} (rollback)")
        if latest_version == first and latest_raw != trusted.root:
            raise fail("root", f"version {first} differs from the baseline archive's root of the same version")
    else:
        # A version-1 root has no chain to walk: 1.root would be discarded, and asking costs a round trip per GUN
        # (20% of an estate's archive at 30 ms).
        first_raw = None
        if latest_version > 1:
            try:
                first_raw = fetch.get("1.root", cap)
            except NotFoundError:
                first_raw = None
        if first_raw is None or latest_version == 1:
            fetch.files.pop("1.root", None)
            signed, keys, threshold = _verify_root_doc(fail, "root", latest)
            _check_threshold(fail, "root", latest, keys, threshold)
            first = latest_version
        else:
            current = _parse(fail, "1.root", first_raw, "Root")
            signed, keys, threshold = _verify_root_doc(fail, "1.root", current)
            _check_threshold(fail, "1.root", current, keys, threshold)
            first = 1
    if latest_version - first > fetch.limits.max_root_rotations:
        raise fail("root", f"{latest_version - first} root rotations exceed the limit")
    for version in range(first + 1, latest_version + 1):
        name = f"{version}.root"
        if version == latest_version:
            try:
                raw = fetch.get(name, cap)
            except NotFoundError:
                raw = latest_raw
                if fetch.keep:
                    fetch.files[name] = raw
            if raw != latest_raw:
                raise fail(name, "differs from root.json of the same version")
        else:
            raw = fetch.get(name, cap)
        doc = _parse(fail, name, raw, "Root")
        if doc["signed"]["version"] != version:
            raise fail(name, f"has version {doc['signed']['version']}")
        _check_threshold(fail, name, doc, keys, threshold, " of the previous root")
        signed, keys, threshold = _verify_root_doc(fail, name, doc)
        _check_threshold(fail, name, doc, keys, threshold, " of its own keys")
    _check_root_certs(fail, fetch.gun, keys, clock)
    _expires(fail, "root", signed, clock)
    return _Root(signed, keys, latest_raw)


def _parse_targets(fail: _Fail, role: str, signed: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Target]:
    entries = signed.get("targets")
    if not isinstance(entries, dict):
        raise fail(role, "targets: expected an object")
    out: dict[str, Target] = {}
    check_paths = role != "targets" and "" not in paths
    a2b = binascii.a2b_base64  # strict like Go's base64.StdEncoding (notary's []byte hashes): padding exact
    for name, meta in entries.items():
        if not name.isascii():
            name = go_string(name)  # the tag notary sees: a JSON-escaped lone surrogate is U+FFFD
        if check_paths and not name.startswith(paths):
            raise fail(role, f"target {name!r} is outside the delegated paths {list(paths)}")
        try:
            digest = a2b(meta["hashes"]["sha256"], strict_mode=True).hex()
            length = meta["length"]
        except (KeyError, TypeError, ValueError) as exc:  # binascii.Error is a ValueError, as is non-ASCII text
            raise fail(role, f"target {name!r}: no valid sha256 hash / length") from exc
        if len(digest) != 64 or not isinstance(length, int):
            raise fail(role, f"target {name!r}: malformed length or sha256")
        out[name] = Target(name, "sha256:" + digest, length)
    return out


# notary tuf/data/roles.go IsDelegation: lower-case letters, digits, '-', '_' and '/', fewer than 256 characters
# (which also bounds the depth: each level adds at least two), path.Clean-clean; and targets.go
# isValidTargetsStructure: a role declares only its direct children. The name becomes a URL path and a file path.
_ROLE_NAME = re.compile(r"[-a-z0-9_/]+")
MAX_ROLE_NAME = 255


def _check_role_name(fail: _Fail, parent: str, name: str) -> None:
    if not _ROLE_NAME.fullmatch(name):
        reason = "characters outside [-a-z0-9_/]"
    elif len(name) > MAX_ROLE_NAME:
        reason = f"longer than {MAX_ROLE_NAME} characters"
    elif posixpath.normpath(name) != name or "//" in name:
        reason = "not a clean path (empty segment or trailing '/')"
    elif posixpath.dirname(name) != parent:
        reason = f"not a direct child of {parent}"
    else:
        return
    shown = name if len(name) <= 80 else name[:77] + "..."
    raise fail(parent, f"delegation {shown!r} is not a valid notary role name ({reason})")


def _parse_delegations(
    fail: _Fail, role: str, signed: dict[str, Any], parent_paths: tuple[str, ...]
) -> list[Delegation]:
    block = signed.get("delegations") or {"keys": {}, "roles": []}
    if not isinstance(block, dict) or not isinstance(block.get("roles", []), list):
        raise fail(role, "delegations: expected keys/roles")
    keys = block.get("keys") or {}
    out: list[Delegation] = []
    for entry in block.get("roles", []):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name.startswith(role + "/"):
            raise fail(role, f"delegation {name!r} is not a child of {role}")
        _check_role_name(fail, role, name)
        role_keys, threshold = _role_keys(fail, name, keys, entry)
        paths = entry.get("paths") or []
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise fail(name, "paths: expected a list of strings")
        # A child may only narrow its parent: keep paths that fall under one of the parent's prefixes.
        allowed = tuple(p for p in paths if role == "targets" or any(p.startswith(q) for q in parent_paths))
        out.append(Delegation(name, threshold, allowed, tuple(role_keys.values())))
    return out


def _recorded_length(meta: Any, cap: int) -> int:
    """The length a verified parent records for a file (the read's cap), or ``cap`` when it records none."""
    length = meta.get("length") if isinstance(meta, dict) else None
    return length if isinstance(length, int) and not isinstance(length, bool) and 0 <= length < cap else cap


def _tags_depend_on(role: str) -> bool:
    """Roles whose failure notary would skip but whose skipping would change what docker pulls.

    Notary warns about an expired or under-signed delegation and walks on without it (client/tufclient.go
    downloadTargets); docker then resolves a tag through ``targets/releases`` and falls back to ``targets``. A
    skipped releases subtree would make tags fall back to an older ``targets`` digest, silently: that is refused.
    """
    return role == RELEASES or role.startswith(RELEASES + "/")


def verify_repository(
    gun: str,
    source: MetadataSource,
    clock: Clock,
    limits: Limits,
    trusted: TrustedState | None = None,
    *,
    keep_files: bool = False,
) -> VerifiedRepository:
    """Fully verify ``gun`` from ``source``; ``trusted`` (an earlier archive's) anchors the root and guards rollback.

    ``keep_files`` keeps every file's raw bytes in ``files`` (for an archive); otherwise nothing is kept that
    verification no longer needs.
    """
    fail = _Fail(gun)
    state = trusted or TrustedState()
    floors = state.versions
    fetch = _Fetcher(gun, source, limits, keep_files)
    # The four files every GUN needs, asked for at once (one round trip, not four): nothing read is trusted
    # before it is checked, in the same order and with the same checks as when each was read after its parent.
    fetch.prefetch(
        [
            ("root", limits.root_bytes),
            ("timestamp", limits.timestamp_bytes),
            ("snapshot", limits.metadata_bytes),
            ("targets", limits.metadata_bytes),
        ]
    )
    verified_root = _verify_root(fetch, fail, clock, state)
    root = verified_root.signed
    root_all_keys = verified_root.keys
    roles_block = root["roles"]
    versions: dict[str, int] = {"root": root["version"]}

    def floor(role: str, version: int) -> None:
        if version < floors.get(role, 0):
            raise fail(role, f"version {version} is lower than the trusted version {floors[role]} (rollback)")
        versions[role] = version

    def load(role: str, raw: bytes, type_: str, keys_entry: Any) -> dict[str, Any]:
        doc = _parse(fail, role, raw, type_)
        keys, threshold = _role_keys(fail, role, root["keys"], keys_entry)
        _check_threshold(fail, role, doc, keys, threshold)
        floor(role, doc["signed"]["version"])
        return doc

    ts = load("timestamp", fetch.get("timestamp", limits.timestamp_bytes), "Timestamp", roles_block["timestamp"])
    _expires(fail, "timestamp", ts["signed"], clock)
    snap_meta_entry = (ts["signed"].get("meta") or {}).get("snapshot")
    snap_raw = fetch.get("snapshot", limits.metadata_bytes)
    snap_raw = fetch.matching(fail, "snapshot", snap_raw, snap_meta_entry, "timestamp", limits.metadata_bytes)
    snap = load("snapshot", snap_raw, "Snapshot", roles_block["snapshot"])
    _expires(fail, "snapshot", snap["signed"], clock)
    snap_meta = snap["signed"].get("meta")
    if not isinstance(snap_meta, dict):
        raise fail("snapshot", "meta: expected an object")
    _check_meta(fail, "root", verified_root.raw, snap_meta.get("root"), "snapshot")
    targets_raw = fetch.get("targets", limits.metadata_bytes)
    targets_raw = fetch.matching(
        fail, "targets", targets_raw, snap_meta.get("targets"), "snapshot", limits.metadata_bytes
    )
    tdoc = load("targets", targets_raw, "Targets", roles_block["targets"])
    expires = _expires(fail, "targets", tdoc["signed"], clock)
    top = VerifiedRole(
        "targets",
        tdoc["signed"]["version"],
        expires,
        _parse_targets(fail, "targets", tdoc["signed"], ("",)),
        _parse_delegations(fail, "targets", tdoc["signed"], ("",)),
        ("",),
    )
    roles: dict[str, VerifiedRole] = {"targets": top}
    delegations: list[Delegation] = []
    skipped: list[SkippedRole] = []
    skipped_names: set[str] = set()

    def skip(role: str, exc: DCTVerificationError) -> None:
        if _tags_depend_on(role):
            raise exc
        skipped.append(SkippedRole(role, exc.reason))
        skipped_names.add(role)

    queue: deque[Delegation] = deque(top.delegations)
    while queue:
        deleg = queue.popleft()
        delegations.append(deleg)
        if len(delegations) > limits.max_delegations:
            raise fail(deleg.role, f"more than {limits.max_delegations} delegations")
        if deleg.role in roles or deleg.role in skipped_names:
            continue
        if deleg.role not in snap_meta:
            if deleg.role in floors:
                # Still delegated by a verified parent, listed in the baseline, dropped by the snapshot: only the
                # snapshot key (server-held) was needed to hide it, and its tags would fall back to older ones.
                raise fail(
                    deleg.role,
                    f"present at version {floors[deleg.role]} in the baseline archive and still delegated, but the "
                    "snapshot no longer lists it (rollback by omission)",
                )
            continue  # notary skips delegations the snapshot does not list: nothing was published for them
        if deleg.role not in fetch.ahead:
            # This role and the others waiting (its siblings, their siblings' children…) at once: each read is
            # capped at the length the verified snapshot records, so all of them fit in the GUN's total.
            room = limits.max_delegations - len(delegations) + 1
            fetch.prefetch(
                [
                    (d.role, _recorded_length(snap_meta[d.role], limits.metadata_bytes))
                    for d in [deleg, *queue][:room]
                    if d.role in snap_meta and d.role not in roles and d.role not in skipped_names
                ]
            )
        raw = fetch.get(deleg.role, limits.metadata_bytes)
        raw = fetch.matching(fail, deleg.role, raw, snap_meta[deleg.role], "snapshot", limits.metadata_bytes)
        doc = _parse(fail, deleg.role, raw, "Targets")
        # notary's rule: an expired or under-signed delegation (not targets) is a warning, and its children are not
        # walked; a rollback below the baseline stays fatal, as does any failure in the releases subtree.
        try:
            _check_threshold(fail, deleg.role, doc, {k.id: k for k in deleg.keys}, deleg.threshold)
        except (UnderSigned, Expired) as exc:
            skip(deleg.role, exc)
            continue
        floor(deleg.role, doc["signed"]["version"])
        try:
            expires = _expires(fail, deleg.role, doc["signed"], clock)
        except (UnderSigned, Expired) as exc:
            skip(deleg.role, exc)
            continue
        verified = VerifiedRole(
            deleg.role,
            doc["signed"]["version"],
            expires,
            _parse_targets(fail, deleg.role, doc["signed"], deleg.paths),
            _parse_delegations(fail, deleg.role, doc["signed"], deleg.paths),
            deleg.paths,
        )
        roles[deleg.role] = verified
        queue.extend(verified.delegations)
    targets_keys, _ = _role_keys(fail, "targets", root["keys"], roles_block["targets"])
    return VerifiedRepository(
        gun=gun,
        root_version=root["version"],
        root_keys=list(root_all_keys),
        targets_keys=list(targets_keys),
        roles=roles,
        delegations=delegations,
        versions=versions,
        files=fetch.files,
        skipped=skipped,
    )
