"""Thin command-line layer: parse options, call library functions, print. Errors are caught once, in ``main``."""

from __future__ import annotations

import sys

import typer
from typer._click import exceptions as typer_exceptions  # typer vendors click; its errors live here

from ..errors import Dct2NotationError
from . import check, dct, migrate, notation, oci, policy, signoff

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


for _module in (dct, notation, oci, policy, migrate, check, signoff):
    _module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point. Returns the process exit code (README "Exit codes")."""
    try:
        result = app(args=argv, standalone_mode=False, prog_name="dct2notation")
    except Dct2NotationError as err:
        print(f"dct2notation: error: {err}", file=sys.stderr)
        return err.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        print("dct2notation: aborted", file=sys.stderr)
        return 130
    except typer_exceptions.NoArgsIsHelpError as exc:
        exc.show()
        return 2
    except typer_exceptions.ClickException as exc:
        # Usage mistakes are exit 2 (README), whatever code the parser library would pick.
        print(f"dct2notation: error: {exc.format_message()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dct2notation: interrupted", file=sys.stderr)
        return 130
    return int(result) if isinstance(result, int) else 0


def run() -> None:
    sys.exit(main())
