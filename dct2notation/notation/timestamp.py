"""RFC 3161 countersignatures for Notation COSE signatures (``io.cncf.notary.timestampSignature``).

Request building, token parsing and CMS signature + TSA chain verification are ``rfc3161-client``'s. On top of it we
check what Notation (tspclient-go) requires and the library does not: the TSA leaf's EKU is *only* timeStamping, a
signingCertificateV2 attribute names that leaf, the imprint hash is SHA-256/384/512, the genTime window (± accuracy)
lies inside the signing chain's validity, and (at signing time) nonce and imprint equal what we sent.
A little DER is ours because the library cannot do it: the token's ``certificates`` SET is re-sorted into DER order
(OpenSSL, GlobalSign and others emit chain order, which the library's strict parser rejects; the set is outside the
CMS signature, so sorting is safe), a SHA-384 request is encoded by hand (the library builds SHA-256/512 only), and
the reply status and the signingCertificateV2 attribute are read with the same small TLV reader.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import rfc3161_client as tsp
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from ..config import DEFAULT_LIMITS, Clock, Limits, SystemClock
from ..deadline import bounded_client, deadline
from ..errors import InputError, TimestampError, UsageError
from ..files import read_document
from ..safetext import has_userinfo, redact_url

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"

_HASHES: dict[str, tuple[str, str]] = {  # contract name → (hashlib name, OID)
    "SHA-256": ("sha256", "2.16.840.1.101.3.4.2.1"),
    "SHA-384": ("sha384", "2.16.840.1.101.3.4.2.2"),
    "SHA-512": ("sha512", "2.16.840.1.101.3.4.2.3"),
}
_NAME_BY_OID = {oid: name for name, (_, oid) in _HASHES.items()}
# ETSI EN 319 422 baseline policy: tspclient-go gives a token under it with no accuracy a 1 s accuracy.
_BASELINE_POLICY = x509.ObjectIdentifier("0.4.0.2023.1.1")
_GRANTED = (tsp.PKIStatus.GRANTED, tsp.PKIStatus.GRANTED_WITH_MODS)


@dataclass(frozen=True)
class TimestampInfo:
    """The verified time: ``gen_time`` and the accuracy window around it."""

    gen_time: dt.datetime
    not_before: dt.datetime
    not_after: dt.datetime


# --- minimal DER (only what the module docstring lists) -------------------------------------------
def _tlv(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, content start, end) of the element at ``offset``; definite lengths only (DER)."""
    if offset + 2 > len(data):
        raise ValueError("truncated element")
    tag, first = data[offset], data[offset + 1]
    start = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise ValueError("unsupported length encoding")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    if start + length > len(data):
        raise ValueError("element runs past the end")
    return tag, start, start + length


def _children(data: bytes) -> list[bytes]:
    out, offset = [], 0
    while offset < len(data):
        _, _, end = _tlv(data, offset)
        out.append(data[offset:end])
        offset = end
    return out


def _content(element: bytes, tag: int) -> bytes:
    found, start, end = _tlv(element, 0)
    if found != tag or end != len(element):
        raise ValueError(f"expected tag 0x{tag:02x}, found 0x{found:02x}")
    return element[start:end]


