"""The demo estate's images (fixtures/generate_demo.py) pushed into a real docker-registry under another prefix."""

from __future__ import annotations

import json

from dct2notation.registry.client import RegistryClient
from dct2notation.registry.options import RegistryOptions
from fixtures.generate_demo import IMAGES, Image, build_images


def push_demo_images(
    host: str,
    repo_prefix: str,
    images: tuple[Image, ...] = IMAGES,
    gun_prefix: str = "registry.demo.local",
    options: RegistryOptions | None = None,
) -> None:
    """Push every image of ``images`` as ``REPO_PREFIX/<path below gun_prefix>:TAG`` (blobs, then the manifest).

    ``options`` (a TLS registry's CA and credentials); default plain HTTP to ``host``."""
    blobs, entries, _ = build_images(images)
    with RegistryClient(host, options or RegistryOptions(insecure_registries=frozenset({host}))) as client:
        for entry in entries:
            name = str(entry["annotations"]["org.opencontainers.image.ref.name"])  # type: ignore[index]
            gun, _, tag = name.rpartition(":")
            repo = repo_prefix + gun.removeprefix(gun_prefix)
            manifest = blobs[str(entry["digest"])]
            doc = json.loads(manifest)
            for desc in (doc["config"], *doc["layers"]):
                client.push_blob(repo, blobs[desc["digest"]])
            client.put_manifest(repo, tag, manifest, str(entry["mediaType"]))
