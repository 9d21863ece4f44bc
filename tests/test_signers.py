"""signers.toml: loading, first-match resolution, DCT signers of a repository, unmapped listing, registry map."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from dct2notation.errors import ConfigError, UsageError
from dct2notation.migrate.signers import RegistryMap, load_signers, signers_of_repository, unmapped

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "leaf.crt").write_text("placeholder")
    (tmp_path / "k.key").write_text("placeholder")
    path = tmp_path / "signers.toml"
    path.write_text(text)
    return path


def test_first_matching_entry_in_file_order_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[signer]]\ngun = "reg/team/special"\nrole = "targets/releases"\nkey = "special"\n\n'
        '[[signer]]\ngun = "reg/team/*"\nrole = "targets/*"\nkey_file = "k.key"\ncert_file = "leaf.crt"\n\n'
        '[[signer]]\ngun = "reg/*"\nplugin = "kms"\nkey_id = "arn:1"\nplugin_config = { region = "eu" }\n'
        'ca_file = "leaf.crt"\n',
    )
    mapping = load_signers(path)
    special = mapping.key_for("reg/team/special", "targets/releases")
    assert special is not None and special.spec == "special" and special.index == 0
    delegated = mapping.key_for("reg/team/special", "targets/alice")
    assert delegated is not None
    assert delegated.spec == f"{tmp_path / 'k.key'}:{tmp_path / 'leaf.crt'}"
    admin = mapping.key_for("reg/team/app", "targets")
    assert admin is not None and admin.spec == "plugin:kms:arn:1" and admin.plugin_config == {"region": "eu"}
    assert admin.ca_file == tmp_path / "leaf.crt"
    assert mapping.key_for("other/app", "targets") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[signer]]\nrole = 'targets'\nkey = 'k'\n", "signer[0].gun: missing"),
        ("[[signer]]\ngun = 'g'\n", "signer[0]: exactly one of key, key_file, plugin is required"),
        ("[[signer]]\ngun = 'g'\nkey = 'k'\nplugin = 'p'\nkey_id = 'i'\n", "exactly one of key, key_file, plugin"),
        ("[[signer]]\ngun = 'g'\nplugin = 'p'\n", "signer[0].key_id: missing (required with plugin)"),
        ("[[signer]]\ngun = 'g'\nkey = 'k'\nkey_id = 'i'\n", "signer[0].key_id: only allowed with plugin"),
        ("[[signer]]\ngun = 'g'\nkey_file = 'k.key'\n", "signer[0].cert_file: missing (required with key_file)"),
        ("[[signer]]\ngun = 'g'\nkey = 'k'\ncert_file = 'nope.crt'\n", "signer[0].cert_file: "),
        ("[[signer]]\ngun = 'g'\nkey = 'k'\nkeyy = 1\n", "signer[0].keyy: unknown field"),
        ("[[signer]]\ngun = 'g'\nkey = 7\n", "signer[0].key: must be a non-empty string"),
        ("[[signer]]\ngun = 'g'\nkey = 'k'\nplugin_config = { a = 'b' }\n", "plugin_config: only allowed with plugin"),
        ("[[signer]]\ngun = 'g'\nplugin = 'p'\nkey_id = 'i'\nplugin_config = { a = 1 }\n", "a table of strings"),
        ("signer = 3\n", "signer: at least one [[signer]] table is required"),
        ("[[signers]]\ngun = 'g'\n", "signers: unknown field"),
        ("signer = [1]\n", "signer[0]: must be a table"),
        ("[[signer]\n", "not valid TOML"),
    ],
)
def test_every_bad_field_is_one_line_naming_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_signers(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="signer mapping file does not exist"):
        load_signers(tmp_path / "absent.toml")


def repo(gun: str) -> dict[str, object]:
    return {
        "gun": gun,
        "trusted_tags": [
            {"tag": "v1", "digest": DIGEST_A, "size": 1, "role": "targets/releases"},
            {"tag": "v2", "digest": DIGEST_B, "size": 1, "role": "targets"},
        ],
        "role_targets": {
            "targets/releases": [{"tag": "v1", "digest": DIGEST_A, "size": 1}],
            "targets/alice": [{"tag": "v1", "digest": DIGEST_A, "size": 1}],  # co-signed the trusted v1
            "targets/bob": [{"tag": "v1", "digest": DIGEST_B, "size": 1}],  # other digest: never pulled
            "targets/carol": [{"tag": "only-carol", "digest": DIGEST_B, "size": 1}],
        },
    }


def test_signers_of_repository_are_released_roles_and_cosigners_of_trusted_tags() -> None:
    assert signers_of_repository(repo("g")) == ["targets", "targets/alice", "targets/releases"]


def test_unmapped_lists_every_gun_and_role(tmp_path: Path) -> None:
    mapping = load_signers(write(tmp_path, "[[signer]]\ngun = 'reg/a'\nrole = 'targets/releases'\nkey = 'k'\n"))
    inventory = {"repositories": [repo("reg/a"), repo("reg/b")]}
    assert unmapped(inventory, mapping) == [
        ("reg/a", "targets"),
        ("reg/a", "targets/alice"),
        ("reg/b", "targets"),
        ("reg/b", "targets/alice"),
        ("reg/b", "targets/releases"),
    ]


def test_registry_map_longest_prefix_on_path_boundaries() -> None:
    rmap = RegistryMap.parse(["docker.io/acme=reg.example/acme", "docker.io/acme/web=web.example/w"])
    assert rmap.apply("docker.io/acme/api") == "reg.example/acme/api"
    assert rmap.apply("docker.io/acme/web/ui") == "web.example/w/ui"
    assert rmap.apply("docker.io/acme") == "reg.example/acme"
    assert rmap.apply("docker.io/acmecorp/api") == "docker.io/acmecorp/api"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("no-equals", "expected GUN_PREFIX=REGISTRY_PREFIX"),
        ("=reg/x", "expected GUN_PREFIX=REGISTRY_PREFIX"),
        ("a=reg/*", "wildcards are not allowed in repository scopes"),
    ],
)
def test_registry_map_refusals(item: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("*", r"\*")):
        RegistryMap.parse([item])


def test_mapped_spec_resolves_to_the_signing_key(tmp_path: Path) -> None:
    from dct2notation.keys.resolve import load_signing_key
    from dct2notation.keys.testcert import generate_test_key

    config = tmp_path / "notation"
    generate_test_key("rel", config, key_type="ec-p256")
    local = config / "localkeys"
    (tmp_path / "signers.toml").write_text(
        '[[signer]]\ngun = "a/*"\nkey = "rel"\n\n'
        f'[[signer]]\ngun = "b/*"\nkey_file = "{local / "rel.key"}"\ncert_file = "{local / "rel.crt"}"\n'
    )
    mapping = load_signers(tmp_path / "signers.toml")
    by_name, by_file = mapping.key_for("a/x", "targets"), mapping.key_for("b/x", "targets/releases")
    assert by_name is not None and by_file is not None
    leaf = (local / "rel.crt").read_bytes()
    for mapped in (by_name, by_file):
        key = load_signing_key(mapped.spec, config)
        assert key.certificate_chain()[0].public_bytes(Encoding.PEM) == leaf
