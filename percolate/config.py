"""Typed settings read from the environment; nothing happens at import."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

DEFAULT_DATABASE = "percolate"


@dataclass(frozen=True)
class SamplerSettings:
    """How frames are taken from a video: `fps` frames per second of presentation time."""

    fps: float = 1.0
    max_side: int = 640  # sampled frames are stored with their long side at most this
    jpeg_quality: int = 90


@dataclass(frozen=True)
class Settings:
    """Where everything lives and how it is computed.

    `home` holds local state (Airflow metadata, Spark warehouse, staging, Derby metastore).
    `store_uri` is the object store: a local directory or `s3://bucket/prefix`.
    """

    home: Path
    store_uri: str
    database: str = DEFAULT_DATABASE
    spark_master: str = "local[*]"
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    cost_per_core_hour: float = 0.048  # USD per vCPU-hour, on-demand compute-optimised class
    s3_endpoint_url: str | None = None

    @property
    def warehouse_dir(self) -> Path:
        return self.home / "warehouse"

    @property
    def metastore_dir(self) -> Path:
        return self.home / "metastore"

    @property
    def stage_dir(self) -> Path:
        """Intermediate Parquet between Spark jobs, one folder per stage and date."""
        return self.home / "stage"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        home = Path(env.get("PERCOLATE_HOME", Path.cwd() / "var")).resolve()
        store = env.get("PERCOLATE_STORE", str(home / "store"))
        if "://" not in store:
            store = str(Path(store).resolve())
        return cls(
            home=home,
            store_uri=store,
            database=env.get("PERCOLATE_DATABASE", DEFAULT_DATABASE),
            spark_master=env.get("PERCOLATE_SPARK_MASTER", "local[*]"),
            sampler=SamplerSettings(fps=float(env.get("PERCOLATE_SAMPLE_FPS", "1.0"))),
            cost_per_core_hour=float(env.get("PERCOLATE_COST_PER_CORE_HOUR", "0.048")),
            s3_endpoint_url=env.get("PERCOLATE_S3_ENDPOINT_URL") or None,
        )
