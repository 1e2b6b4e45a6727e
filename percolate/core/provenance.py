"""Where a result came from: the code version, and the provenance columns of a run."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path


def code_version() -> str:
    """The git commit of the running code, `PERCOLATE_CODE_VERSION`, or "unknown"."""
    if os.environ.get("PERCOLATE_CODE_VERSION"):
        return os.environ["PERCOLATE_CODE_VERSION"]
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                   cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
            return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def provenance_values(*, run_id: str, prefilter_spec: dict, heavy_spec: dict, sampler: dict,
                      heavy_reuse_tolerance: float, code_version: str, published_at) -> dict:
    """The provenance columns every prediction row carries (`percolate.core.tables.PROVENANCE`)."""
    return {
        "run_id": run_id,
        "prefilter_version": prefilter_spec["version"],
        "heavy_version": heavy_spec["version"],
        "prefilter_threshold": float(prefilter_spec["threshold"]),
        "heavy_threshold": float(heavy_spec["threshold"]),
        "aggregation": json.dumps(heavy_spec["aggregation"], sort_keys=True),
        "sampler": json.dumps(sampler, sort_keys=True),
        "heavy_reuse_tolerance": float(heavy_reuse_tolerance),
        "code_version": code_version,
        "published_at": published_at,
    }
