"""One error root for the whole tool; the CLI catches it once and prints one line.

Exit codes (README "Exit codes"): 0 success; 1 a check failed (verification, coexistence gate);
2 bad usage or bad input; 3 a remote failed after retries.
"""

from __future__ import annotations

from .safetext import printable


class Dct2NotationError(Exception):
    """Base of every error the tool reports to a user. ``str(err)`` is the one line shown."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        # Keep it one line: a multi-line message would break log scrapers and CI annotations. Messages quote what
        # servers sent (error bodies, names, realms): no control character of theirs reaches the terminal.
        super().__init__(printable(" ".join(message.split())))

    @property
    def message(self) -> str:
        return str(self)


# --- exit 2: the user gave us something we cannot use -------------------------------------------
class UsageError(Dct2NotationError):
    """Bad command-line usage: missing source, conflicting flags, tag reference where a digest is required."""


class InputError(Dct2NotationError):
    """A file or field the user gave is malformed; the message names the file/field and the reason."""


class ConfigError(InputError):
    """Notation config (signingkeys.json, trust policy, trust store, signers.toml) is unusable."""


class SigningKeyError(Dct2NotationError):
    """A signing key, certificate or KMS plugin cannot be used."""


class NotFoundError(Dct2NotationError):
    """The remote says the thing does not exist (unknown GUN, unknown repository, missing manifest)."""


class AuthError(Dct2NotationError):
    """Credentials are missing or refused."""


# --- exit 1: a check ran and failed --------------------------------------------------------------
class VerificationError(Dct2NotationError):
    exit_code = 1


class DCTVerificationError(VerificationError):
    """Notary v1 / TUF metadata refused: names the GUN, the role and the reason."""

    def __init__(self, gun: str, role: str, reason: str) -> None:
        self.gun = gun
        self.role = role
        self.reason = reason
        super().__init__(f"{gun}: {role}: {reason}")


class NotationVerificationError(VerificationError):
    """A Notation signature failed verification; ``check`` names the failed check."""

    def __init__(self, check: str, reason: str) -> None:
        self.check = check
        self.reason = reason
        super().__init__(f"{check}: {reason}")


class TimestampError(VerificationError):
    """An RFC 3161 timestamp could not be obtained or did not verify."""


class GateFailed(VerificationError):
    """A coexistence / sign-off gate was not met."""


# --- exit 3: the remote kept failing --------------------------------------------------------------
class RemoteError(Dct2NotationError):
    exit_code = 3


class DeadlineExceeded(RemoteError):
    """A request got no complete answer within the overall per-request deadline (a stalled or dripping server)."""

    def __init__(self, what: str, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(
            f"{what}: no complete answer within {seconds:g} s (the per-request deadline; "
            "DCT2NOTATION_HTTP_DEADLINE=SECONDS sets it)"
        )


class DigestMismatchError(RemoteError):
    """The registry served bytes whose digest is not the one asked for: tampered or corrupt content, not an outage."""
