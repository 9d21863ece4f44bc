"""Thin command-line layer: parse options, call library functions, print. Errors are caught once, in ``main``."""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import Dct2NotationError

if TYPE_CHECKING:
    import typer

# Each command lives in one area module; only the module a command needs is imported, because start-up time is
# paid by every invocation (a batch of `inventory` runs, shell loops) and the areas pull in heavy libraries.
AREA_OF_COMMAND = {
    "archive": "dct",
    "inventory": "dct",
    "discover": "dct",
    "cert": "notation",
    "key": "notation",
    "sign": "oci",
    "ls": "oci",
    "inspect": "oci",
    "verify": "oci",
    "policy": "policy",
    "plan": "migrate",
    "k8s-job": "migrate",
    "k8s-run": "migrate",
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
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    def _print_version(value: bool) -> None:
        if value:
            from .. import __version__

            print(f"dct2notation {__version__}")
            raise typer.Exit(0)

    @app.callback()
    def _root(
        # Not Annotated: typer evaluates annotations in this module's globals, where typer is not imported.
        version: bool = typer.Option(
            False, "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ) -> None:
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
    _report_closed_stdout(app)
    return app


class _StdoutClosed(Exception):
    """A command's stdout reader went away. Not an OSError: typer would turn that into a silent exit 1."""


def _report_closed_stdout(app: typer.Typer) -> None:
    """Wrap every command so a broken pipe reaches ``main`` (exit 141) whichever parser ran the command."""
    for info in app.registered_commands:
        if info.callback is not None:
            info.callback = _raising_stdout_closed(info.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            _report_closed_stdout(group.typer_instance)


def _raising_stdout_closed(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)  # typer reads the parameters through __wrapped__
    def command(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except BrokenPipeError as exc:
            raise _StdoutClosed from exc

    return command


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
    if args[:1] == ["archive"]:
        from .dct_commands import parse_archive_argv, run_archive_args

        archive = parse_archive_argv(args)
        if archive is None:
            return False
        run_archive_args(archive)  # the interpreter's teardown as usual: it ran threads and wrote files
        return True
    if args[:1] != ["inventory"]:
        return False
    from .dct_commands import parse_inventory_argv, run_inventory

    parsed = parse_inventory_argv(args)
    if parsed is None:
        return False
    _ran_without_typer = True
    run_inventory(parsed)
    return True


# The commands whose --oci-layout is also Notation's flag (``verify --oci-layout --scope S DIR@sha256:…``).
_LAYOUT_FLAG_COMMANDS = ("sign", "ls", "inspect", "verify")


def _layout_flag_argv(args: list[str]) -> list[str]:
    """A bare ``--oci-layout`` (last, or before another option) becomes ``--oci-layout=``, which those commands
    read as Notation's flag; ``--oci-layout DIR`` keeps its value."""
    if args[:1] and args[0] not in _LAYOUT_FLAG_COMMANDS:
        return args
    out = list(args)
    for i, arg in enumerate(out):
        if arg == "--":
            break
        if arg == "--oci-layout" and (i + 1 == len(out) or out[i + 1].startswith("-")):
            out[i] = "--oci-layout="
    return out


# Kept here, not imported from .policy: that area is only imported when the command is one of its own.
_POLICY_SUBCOMMANDS = ("import", "show")


def main(argv: list[str] | None = None) -> int:
    """Entry point. Returns the process exit code (README "Exit codes")."""
    args = _layout_flag_argv(sys.argv[1:] if argv is None else argv)
    try:
        if _without_typer(args):
            return 0
        if args[:1] == ["policy"] and args[1:2] and args[1] in _POLICY_SUBCOMMANDS:
            admin = importlib.import_module(f"{__name__}.policy").policy_admin_app()
            _report_closed_stdout(admin)
            result = admin(args=args[1:], standalone_mode=False, prog_name="dct2notation policy")
        else:
            result = build_app(args)(args=args, standalone_mode=False, prog_name="dct2notation")
    except Dct2NotationError as err:
        print(f"dct2notation: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("dct2notation: interrupted", file=sys.stderr)
        return 130
    except (BrokenPipeError, _StdoutClosed):
        # The reader of stdout went away (`| head`): as for a shell command killed by SIGPIPE, no message.
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        code = _parser_exit_code(exc)
        if code is None:
            raise
        return code
    return int(result) if isinstance(result, int) else 0


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a command whose reader closed the pipe


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush does not fail on the closed pipe again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's capture): nothing is flushed at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


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
