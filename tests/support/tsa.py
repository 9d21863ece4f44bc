"""A real RFC 3161 TSA for tests: ``openssl ts -reply`` (OpenSSL's own TSA) behind a loopback HTTP handler.

The test PKI is made here: root CA → TSA leaf (EKU timeStamping, critical). ``TestTSA.mode`` makes the server
misbehave the ways a TSA can, always with real OpenSSL replies where a reply is involved:
``ok``; ``http500``; ``hang`` (never answers until stopped); ``rogue`` (signed by a TSA under another root);
``bad-imprint`` / ``wrong-nonce`` (a real reply to a request that differs from the one sent in that one field);
``reject`` (OpenSSL refuses the digest: a real PKIStatus rejection); ``wrong-type`` (real reply, wrong Content-Type);
``fail-then-ok`` (HTTP 500 for the first ``failures`` requests); ``http400``; ``garbage`` (a body that is not DER);
``ess-v1`` (a real token with only the SHA-1 signingCertificate attribute, which Notation refuses);
``no-token`` (a real granted reply with the token removed).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.loopback import QuietHTTPServer
from tests.support.plugin_pki import ca_extensions, certificate, pem_private_key

_CONFIG = """[tsa]
default_tsa = tsa_config
[tsa_config]
serial = {serial}
crypto_device = builtin
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = {digests}
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = {ess}
"""


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dct2notation tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


@dataclass
class TsaPki:
    root: x509.Certificate
    leaf: x509.Certificate
    directory: Path

    @property
    def root_pem(self) -> Path:
        return self.directory / "root.pem"


def make_tsa_pki(
    directory: Path, label: str = "test", *, leaf_eku: list[x509.ObjectIdentifier] | None = None
) -> TsaPki:
    """Root CA → TSA leaf, written as PEM files that ``openssl ts -reply`` reads."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root_name = _name(f"{label} TSA root")
    born = now - dt.timedelta(days=1)
    root = certificate(
        root_name, root_key, root_name, root_key, not_before=born, not_after=now + dt.timedelta(days=30),
        extensions=ca_extensions(),
    )  # fmt: skip
    digital_signature = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    time_stamping = x509.ExtendedKeyUsage(leaf_eku or [ExtendedKeyUsageOID.TIME_STAMPING])
    leaf = certificate(
        _name(f"{label} TSA"), leaf_key, root_name, root_key, not_before=born, not_after=now + dt.timedelta(days=29),
        extensions=[(digital_signature, True), (time_stamping, True)],
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    (directory / "root.pem").write_bytes(root.public_bytes(pem))
    (directory / "tsa.pem").write_bytes(leaf.public_bytes(pem))
    (directory / "tsa.key").write_bytes(pem_private_key(leaf_key))
    (directory / "serial").write_text("01\n")
    for name, digests, ess in (
        ("tsa.cnf", "sha256, sha384, sha512", "sha256"),
        ("reject.cnf", "sha1", "sha256"),
        ("ess-v1.cnf", "sha256, sha384, sha512", "sha1"),  # SHA-1 ESSCertID → only the v1 signingCertificate
    ):
        (directory / name).write_text(_CONFIG.format(serial=directory / "serial", digests=digests, ess=ess))
    return TsaPki(root, leaf, directory)


# openssl ts -reply reads and rewrites the serial file; concurrent replies would race on it.
_SERIAL_LOCK = threading.Lock()


def openssl_reply(pki: TsaPki, request: bytes, *, config: str = "tsa.cnf") -> bytes:
    """``openssl ts -reply`` for ``request``; the chain (root included) goes into the token."""
    with tempfile.TemporaryDirectory() as tmp, _SERIAL_LOCK:
        query, reply = Path(tmp) / "q.tsq", Path(tmp) / "r.tsr"
        query.write_bytes(request)
        d = pki.directory
        subprocess.run(
            ["openssl", "ts", "-reply", "-config", str(d / config), "-queryfile", str(query),
             "-inkey", str(d / "tsa.key"), "-signer", str(d / "tsa.pem"), "-chain", str(d / "root.pem"),
             "-out", str(reply)],
            check=True, capture_output=True,
        )  # fmt: skip
        return reply.read_bytes()


def openssl_verify(token: bytes, signature: bytes, root_pem: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    """``openssl ts -verify`` of a bare token over the signature bytes: OpenSSL's own verdict."""
    token_path, data_path = workdir / "token.der", workdir / "signature.bin"
    token_path.write_bytes(token)
    data_path.write_bytes(signature)
    return subprocess.run(
        ["openssl", "ts", "-verify", "-token_in", "-in", str(token_path), "-data", str(data_path),
         "-CAfile", str(root_pem)],
        capture_output=True, text=True,
    )  # fmt: skip


# --- request surgery for the bad-imprint / wrong-nonce modes (DER: SEQ{INT v, SEQ imprint, [OID], [INT nonce], …})
def _tlv(data: bytes, offset: int) -> tuple[int, int, int]:
    tag, first, start = data[offset], data[offset + 1], offset + 2
    if first & 0x80:
        count = first & 0x7F
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    else:
        length = first
    return tag, start, start + length


def _fields(request: bytes) -> list[tuple[int, int, int]]:
    _, start, end = _tlv(request, 0)
    out = []
    while start < end:
        field = _tlv(request, start)
        out.append(field)
        start = field[2]
    return out


def altered_request(request: bytes, what: str) -> bytes:
    """The same request with one field changed: the last byte of the imprint digest, or of the nonce."""
    fields = _fields(request)
    if what == "imprint":
        _, _, end = fields[1]  # MessageImprint; the digest OCTET STRING is its last element
        position = end - 1
    else:
        nonce = next(f for f in fields[2:] if f[0] == 0x02)
        position = nonce[2] - 1
    changed = bytearray(request)
    changed[position] ^= 0x01
    return bytes(changed)


def without_token(reply: bytes) -> bytes:
    """A real granted TimeStampResp with its token cut off (status kept): a TSA that grants and sends nothing."""
    _, start, _ = _tlv(reply, 0)
    status = reply[start : _tlv(reply, start)[2]]
    return bytes([0x30, len(status)]) + status


class TestTSA:
    """The HTTP front: POST a TimeStampReq, get ``openssl ts -reply``'s answer (or the chosen misbehaviour)."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path) -> None:
        self.pki = make_tsa_pki(directory / "good", "test")
        self.rogue = make_tsa_pki(directory / "rogue", "rogue")
        self.mode = "ok"
        self.failures = 0
        self.delay = 0.0  # seconds each request waits before it is answered (requests wait side by side)
        self.requests: list[bytes] = []
        self._stopping = threading.Event()
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                tsa.requests.append(body)
                tsa._stopping.wait(tsa.delay)
                status, content_type, reply = tsa._answer(body)
                if status == 0:
                    return
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self._server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/tsa"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _answer(self, body: bytes) -> tuple[int, str, bytes]:
        reply_type = "application/timestamp-reply"
        mode = self.mode
        if mode == "fail-then-ok":
            mode = "http500" if len(self.requests) <= self.failures else "ok"
        if mode == "http500":
            return 500, "text/plain", b"internal error"
        if mode == "http400":
            return 400, "text/plain", b"bad request"
        if mode == "garbage":
            return 200, reply_type, b"this is not DER"
        if mode == "hang":
            self._stopping.wait(30)
            return 0, "", b""
        if mode == "rogue":
            return 200, reply_type, openssl_reply(self.rogue, body)
        if mode == "bad-imprint":
            return 200, reply_type, openssl_reply(self.pki, altered_request(body, "imprint"))
        if mode == "wrong-nonce":
            return 200, reply_type, openssl_reply(self.pki, altered_request(body, "nonce"))
        if mode == "reject":
            return 200, reply_type, openssl_reply(self.pki, body, config="reject.cnf")
        if mode == "no-token":
            return 200, reply_type, without_token(openssl_reply(self.pki, body))
        if mode == "ess-v1":
            return 200, reply_type, openssl_reply(self.pki, body, config="ess-v1.cnf")
        if mode == "wrong-type":
            return 200, "text/html", openssl_reply(self.pki, body)
        return 200, reply_type, openssl_reply(self.pki, body)

    def reset(self) -> None:
        """Answer normally again and forget earlier requests (each test starts from here)."""
        self.mode = "ok"
        self.failures = 0
        self.delay = 0.0
        self.requests.clear()

    def start(self) -> TestTSA:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
