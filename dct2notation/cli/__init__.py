"""Thin command-line layer: parse options, call library functions, print. Errors are caught once, in ``main``."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

from ..errors import Dct2NotationError

if TYPE_CHECKING:
    import typer

# Each command lives in one area module; only the module a command needs is imported, because start-up time is
# paid by every invocation (a batch of `inventory` runs, shell loops) and the areas pull in heavy libraries.
AREA_OF_COMMAND = {
    "archive": "dct",
    "inventory": "dct",
    "cert": "notation",
    "key": "notation",
    "sign": "oci",
    "ls": "oci",
    "inspect": "oci",
    "verify": "oci",
    "policy": "policy",
    "plan": "migrate",
    "check": "check",
    "signoff": "signoff",
}
AREAS = ("dct", "notation", "oci", "policy", "migrate", "check", "signoff")


def build_app(argv: list[str] | None = None) -> typer.Typer:
    """The Typer app with the commands ``argv`` needs (all of them when it names none we know)."""
    import typer

    app = typer.Typer(
        name="dct2notation",
        help="Move container-image signing from Docker Content Trust (Notary v1) to Notation.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root() -> None:
        """Move container-image signing from Docker Content Trust (Notary v1) to Notation."""

    @app.command("version")
    def version() -> None:
        """Print the tool's version."""
        from .. import __version__

        print(__version__)

    words = [a for a in (argv or []) if not a.startswith("-")]
    area = AREA_OF_COMMAND.get(words[0]) if words else None
    wanted: tuple[str, ...] = (area,) if area else () if words[:1] == ["version"] else AREAS
    for name in wanted:
        importlib.import_module(f"{__name__}.{name}").register(app)
    return app


def __getattr__(name: str) -> typer.Typer:
    # ``from dct2notation.cli import app`` still works (tests list the registered commands).
    if name == "app":
        return build_app()
    raise AttributeError(name)


# Set once a command ran without typer: ``run`` may then end the process without the interpreter's teardown.
_ran_without_typer = False


def _without_typer(args: list[str]) -> bool:
    """Run ``args`` if its command parses them itself (typer costs ~0.1 s per process); False when typer must."""
    global _ran_without_typer
    if args[:1] != ["inventory"]:
        return False
    from .dct_commands import parse_inventory_argv, run_inventory

    parsed = parse_inventory_argv(args)
    if parsed is None:
        return False
    _ran_without_typer = True
    run_inventory(parsed)
    return True


def main(argv: list[str] | None = None) -> int:
    """Entry point. Returns the process exit code (README "Exit codes")."""
    args = sys.argv[1:] if argv is None else argv
    try:
        if _without_typer(args):
            return 0
        result = build_app(args)(args=args, standalone_mode=False, prog_name="dct2notation")
    except Dct2NotationError as err:
        print(f"dct2notation: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("dct2notation: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        code = _parser_exit_code(exc)
        if code is None:
            raise
        return code
    return int(result) if isinstance(result, int) else 0


def _parser_exit_code(exc: Exception) -> int | None:
    """Exit code for typer's own exits and usage errors; None for anything else (a bug: let it show)."""
    import typer
    from typer._click import exceptions as typer_exceptions  # typer vendors click; its errors live here

    if isinstance(exc, typer.Exit):
        return int(exc.exit_code)
    if isinstance(exc, typer.Abort):
        print("dct2notation: aborted", file=sys.stderr)
        return 130
    if isinstance(exc, typer_exceptions.NoArgsIsHelpError):
        exc.show()
        return 2
    if isinstance(exc, typer_exceptions.ClickException):
        # Usage mistakes are exit 2 (README), whatever code the parser library would pick.
        print(f"dct2notation: error: {exc.format_message()}", file=sys.stderr)
        return 2
    return None


def run() -> None:
    code = main()
    if _ran_without_typer:
        # Teardown frees a 10,000-tag inventory object by object, then every module: ~25 ms for nothing once the
        # output is flushed. Only this path skips it: it starts no threads, temp files or atexit work of its own.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
