"""Typed settings read from the environment; nothing happens at import."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

DEFAULT_DATABASE = "percolate"
SYNTHETIC_SUFFIX = "_synthetic"


def _resolved(uri: str) -> str:
    """A local path made absolute; a URI (s3://...) as it is."""
    return uri if "://" in uri else str(Path(uri).resolve())


def _under(uri: str, prefix: str) -> str:
    return uri.rstrip("/") + "/" + prefix


QUARANTINE_SPIKE_ACTIONS = ("fail", "partial")


@dataclass(frozen=True)
class SamplerSettings:
    """How frames are taken from a video: `fps` frames per second of presentation time.

    The decode limits apply to every (untrusted) video; a video over a limit is quarantined.
    """

    fps: float = 1.0
    max_side: int = 640  # sampled frames are stored with their long side at most this
    jpeg_quality: int = 90
    time_limit_s: float = 300.0  # CPU seconds per video (a hung decode: killed after 3x this in wall clock)
    memory_limit_mb: int = 2048  # address space one video's decode may add (isolated decode)
    max_pixels: int = 4096 * 2304  # per frame
    max_duration_s: float = 4 * 3600.0
    isolated: bool = True  # decode each video in a forked child with hard limits
    max_frames: int | None = None  # per video; None: what max_duration_s gives at fps
    max_sampled_mb: int = 2048  # JPEG bytes per video

    def decode_limits(self) -> dict:
        """The limits as keyword arguments of `percolate.video.DecodeLimits`."""
        return {"time_limit_s": self.time_limit_s, "max_memory_bytes": self.memory_limit_mb * 1024 * 1024,
                "max_pixels": self.max_pixels, "max_duration_s": self.max_duration_s,
                "max_frames": self.max_frames, "max_sampled_bytes": self.max_sampled_mb * 1024 * 1024}

    def provenance(self, decode_modes: list[str]) -> dict:
        """What every prediction row records of the sampler (the `sampler` column)."""
        return {"fps": self.fps, "max_side": self.max_side, "jpeg_quality": self.jpeg_quality,
                "limits": {"time_limit_s": self.time_limit_s, "memory_limit_mb": self.memory_limit_mb,
                           "max_pixels": self.max_pixels, "max_duration_s": self.max_duration_s,
                           "isolated": self.isolated, "max_frames": self.max_frames,
                           "max_sampled_mb": self.max_sampled_mb},
                "decode_modes": sorted(decode_modes)}


def _flag(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a yes/no value: {value!r}")


def sampler_from_env(env: Mapping[str, str]) -> SamplerSettings:
    d = SamplerSettings()
    return SamplerSettings(
        fps=float(env.get("PERCOLATE_SAMPLE_FPS", d.fps)),
        time_limit_s=float(env.get("PERCOLATE_DECODE_TIME_LIMIT_S", d.time_limit_s)),
        memory_limit_mb=int(env.get("PERCOLATE_DECODE_MEMORY_MB", d.memory_limit_mb)),
        max_pixels=int(env.get("PERCOLATE_DECODE_MAX_PIXELS", d.max_pixels)),
        max_duration_s=float(env.get("PERCOLATE_DECODE_MAX_DURATION_S", d.max_duration_s)),
        isolated=_flag(env.get("PERCOLATE_DECODE_ISOLATED", "1")),
        max_frames=int(env["PERCOLATE_DECODE_MAX_FRAMES"]) if env.get("PERCOLATE_DECODE_MAX_FRAMES") else None,
        max_sampled_mb=int(env.get("PERCOLATE_DECODE_MAX_SAMPLED_MB", d.max_sampled_mb)),
    )


@dataclass(frozen=True)
class Settings:
    """Where everything lives and how it is computed.

    `home` holds local state (Airflow metadata, Spark warehouse, Derby metastore, logs,
    reports). `store_uri` is the object store: a local directory or `s3://bucket/prefix`;
    `stage_uri` the stage area between Spark jobs (default `home/stage`); `registry_uri`
    the store that holds the model registry (default: `store_uri`).

    `synthetic()` gives the settings under which generated days for training and evaluation
    live: their own database, store prefix, stage, reports and leases, the same registry.
    """

    home: Path
    store_uri: str
    stage_uri: str = ""
    database: str = DEFAULT_DATABASE
    # the Hive metastore: "" is embedded Derby under home/metastore (one Spark application at a
    # time); postgresql://user:password@host:port/db is a shared one (infra/postgres.sh)
    metastore_url: str = field(default="", repr=False)  # holds a password
    # the same metastore through a role that may only SELECT: the analysts' Thrift server
    metastore_reader_url: str = field(default="", repr=False)
    spark_master: str = "local[*,4]"  # a failed task (a Python worker killed) is retried, as on a cluster
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    cost_per_core_hour: float = 0.048  # USD per vCPU-hour, on-demand compute-optimised class
    s3_endpoint_url: str | None = None
    # grey levels under which the heavy model's input counts as unchanged within a call (models.reuse)
    heavy_reuse_tolerance: float = 4.0
    # how long a replaced publish of a date stays readable (queries that started on it finish)
    publish_retention_hours: float = 24.0
    registry_uri: str = ""
    # frames drawn into the nightly audit sample per stratum (percolate.core.tables.AUDIT_STRATA)
    audit_rejected: int = 200
    audit_low_confidence: int = 100
    audit_passed: int = 100
    # a day whose quarantined share of videos is far above the trailing days'
    # (expectations.quarantine_spike): "fail" the run, or publish it as "partial"
    on_quarantine_spike: str = "fail"

    def __post_init__(self):
        if self.on_quarantine_spike not in QUARANTINE_SPIKE_ACTIONS:
            raise ValueError(f"on_quarantine_spike must be one of {QUARANTINE_SPIKE_ACTIONS}, "
                             f"got {self.on_quarantine_spike!r}")
        if not self.stage_uri:
            object.__setattr__(self, "stage_uri", str(self.home / "stage"))
        if not self.registry_uri:
            object.__setattr__(self, "registry_uri", self.store_uri)

    def synthetic(self) -> "Settings":
        """Where generated days go (`percolate train`, `percolate evaluate`): database
        `<database>_synthetic`, `synthetic/` under the store and the stage, reports and leases
        of their own, so their dates never meet the production tables' or the real uploads'.
        Models stay in (and are registered to) the production registry."""
        if self.database.endswith(SYNTHETIC_SUFFIX):
            return self
        return replace(self, database=self.database + SYNTHETIC_SUFFIX,
                       store_uri=_under(self.store_uri, "synthetic"), stage_uri=_under(self.stage_uri, "synthetic"),
                       registry_uri=self.registry_uri)

    def _state(self, name: str) -> Path:
        """Per-database local state: `home/<name>` for the default database."""
        return self.home / name if self.database == DEFAULT_DATABASE else self.home / "databases" / self.database / name

    @property
    def audit_budgets(self) -> dict[str, int]:
        return {"prefilter_rejected": self.audit_rejected, "heavy_low_confidence": self.audit_low_confidence,
                "prefilter_passed": self.audit_passed}

    @property
    def warehouse_dir(self) -> Path:
        return self.home / "warehouse"

    @property
    def metastore_dir(self) -> Path:
        return self.home / "metastore"

    @property
    def leases_dir(self) -> Path:
        """One writer per date of a database: the runs' leases (`percolate.io.lease`)."""
        return self._state("leases")

    @property
    def reports_dir(self) -> Path:
        return self._state("reports")

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def gx_dir(self) -> Path:
        """Great Expectations' project (data docs under uncommitted/data_docs)."""
        return self.home / "gx"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        home = Path(env.get("PERCOLATE_HOME", Path.cwd() / "var")).resolve()
        store = _resolved(env.get("PERCOLATE_STORE", str(home / "store")))
        stage = _resolved(env.get("PERCOLATE_STAGE", str(home / "stage")))
        return cls(
            home=home,
            store_uri=store,
            stage_uri=stage,
            database=env.get("PERCOLATE_DATABASE", DEFAULT_DATABASE),
            metastore_url=env.get("PERCOLATE_METASTORE_URL", ""),
            metastore_reader_url=env.get("PERCOLATE_METASTORE_READER_URL", ""),
            spark_master=env.get("PERCOLATE_SPARK_MASTER", "local[*,4]"),
            sampler=sampler_from_env(env),
            cost_per_core_hour=float(env.get("PERCOLATE_COST_PER_CORE_HOUR", "0.048")),
            s3_endpoint_url=env.get("PERCOLATE_S3_ENDPOINT_URL") or None,
            heavy_reuse_tolerance=float(env.get("PERCOLATE_HEAVY_REUSE_TOLERANCE", cls.heavy_reuse_tolerance)),
            publish_retention_hours=float(env.get("PERCOLATE_PUBLISH_RETENTION_HOURS", cls.publish_retention_hours)),
            registry_uri=_resolved(env.get("PERCOLATE_REGISTRY", store)),
            audit_rejected=int(env.get("PERCOLATE_AUDIT_REJECTED", cls.audit_rejected)),
            audit_low_confidence=int(env.get("PERCOLATE_AUDIT_LOW_CONFIDENCE", cls.audit_low_confidence)),
            audit_passed=int(env.get("PERCOLATE_AUDIT_PASSED", cls.audit_passed)),
            on_quarantine_spike=env.get("PERCOLATE_ON_QUARANTINE_SPIKE", cls.on_quarantine_spike),
        )
