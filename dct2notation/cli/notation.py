"""``cert generate-test/add/ls`` and ``key list/ls``: thin wrappers over ``dct2notation.keys`` and the trust store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from ..keys.signingkeys import SigningKeys, notation_config_dir, signing_keys_path
from ..keys.testcert import KEY_TYPES, generate_test_key
from ..report import print_json

ConfigDirOption = Annotated[
    Path | None,
    typer.Option("--config-dir", help="Notation config directory (default: $NOTATION_CONFIG or ~/.config/notation)."),
]


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    cert_app = typer.Typer(help="Signing certificates.", no_args_is_help=True)
    key_app = typer.Typer(help="Signing keys in Notation's signingkeys.json.", no_args_is_help=True)

    @cert_app.command("generate-test")
    def generate_test(
        name: Annotated[str, typer.Argument(help="Key name ([a-zA-Z0-9_.-]+).")],
        key_type: Annotated[str, typer.Option("--key-type", help=f"One of {', '.join(KEY_TYPES)}.")] = "rsa-2048",
        default: Annotated[bool, typer.Option("--default", help="Make it the default signing key.")] = False,
        days: Annotated[int, typer.Option("--days", help="Validity in days (Notation uses 1).")] = 1,
        config_dir: ConfigDirOption = None,
    ) -> None:
        """Generate a test key and self-signed certificate, as `notation cert generate-test` does."""
        result = generate_test_key(
            name, notation_config_dir(config_dir), key_type=key_type, make_default=default, days=days
        )
        print(f"generated {result.key_path} and {result.cert_path}; trust store: {result.trust_store_cert}")

    @cert_app.command("add")
    def add_cert(
        files: Annotated[list[Path], typer.Argument(help="PEM or DER certificate files.")],
        store_type: Annotated[str, typer.Option("--type", "-t", help="ca, signingAuthority or tsa.")] = "ca",
        store: Annotated[str, typer.Option("--store", "-s", help="Trust store name ([a-zA-Z0-9_.-]+).")] = "",
        config_dir: ConfigDirOption = None,
    ) -> None:
        """Add certificates to a named trust store, as `notation cert add --type T --store S FILE…` does."""
        from ..notation.truststore import TrustStore

        if not store:
            raise UsageError("cert add: --store NAME is required")
        truststore = TrustStore(notation_config_dir(config_dir) / "truststore")
        for path in truststore.add(store_type, store, files):
            print(f"added {path} to trust store {store_type}:{store}")

    @cert_app.command("ls")
    def list_certs(
        store_type: Annotated[str | None, typer.Option("--type", "-t", help="ca, signingAuthority or tsa.")] = None,
        store: Annotated[str | None, typer.Option("--store", "-s", help="Trust store name.")] = None,
        config_dir: ConfigDirOption = None,
    ) -> None:
        """The certificate files of the trust stores, one path a line, as `notation cert ls` prints them."""
        from ..notation.truststore import TrustStore

        for path in TrustStore(notation_config_dir(config_dir) / "truststore").entries(store_type, store):
            print(path)

    @key_app.command("list")
    def list_keys(
        json_output: Annotated[bool, typer.Option("--json", help="Print signingkeys.json entries as JSON.")] = False,
        config_dir: ConfigDirOption = None,
    ) -> None:
        """List the signing keys of Notation's signingkeys.json (default marked with *)."""
        keys = SigningKeys.load(signing_keys_path(notation_config_dir(config_dir)))
        if json_output:
            print_json(keys.to_dict())
            return
        print("NAME\tKEY PATH\tCERTIFICATE PATH\tID\tPLUGIN NAME")
        for entry in keys.keys:
            mark = "* " if entry.name == keys.default else "  "
            fields = [entry.key_path, entry.cert_path, entry.id, entry.plugin_name]
            print(mark + entry.name + "\t" + "\t".join(f or "" for f in fields))

    key_app.command("ls", help="The same as `key list` (Notation's name for it).")(list_keys)
    app.add_typer(cert_app, name="cert")
    app.add_typer(key_app, name="key")
