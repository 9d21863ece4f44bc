"""``cert generate-test/add/ls/delete`` and ``key add/list/ls/delete``: thin wrappers over ``dct2notation.keys``
and the trust store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

import typer

from ..errors import UsageError
from ..keys.signingkeys import KeyEntry, SigningKeys, add_signing_key, notation_config_dir, signing_keys_path
from ..keys.testcert import KEY_TYPES, generate_test_key
from ..report import print_json
from .options import PluginConfigOpt

_T = TypeVar("_T")
KeyNameArg = Annotated[str, typer.Argument(help="Key name ([a-zA-Z0-9_.-]+).")]
# cert add/ls/delete: the same flag and help; add defaults the type to ca, ls lists every store when none is given.
StoreTypeOpt = Annotated[_T, typer.Option("--type", "-t", help="ca, signingAuthority or tsa.")]
StoreNameOpt = Annotated[_T, typer.Option("--store", "-s", help="Trust store name.")]
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
        name: KeyNameArg,
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
        store_type: StoreTypeOpt[str] = "ca",
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
        store_type: StoreTypeOpt[str | None] = None,
        store: StoreNameOpt[str | None] = None,
        config_dir: ConfigDirOption = None,
    ) -> None:
        """The certificate files of the trust stores, one path a line, as `notation cert ls` prints them."""
        from ..notation.truststore import TrustStore

        for path in TrustStore(notation_config_dir(config_dir) / "truststore").entries(store_type, store):
            print(path)

    @cert_app.command("delete")
    def delete_certs(
        file_name: Annotated[str | None, typer.Argument(help="The certificate's file name in the store.")] = None,
        store_type: StoreTypeOpt[str] = "",
        store: StoreNameOpt[str] = "",
        all_: Annotated[bool, typer.Option("--all", "-a", help="Every certificate of the store.")] = False,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
        config_dir: ConfigDirOption = None,
    ) -> None:
        """Delete certificates from a named trust store, as `notation cert delete -t T -s S (FILE | --all)` does."""
        from ..notation.truststore import TrustStore

        if not store_type or not store:
            raise UsageError("cert delete: --type TYPE and --store NAME are required")
        if all_ == (file_name is not None):
            raise UsageError("cert delete: give a certificate file name or --all, not both or neither")
        what = "all certificates" if all_ else f"certificate {file_name}"
        if not yes and not typer.confirm(f"Delete {what} from trust store {store_type}:{store}?", default=False):
            print("nothing deleted")
            return
        truststore = TrustStore(notation_config_dir(config_dir) / "truststore")
        for path in truststore.delete(store_type, store, file_name):
            print(f"deleted {path} from trust store {store_type}:{store}")

    @key_app.command("add")
    def add_key(
        name: KeyNameArg,
        key_file: Annotated[Path | None, typer.Option("--key-file", help="PEM private key (with --cert-file).")] = None,
        cert_file: Annotated[Path | None, typer.Option("--cert-file", help="PEM chain, leaf first.")] = None,
        plugin: Annotated[str | None, typer.Option("--plugin", help="Signing plugin name (with --id).")] = None,
        key_id: Annotated[str | None, typer.Option("--id", help="The plugin's key id.")] = None,
        plugin_config: PluginConfigOpt = [],  # noqa: B006 - typer needs a literal default; it is never mutated
        default: Annotated[bool, typer.Option("--default", help="Make it the default signing key.")] = False,
        config_dir: ConfigDirOption = None,
    ) -> None:
        """Add a signing key to signingkeys.json, as `notation key add --plugin P --id ID NAME` does (or a local
        key: --key-file KEY --cert-file CERT)."""
        local = key_file is not None or cert_file is not None
        remote = plugin is not None or key_id is not None or bool(plugin_config)
        if local == remote:
            raise UsageError("key add: give --key-file KEY --cert-file CERT or --plugin NAME --id KEYID")
        if remote:
            from .oci import _pairs

            if plugin is None or key_id is None:
                raise UsageError("key add: --plugin NAME and --id KEYID go together (--plugin-config needs both)")
            config = _pairs(plugin_config, "--plugin-config")
            entry = KeyEntry(name=name, id=key_id, plugin_name=plugin, plugin_config=config or None)
        else:
            if key_file is None or cert_file is None:
                raise UsageError("key add: --key-file and --cert-file go together")
            entry = KeyEntry(name=name, key_path=str(key_file.absolute()), cert_path=str(cert_file.absolute()))
        path = add_signing_key(notation_config_dir(config_dir), entry, make_default=default)
        print(f"added key {name} to {path}" + (" (default)" if default else ""))

    @key_app.command("delete")
    def delete_keys(
        names: Annotated[list[str], typer.Argument(help="Key names.")],
        config_dir: ConfigDirOption = None,
    ) -> None:
        """Remove keys from signingkeys.json, as `notation key delete NAME…` does: the key files are kept."""
        path = signing_keys_path(notation_config_dir(config_dir))
        keys = SigningKeys.load(path)
        removed = keys.remove(names)
        keys.save(path)
        for name in removed:
            print(f"removed key {name} from {path} (its key files are kept)")

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