def _encode(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _der_sorted_token(token: bytes) -> bytes:
    """ContentInfo{signedData, [0] SignedData{…, [0] certificates SET OF …}} with the SET in DER order."""
    oid, wrapped = _children(_content(token, 0x30))
    fields = _children(_content(_content(wrapped, 0xA0), 0x30))
    fields = [_encode(0xA0, b"".join(sorted(_children(_content(f, 0xA0))))) if f[0] == 0xA0 else f for f in fields]
    return _encode(0x30, oid + _encode(0xA0, _encode(0x30, b"".join(fields))))


def _token_certificates(token: bytes) -> list[bytes]:
    """The DER certificates of a token's SignedData, in the order the TSA wrote them."""
    _, wrapped = _children(_content(token, 0x30))
    for element in _children(_content(_content(wrapped, 0xA0), 0x30)):
        if element[0] == 0xA0:
            return _children(_content(element, 0xA0))
    return []


def _as_response(token: bytes) -> bytes:
    """A TimeStampResp {status granted, token}: the library parses and verifies responses, not bare tokens."""
    return _encode(0x30, _encode(0x30, _encode(0x02, b"\x00")) + _der_sorted_token(token))


# AlgorithmIdentifier {id-sha384, NULL}, as every TSA client encodes it
_SHA384_ALGORITHM = bytes.fromhex("300d06096086480165030402020500")


def _sha384_request(digest: bytes) -> tuple[bytes, int]:
    """TimeStampReq {v1, imprint, nonce, certReq TRUE} for a SHA-384 imprint."""
    nonce = secrets.randbits(63) | 1  # positive and non-zero, so its encoding is never ambiguous
    imprint = _encode(0x30, _SHA384_ALGORITHM + _encode(0x04, digest))
    nonce_der = _encode(0x02, nonce.to_bytes((nonce.bit_length() + 8) // 8, "big"))
    return _encode(0x30, _encode(0x02, b"\x01") + imprint + nonce_der + _encode(0x01, b"\xff")), nonce


# id-aa-signingCertificateV2 (RFC 5035) and the ESSCertIDv2 hash OIDs, as DER OID contents
_SIGNING_CERTIFICATE_V2 = bytes.fromhex("2a864886f70d010910022f")
_ESS_HASHES = {
    bytes.fromhex("608648016503040201"): "sha256",
    bytes.fromhex("608648016503040202"): "sha384",
    bytes.fromhex("608648016503040203"): "sha512",
}


def _ess_cert_hash(token: bytes) -> tuple[str, bytes]:
    """(hash name, certHash) of the first ESSCertIDv2 in the one SignerInfo's signingCertificateV2 attribute.

    tspclient-go (Notation) refuses a token without this attribute, so we must too: a signature we produce has to
    verify in Notation. The attribute is signed, so it binds the TSA certificate to the signature.
    """
    _, wrapped = _children(_content(token, 0x30))
    signer_infos = _children(_content(_content(wrapped, 0xA0), 0x30))[-1]
    (signer_info,) = _children(_content(signer_infos, 0x31))
    fields = _children(_content(signer_info, 0x30))
    signed_attrs = next((f for f in fields if f[0] == 0xA0), None)
    if signed_attrs is None:
        raise TimestampError("timestamp token has no signed attributes")
    for attribute in _children(_content(signed_attrs, 0xA0)):
        oid, values = _children(_content(attribute, 0x30))
        if _content(oid, 0x06) != _SIGNING_CERTIFICATE_V2:
            continue
        certs = _children(_content(_children(_content(values, 0x31))[0], 0x30))[0]
        first = _children(_content(_children(_content(certs, 0x30))[0], 0x30))
        hash_name = "sha256"  # the ASN.1 DEFAULT
        if first[0][0] == 0x30:
            algorithm = _content(_children(_content(first[0], 0x30))[0], 0x06)
            if algorithm not in _ESS_HASHES:
                raise TimestampError("timestamp token signingCertificateV2 uses an unsupported certificate hash")
            hash_name, first = _ESS_HASHES[algorithm], first[1:]
        return hash_name, _content(first[0], 0x04)
    raise TimestampError("timestamp token has no signingCertificateV2 attribute (RFC 5816; Notation requires it)")


# --- verification ---------------------------------------------------------------------------------------------------
def _hash_name(hash_algorithm: str) -> str:
    if hash_algorithm not in _HASHES:
        raise TimestampError(f"hash algorithm {hash_algorithm!r} is not one of {', '.join(_HASHES)}")
    return hash_algorithm


def _signer_certificate(response: tsp.TimeStampResponse) -> x509.Certificate:
    infos = list(response.signed_data.signer_infos)
    if len(infos) != 1:
        raise TimestampError(f"timestamp token has {len(infos)} signer infos, expected exactly one")
    info = infos[0]
    for der in response.signed_data.certificates:
        cert = x509.load_der_x509_certificate(der)
        if cert.issuer == info.issuer and cert.serial_number == info.serial_number:
            return cert
    raise TimestampError("timestamp token does not carry its TSA certificate (certReq must be true)")


def _accuracy(info: tsp.TimeStampTokenInfo) -> dt.timedelta:
    accuracy = info.accuracy
    total = dt.timedelta(0)
    if accuracy is not None:
        total = dt.timedelta(
            seconds=accuracy.seconds or 0, milliseconds=accuracy.millis or 0, microseconds=accuracy.micros or 0
        )
    if not total and info.policy == _BASELINE_POLICY:
        total = dt.timedelta(seconds=1)
    return total


def _verify(
    token: bytes,
    message: bytes,
    roots: Sequence[x509.Certificate],
    *,
    expected_hash: str | None = None,
    nonce: int | None = None,
) -> TimestampInfo:
    if not roots:
        raise TimestampError("no TSA root certificate to verify the timestamp token against")
    try:
        response = tsp.decode_timestamp_response(_as_response(token))
        info = response.tst_info
    except ValueError as exc:
        raise TimestampError(f"timestamp token is not a DER RFC 3161 TimeStampToken ({exc})") from exc
    imprint = info.message_imprint
    hash_name = _NAME_BY_OID.get(imprint.hash_algorithm.dotted_string)
    if hash_name is None:
        raise TimestampError(
            f"timestamp token message imprint uses hash {imprint.hash_algorithm.dotted_string}, "
            f"not one of {', '.join(_HASHES)}"
        )
    if expected_hash is not None and hash_name != expected_hash:
        raise TimestampError(f"timestamp token message imprint uses {hash_name}, the request asked for {expected_hash}")
    digest = hashlib.new(_HASHES[hash_name][0], message).digest()
    if imprint.message != digest:
        raise TimestampError(
            f"timestamp token message imprint {imprint.message.hex()} is not the {hash_name} of the signature "
            f"({digest.hex()})"
        )
    if nonce is not None and info.nonce != nonce:
        raise TimestampError(f"timestamp token nonce {info.nonce} differs from the request's nonce {nonce}")
    builder = tsp.VerifierBuilder()
    for root in roots:
        builder = builder.add_root_certificate(root)
    try:
        builder.build().verify(response, digest)
    except tsp.VerificationError as exc:
        raise TimestampError(f"timestamp token does not verify against the TSA root certificate(s): {exc}") from exc
    tsa_cert = _signer_certificate(response)
    try:
        ess_hash, cert_hash = _ess_cert_hash(token)
    except (ValueError, IndexError) as exc:
        raise TimestampError(f"timestamp token signed attributes are malformed ({exc})") from exc
    if hashlib.new(ess_hash, tsa_cert.public_bytes(Encoding.DER)).digest() != cert_hash:
        raise TimestampError(
            f'timestamp token signingCertificateV2 does not match TSA certificate "{tsa_cert.subject.rfc4514_string()}"'
        )
    eku = tsa_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value  # presence checked by the library
    if list(eku) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TimestampError(
            f'TSA certificate "{tsa_cert.subject.rfc4514_string()}": extended key usage must be timeStamping only'
        )
    gen_time = info.gen_time.astimezone(dt.UTC)
    window = _accuracy(info)
    return TimestampInfo(gen_time, gen_time - window, gen_time + window)


def verify_timestamp_token(
    token: bytes, signature: bytes, tsa_roots: list[x509.Certificate], hash_algorithm: str
) -> TimestampInfo:
    """Verify a TimeStampToken over the raw COSE ``signature`` against ``tsa_roots``; raise ``TimestampError``.

    ``hash_algorithm`` is the signature's hash; like notation-go, a token whose imprint uses another of
    SHA-256/384/512 is still accepted, because the imprint hash is the TSA client's choice, not the signer's.
    """
    _hash_name(hash_algorithm)
    return _verify(token, signature, tsa_roots)


def check_within_validity(info: TimestampInfo, chain: Sequence[x509.Certificate]) -> None:
    """The whole genTime ± accuracy window must lie inside every certificate's validity (Notation's rule)."""
    for cert in chain:
        if info.not_before < cert.not_valid_before_utc or info.not_after > cert.not_valid_after_utc:
            raise TimestampError(
                f"timestamp {info.gen_time.isoformat()} (± {(info.not_after - info.gen_time).total_seconds():g}s) is "
                f'outside the validity of certificate "{cert.subject.rfc4514_string()}" '
                f"({cert.not_valid_before_utc.isoformat()} .. {cert.not_valid_after_utc.isoformat()})"
            )


# --- requesting -----------------------------------------------------------------------------------------------------
def load_tsa_roots(source: Path | str | x509.Certificate | Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """TSA roots from a PEM/DER file or certificate objects; each must be self-signed, as Notation's tsa store."""
    if isinstance(source, x509.Certificate):
        return [source]
    if not isinstance(source, Path | str):
        return list(source)
    path = Path(source)
    try:
        data = read_document(path, DEFAULT_LIMITS.config_file_bytes)
    except OSError as exc:
        raise InputError(f"{path}: cannot read TSA root certificate ({exc.strerror})") from exc
    try:
        certs = (
            x509.load_pem_x509_certificates(data) if b"-----BEGIN" in data else [x509.load_der_x509_certificate(data)]
        )
    except ValueError as exc:
        raise InputError(f"{path}: not a PEM or DER certificate ({exc})") from exc
    for cert in certs:
        if cert.subject != cert.issuer:
            raise InputError(f'{path}: "{cert.subject.rfc4514_string()}" is not a self-signed root certificate')
    return certs


class _Retryable(Exception):
    """A TSA answer worth another try (5xx, 429); the message says what happened."""


class HttpTimestamper:
    """Asks one RFC 3161 TSA over HTTP (the ``notation.envelope.Timestamper`` a signer takes); reuses one client and
    counts calls and time for batch summaries.

    Every token is verified (chain to ``root_cert``, imprint, nonce, genTime within the signing chain) before it is
    returned, so a wrong TSA answer can never be attached to a signature.
    """

    def __init__(
        self,
        url: str,
        root_cert: Path | str | x509.Certificate | Sequence[x509.Certificate],
        client: httpx.Client | None = None,
        limits: Limits = DEFAULT_LIMITS,
        clock: Clock | None = None,
    ) -> None:
        if has_userinfo(url):
            raise UsageError(
                f"--timestamp-url {redact_url(url)}: credentials in the URL are refused (they show in process lists "
                "and shell history, and Notation's TSA client sends none)"
            )
        if httpx.URL(url).scheme not in ("http", "https"):
            raise UsageError(f"--timestamp-url: {url!r} is not an http(s) URL")
        self.url = url
        self.roots = load_tsa_roots(root_cert)
        self.limits = limits
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._own_client = client is None
        self.client = client if client is not None else bounded_client(timeout=limits.http_timeout_seconds)
        self._lock = threading.Lock()
        self.calls = 0  # tokens obtained
        self.attempts = 0  # HTTP requests sent, retries included
        self.seconds = 0.0  # wall time spent on the TSA, retries included

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def __enter__(self) -> HttpTimestamper:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def stats(self) -> dict[str, float | int]:
        return {"calls": self.calls, "attempts": self.attempts, "seconds": round(self.seconds, 3)}

    def timestamp(self, signature: bytes, *, hash_algorithm: str, signing_chain: list[x509.Certificate]) -> bytes:
        hash_name = _hash_name(hash_algorithm)
        request, nonce = _build_request(signature, hash_name)
        start = time.monotonic()
        try:
            reply = self._post(request)
        finally:
            with self._lock:
                self.seconds += time.monotonic() - start
        token = self._token_of(reply)
        try:
            info = _verify(token, signature, self.roots, expected_hash=hash_name, nonce=nonce)
            check_within_validity(info, signing_chain)
        except TimestampError as exc:
            raise TimestampError(f"TSA {self.url}: {exc}") from exc
        skew = info.not_before - self.clock.now()
        if skew.total_seconds() > self.limits.tsa_max_clock_skew_seconds:
            raise TimestampError(
                f"TSA {self.url}: genTime {info.gen_time.isoformat()} is {skew.total_seconds():.0f}s ahead of this "
                "machine's clock"
            )
        with self._lock:
            self.calls += 1
        return token

    def _token_of(self, reply: bytes) -> bytes:
        # TimeStampResp {PKIStatusInfo {status, …}, token}: read by hand because the library's parser refuses the
        # whole reply when the token's certificate SET is not DER-sorted (see the module docstring).
        try:
            fields = _children(_content(reply, 0x30))
            status = int.from_bytes(_content(_children(_content(fields[0], 0x30))[0], 0x02), "big", signed=True)
        except (ValueError, IndexError) as exc:
            raise TimestampError(f"TSA {self.url}: reply is not a DER RFC 3161 TimeStampResp ({exc})") from exc
        if status not in _GRANTED:
            try:
                detail = "; ".join(tsp.decode_timestamp_response(reply).status_string) or "no reason given"
            except ValueError:
                detail = "no reason given"
            name = tsp.PKIStatus(status).name if status in {s.value for s in tsp.PKIStatus} else f"status {status}"
            raise TimestampError(f"TSA {self.url} refused the request: {name} ({detail})")
        if len(fields) != 2:
            raise TimestampError(f"TSA {self.url}: reply grants the request but carries no timestamp token")
        return fields[1]

    def _post(self, request: bytes) -> bytes:
        retrying = Retrying(
            retry=retry_if_exception_type((_Retryable, httpx.TransportError)),
            stop=stop_after_attempt(max(1, self.limits.retry_attempts)),
            wait=wait_exponential(multiplier=0.2, max=self.limits.retry_max_wait_seconds),
            reraise=False,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._post_once(request)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            reason = str(last) if isinstance(last, _Retryable) else f"{type(last).__name__}: {last}"
            raise TimestampError(
                f"TSA {self.url}: {reason} (gave up after {exc.last_attempt.attempt_number} attempts)"
            ) from exc
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _post_once(self, request: bytes) -> bytes:
        with deadline(self.limits.http_deadline_seconds) as limit:
            try:
                return self._exchange(request)
            except httpx.TransportError as exc:
                if limit.expired:  # not retried: a TSA that drips once does it again
                    raise TimestampError(str(limit.error(f"TSA {self.url}"))) from exc
                raise

    def _exchange(self, request: bytes) -> bytes:
        with self._lock:
            self.attempts += 1
        cap = self.limits.tsa_response_bytes
        with self.client.stream(
            "POST", self.url, content=request, headers={"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPE}
        ) as reply:
            if reply.status_code == 429 or reply.status_code >= 500:
                raise _Retryable(f"HTTP {reply.status_code}")
            if reply.status_code != 200:
                raise TimestampError(f"TSA {self.url}: HTTP {reply.status_code}")
            content_type = reply.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != REPLY_TYPE:
                raise TimestampError(f"TSA {self.url}: reply content type is {content_type!r}, not {REPLY_TYPE}")
            body = bytearray()
            for chunk in reply.iter_bytes():
                body += chunk
                if len(body) > cap:
                    raise TimestampError(f"TSA {self.url}: reply is larger than {cap} bytes")
        return bytes(body)


def _build_request(signature: bytes, hash_name: str) -> tuple[bytes, int]:
    """DER TimeStampReq (imprint over the raw signature, random nonce, certReq) and its nonce."""
    if hash_name == "SHA-384":
        return _sha384_request(hashlib.sha384(signature).digest())
    algorithm = tsp.HashAlgorithm.SHA256 if hash_name == "SHA-256" else tsp.HashAlgorithm.SHA512
    request = tsp.TimestampRequestBuilder(data=signature, hash_algorithm=algorithm, nonce=True, cert_req=True).build()
    assert request.nonce is not None
    return request.as_bytes(), request.nonce


def read_timestamp(token: bytes, signature: bytes) -> tuple[TimestampInfo, list[x509.Certificate]]:
    """The time window and certificates a TimeStampToken over ``signature`` states, trusting no root: what
    ``notation inspect`` shows (verification judges the token against the tsa trust store)."""
    try:
        response = tsp.decode_timestamp_response(_as_response(token))
        info = response.tst_info
        # In the token's own order, as Notation lists them (the library's set is in DER order after _as_response).
        certificates = [x509.load_der_x509_certificate(der) for der in _token_certificates(token)]
    except ValueError as exc:
        raise TimestampError(f"timestamp token is not a DER RFC 3161 TimeStampToken ({exc})") from exc
    imprint = info.message_imprint
    hash_name = _NAME_BY_OID.get(imprint.hash_algorithm.dotted_string)
    if hash_name is None or imprint.message != hashlib.new(_HASHES[hash_name][0], signature).digest():
        raise TimestampError("timestamp token message imprint is not the hash of the signature")
    gen_time = info.gen_time.astimezone(dt.UTC)
    window = _accuracy(info)
    return TimestampInfo(gen_time, gen_time - window, gen_time + window), certificates
