"""Signing through a Notation plugin (plugin-extensibility.md; contract 1.0), both signing contracts.

``SIGNATURE_GENERATOR.RAW`` (``generate-signature``): the plugin signs the bytes we give it and we build the envelope.
``SIGNATURE_GENERATOR.ENVELOPE`` (``generate-envelope``): the plugin returns the whole envelope (AWS Signer works this
way); ``notation/formats.py`` then checks it as Notation does. A plugin offering both is used RAW, as Notation does.

The plugin only returns its certificate chain together with a signature (or envelope), yet the certificate
requirements must be checked before any artifact is signed. So the first use of a key signs a fixed probe, which also
proves early (before a long batch) that the KMS grants us the key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import threading
from pathlib import Path
from typing import IO, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ..config import DEFAULT_LIMITS, Limits
from ..errors import SigningKeyError
from ..jsontext import loads as json_loads
from .base import algorithm_for, key_spec_of, verify_raw

CONTRACT_VERSION = "1.0"
CAPABILITY_RAW = "SIGNATURE_GENERATOR.RAW"
CAPABILITY_ENVELOPE = "SIGNATURE_GENERATOR.ENVELOPE"
PROBE_PAYLOAD = b"dct2notation: plugin key probe (not an artifact signature)"
NOTATION_PAYLOAD_TYPE = "application/vnd.cncf.notary.payload.v1+json"
JWS_ENVELOPE = "application/jose+json"


def probe_envelope_payload() -> bytes:
    """A Notation payload naming the probe bytes (what an envelope plugin signs when the key is first used)."""
    digest = "sha256:" + hashlib.sha256(PROBE_PAYLOAD).hexdigest()
    media = "application/vnd.oci.image.manifest.v1+json"
    return json.dumps(
        {"targetArtifact": {"mediaType": media, "digest": digest, "size": len(PROBE_PAYLOAD)}}, separators=(",", ":")
    ).encode()


def plugin_executable(config_dir: Path, plugin_name: str) -> Path:
    return config_dir / "plugins" / plugin_name / f"notation-{plugin_name}"


def _read_capped(
    stream: IO[bytes], cap: int, sink: list[bytes], over: threading.Event, proc: subprocess.Popen[bytes]
) -> None:
    total = 0
    while True:
        chunk = os.read(stream.fileno(), 65536)  # what the pipe holds now, up to 64 KiB (never waits for more)
        if not chunk:
            return
        total += len(chunk)
        if total > cap:
            # Kill at once: a plugin blocked on a full pipe would otherwise only end at the timeout.
            over.set()
            proc.kill()
            return
        sink.append(chunk)


class PluginRunner:
    """Runs one plugin executable per request, with the timeout and output caps from ``Limits``."""

    def __init__(self, config_dir: Path, plugin_name: str, limits: Limits = DEFAULT_LIMITS) -> None:
        self.name = plugin_name
        self.path = plugin_executable(config_dir, plugin_name)
        self.limits = limits
        self._check_executable()

    def _check_executable(self) -> None:
        where = f'plugin "{self.name}"'
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            raise SigningKeyError(f"{where}: not installed (no executable at {self.path})") from None
        if stat.S_ISLNK(st.st_mode):
            raise SigningKeyError(f"{where}: {self.path} is a symlink, plugins must be regular files")
        if not stat.S_ISREG(st.st_mode):
            raise SigningKeyError(f"{where}: {self.path} is not a regular file")
        if not os.access(self.path, os.X_OK):
            raise SigningKeyError(f"{where}: {self.path} is not executable")

    def call(self, command: str, request: dict[str, Any]) -> dict[str, Any]:
        where = f'plugin "{self.name}" {command}'
        cap = self.limits.plugin_output_bytes
        try:
            proc = subprocess.Popen(
                [str(self.path), command],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise SigningKeyError(f"{where}: cannot run {self.path} ({exc.strerror})") from exc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        out: list[bytes] = []
        err: list[bytes] = []
        over = threading.Event()
        readers = [
            threading.Thread(target=_read_capped, args=(proc.stdout, cap, out, over, proc), daemon=True),
            threading.Thread(target=_read_capped, args=(proc.stderr, cap, err, over, proc), daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            proc.stdin.write(json.dumps(request).encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the plugin exited without reading; its exit status tells the story
        try:
            proc.wait(timeout=self.limits.plugin_timeout_seconds)
        except subprocess.TimeoutExpired:
            if over.is_set():
                raise SigningKeyError(f"{where}: output exceeds the {cap}-byte limit") from None
            proc.kill()
            proc.wait()
            raise SigningKeyError(
                f"{where}: timed out after {self.limits.plugin_timeout_seconds:g}s (plugin killed)"
            ) from None
        finally:
            for reader in readers:
                reader.join(timeout=5)
        if over.is_set():
            raise SigningKeyError(f"{where}: output exceeds the {cap}-byte limit")
        stdout, stderr = b"".join(out), b"".join(err)
        if proc.returncode != 0:
            raise SigningKeyError(f"{where}: failed with exit code {proc.returncode}: {_describe_error(stderr)}")
        try:
            response = json_loads(stdout)
        except ValueError as exc:
            raise SigningKeyError(f"{where}: response is not valid JSON ({exc})") from exc
        if not isinstance(response, dict):
            raise SigningKeyError(f"{where}: response is not a JSON object")
        return response


def _describe_error(stderr: bytes) -> str:
    try:
        obj = json_loads(stderr)
    except ValueError:
        text = stderr.decode(errors="replace").strip()
        return text[:500] if text else "no error output"
    if isinstance(obj, dict) and ("errorCode" in obj or "errorMessage" in obj):
        return f"{obj.get('errorCode', 'ERROR')}: {obj.get('errorMessage', '')}"
    return stderr.decode(errors="replace").strip()[:500]


def _jws_chain(raw: bytes, where: str) -> list[x509.Certificate]:
    """The x5c chain of a JWS envelope (the probe's): enough to pin and check the chain before any artifact."""
    try:
        header = json_loads(raw)["header"]
        return [x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in header["x5c"]]
    except (ValueError, TypeError, KeyError) as exc:
        raise SigningKeyError(f"{where}: the probe envelope has no readable x5c chain ({exc})") from exc


def _field(response: dict[str, Any], name: str, where: str) -> Any:
    if name not in response:
        raise SigningKeyError(f"{where}: response is missing {name}")
    return response[name]


class PluginKey:
    """A KMS key behind a Notation plugin; implements ``SigningKey``."""

    def __init__(
        self,
        name: str,
        *,
        plugin_name: str,
        key_id: str,
        config_dir: Path,
        plugin_config: dict[str, str] | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.name = name
        self.key_id = key_id
        self.plugin_config = dict(plugin_config or {})
        self.runner = PluginRunner(config_dir, plugin_name, limits)
        self._metadata: dict[str, Any] | None = None
        self._key_spec: str | None = None
        self._chain: list[x509.Certificate] | None = None

    @property
    def plugin_name(self) -> str:
        return self.runner.name

    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            where = f'plugin "{self.plugin_name}" get-plugin-metadata'
            meta = self.runner.call("get-plugin-metadata", {"pluginConfig": self.plugin_config})
            versions = _field(meta, "supportedContractVersions", where)
            if not isinstance(versions, list) or CONTRACT_VERSION not in versions:
                raise SigningKeyError(f"{where}: contract version {CONTRACT_VERSION} is not supported ({versions!r})")
            capabilities = _field(meta, "capabilities", where)
            if not isinstance(capabilities, list) or not {CAPABILITY_RAW, CAPABILITY_ENVELOPE} & set(capabilities):
                raise SigningKeyError(
                    f"{where}: plugin has neither the {CAPABILITY_RAW} nor the {CAPABILITY_ENVELOPE} capability"
                )
            if not isinstance(meta.get("version", ""), str):
                raise SigningKeyError(f"{where}: version must be a string")
            if meta.get("name") != self.plugin_name:
                raise SigningKeyError(
                    f"{where}: plugin reports name {meta.get('name')!r}, installed as {self.plugin_name!r}"
                )
            self._metadata = meta
        return self._metadata

    @property
    def contract(self) -> str:
        """``raw`` or ``envelope``: which signing contract this plugin is driven by (RAW first, as Notation)."""
        return "raw" if CAPABILITY_RAW in self.metadata()["capabilities"] else "envelope"

    @property
    def signing_agent_suffix(self) -> str:
        """``<pluginName>/<pluginVersion>``, which Notation appends to the signing agent."""
        return f"{self.plugin_name}/{self.metadata().get('version', '')}"

    def envelope_generator(self) -> PluginKey | None:
        return self if self.contract == "envelope" else None

    def key_spec(self) -> str:
        if self._key_spec is None:
            self.metadata()
            where = f'plugin "{self.plugin_name}" describe-key'
            response = self.runner.call(
                "describe-key",
                {"contractVersion": CONTRACT_VERSION, "keyId": self.key_id, "pluginConfig": self.plugin_config},
            )
            if _field(response, "keyId", where) != self.key_id:
                raise SigningKeyError(f"{where}: answered for keyId {response['keyId']!r}, asked {self.key_id!r}")
            spec = _field(response, "keySpec", where)
            if not isinstance(spec, str):
                raise SigningKeyError(f"{where}: keySpec must be a string")
            algorithm_for(spec)
            self._key_spec = spec
        return self._key_spec

    def certificate_chain(self) -> list[x509.Certificate]:
        if self._chain is None:
            if self.contract == "envelope":
                raw, _ = self.generate_envelope(probe_envelope_payload(), JWS_ENVELOPE, None)
                self._chain = _jws_chain(raw, f'plugin "{self.plugin_name}" generate-envelope')
            else:
                self._chain = self._generate(PROBE_PAYLOAD)[1]
        return list(self._chain)

    def generate_envelope(
        self, payload: bytes, envelope_type: str, expiry_seconds: int | None
    ) -> tuple[bytes, dict[str, str]]:
        """``generate-envelope``: the plugin's envelope of ``payload`` and the manifest annotations it asks for.

        Only the response's shape is checked here; the envelope itself is verified by the caller
        (``notation/formats.py``), which knows envelope formats."""
        self.metadata()
        where = f'plugin "{self.plugin_name}" generate-envelope'
        request: dict[str, Any] = {
            "contractVersion": CONTRACT_VERSION,
            "keyId": self.key_id,
            "payloadType": NOTATION_PAYLOAD_TYPE,
            "signatureEnvelopeType": envelope_type,
            "payload": base64.b64encode(payload).decode(),
            "pluginConfig": self.plugin_config,
        }
        if expiry_seconds:
            request["expiryDurationInSeconds"] = expiry_seconds
        response = self.runner.call("generate-envelope", request)
        answered = _field(response, "signatureEnvelopeType", where)
        if answered != envelope_type:
            raise SigningKeyError(
                f"{where}: signatureEnvelopeType {answered!r} does not match the request {envelope_type!r}"
            )
        try:
            envelope = base64.b64decode(_field(response, "signatureEnvelope", where), validate=True)
        except (ValueError, TypeError) as exc:
            raise SigningKeyError(f"{where}: signatureEnvelope is not base64 ({exc})") from exc
        if not envelope:
            raise SigningKeyError(f"{where}: signatureEnvelope is empty")
        annotations = response.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise SigningKeyError(f"{where}: annotations must be an object of strings")
        return envelope, dict(annotations)

    def sign(self, to_be_signed: bytes) -> bytes:
        if self.contract == "envelope":
            raise SigningKeyError(
                f'plugin "{self.plugin_name}" makes whole envelopes (SIGNATURE_GENERATOR.ENVELOPE), not raw signatures'
            )
        signature, chain = self._generate(to_be_signed)
        if self._chain is not None and [c.fingerprint(hashes.SHA256()) for c in chain] != [
            c.fingerprint(hashes.SHA256()) for c in self._chain
        ]:
            raise SigningKeyError(
                f'plugin "{self.plugin_name}" generate-signature: certificate chain changed between calls'
            )
        self._chain = chain
        return signature

    def _generate(self, payload: bytes) -> tuple[bytes, list[x509.Certificate]]:
        spec = self.key_spec()
        algorithm = algorithm_for(spec)
        where = f'plugin "{self.plugin_name}" generate-signature'
        response = self.runner.call(
            "generate-signature",
            {
                "contractVersion": CONTRACT_VERSION,
                "keyId": self.key_id,
                "keySpec": spec,
                "hashAlgorithm": algorithm.hash_name,
                "payload": base64.b64encode(payload).decode(),
                "pluginConfig": self.plugin_config,
            },
        )
        if _field(response, "keyId", where) != self.key_id:
            raise SigningKeyError(f"{where}: answered for keyId {response['keyId']!r}, asked {self.key_id!r}")
        if _field(response, "signingAlgorithm", where) != algorithm.signing_algorithm:
            raise SigningKeyError(
                f"{where}: signingAlgorithm {response['signingAlgorithm']!r} does not match key spec {spec}"
                f" (expected {algorithm.signing_algorithm})"
            )
        try:
            signature = base64.b64decode(_field(response, "signature", where), validate=True)
            ders = _field(response, "certificateChain", where)
            if not isinstance(ders, list) or not ders:
                raise SigningKeyError(f"{where}: certificateChain must be a non-empty array")
            chain = [x509.load_der_x509_certificate(base64.b64decode(d, validate=True)) for d in ders]
        except (ValueError, TypeError) as exc:
            raise SigningKeyError(f"{where}: malformed signature or certificateChain ({exc})") from exc
        leaf_spec = key_spec_of(chain[0].public_key(), where=f"{where}: signing certificate")
        if leaf_spec != spec:
            raise SigningKeyError(f"{where}: certificate key is {leaf_spec} but describe-key said {spec}")
        if not verify_raw(chain[0].public_key(), signature, payload, algorithm):
            raise SigningKeyError(f"{where}: signature does not verify against the returned signing certificate")
        return signature, chain
