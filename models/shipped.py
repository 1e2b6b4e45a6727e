"""The default models shipped with the repository (`models/shipped/`), so a first run needs
no training.

`models/shipped/<role>/` holds a registered version's spec and files as `percolate train
--ship` exported them; `models/shipped/SHA256SUMS` the sha256 of every file there. When a
registry has no `production` model for a role, `ensure_production` checks the sums and
registers the shipped model as a new version with that alias.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

ROLES = ("prefilter", "heavy")
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
SUMS = "SHA256SUMS"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_shipped(role: str, root: Path = SHIPPED_DIR) -> tuple[dict, dict[str, bytes]]:
    """The shipped spec and files of `role`, each checked against SHA256SUMS."""
    sums_path = root / SUMS
    if not sums_path.exists():
        raise FileNotFoundError(f"no shipped models: {sums_path} is missing (run `percolate train --ship`)")
    sums = {}
    for line in sums_path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name] = digest
    folder = root / role
    found = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        rel = f"{role}/{path.name}"
        data = path.read_bytes()
        if sums.get(rel) != _sha256(data):
            raise ValueError(f"shipped model file {path} does not match {sums_path}")
        found[path.name] = data
    if "spec.json" not in found:
        raise FileNotFoundError(f"no shipped {role} model under {folder}")
    spec = json.loads(found.pop("spec.json"))
    return spec, found


def ensure_production(registry, root: Path = SHIPPED_DIR) -> dict[str, str]:
    """Register and alias the shipped model of each role that has no `production` model.

    Returns {role: new version} for the roles it registered (empty when none was missing).
    """
    aliases = registry.aliases()
    done = {}
    for role in ROLES:
        if aliases.get(role, {}).get("production"):
            continue
        spec, files = read_shipped(role, root)
        version = registry.import_version(role, dict(spec, source="shipped"), files)
        registry.set_alias(role, "production", version, reason="shipped models: no production model yet")
        done[role] = version
    return done


def ship(registry, versions: dict[str, str], root: Path = SHIPPED_DIR) -> Path:
    """Export registered versions as the shipped models (replacing those in `root`)."""
    lines = []
    for role in ROLES:
        spec, files = registry.files(role, versions[role])
        folder = root / role
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        spec = {k: v for k, v in spec.items() if k not in ("role", "version", "created_at", "source")}
        files = {**files, "spec.json": (json.dumps(spec, indent=2, sort_keys=True) + "\n").encode()}
        for name, data in sorted(files.items()):
            (folder / name).write_bytes(data)
            lines.append(f"{_sha256(data)}  {role}/{name}")
    (root / SUMS).write_text("\n".join(lines) + "\n")
    return root


def resolve(registry, role: str, alias_or_version: str) -> str:
    """`registry.resolve`, registering the shipped models first when `production` is asked
    for and the registry has none."""
    if alias_or_version == "production" and not registry.aliases().get(role, {}).get("production"):
        ensure_production(registry)
    return registry.resolve(role, alias_or_version)
