"""``RegistryCore.url`` builds absolute paths by concatenation; it must name exactly what ``base.join`` names."""

from __future__ import annotations

import httpx
import pytest

from dct2notation.registry.client import RegistryCore
from dct2notation.registry.options import RegistryOptions

PATHS = [
    "/v2/",
    "/v2/team/app/manifests/v1.2-rc_3",
    "/v2/team/app/manifests/sha256-" + "b" * 64,
    "/v2/team/app/referrers/sha256:" + "a" * 64,
    "/v2/team/app/blobs/uploads/",
    "/v2/a%20b/tags/list",
    "/v2/ä/tags/list",
    "//elsewhere.example/v2/",  # scheme-relative: join semantics, another host
    "v2/relative",
]


@pytest.mark.parametrize("host", ["127.0.0.1:5000", "registry.example", "[::1]:5000"])
@pytest.mark.parametrize("path", PATHS)
def test_url_is_base_join(host: str, path: str) -> None:
    core = RegistryCore(host, RegistryOptions(insecure_registries=frozenset({"127.0.0.1:5000"})))
    url = core.url(path)
    assert url == core.base.join(path)
    assert url.raw_path == core.base.join(path).raw_path
    assert isinstance(url, httpx.URL)


def test_scheme_relative_path_keeps_join_semantics() -> None:
    core = RegistryCore("registry.example", RegistryOptions())
    assert core.url("//elsewhere.example/v2/").host == "elsewhere.example"
    assert str(core.url("/v2/x")) == "https://registry.example/v2/x"
