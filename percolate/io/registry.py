"""The model registry the settings name: `registry_uri` (the object store, unless told otherwise)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from percolate.core.settings import Settings
from percolate.io.store import open_store

if TYPE_CHECKING:
    from models.registry import ModelRegistry


def open_registry(settings: Settings) -> "ModelRegistry":
    from models.registry import ModelRegistry

    return ModelRegistry(open_store(settings.registry_uri, settings.s3_endpoint_url))
