"""A class-data-sharing (CDS) archive for Percolate's short-lived Spark drivers.

Every spark-submit starts a driver JVM that loads about 13,000 classes from Spark's jars
before it does any work, and a nightly run starts three. With an archive of those classes made
once (Java 17's dynamic CDS: `-XX:ArchiveClassesAtExit`, then `-XX:SharedArchiveFile`), the JVM
maps them already parsed and verified instead. Measured in docs/tuning.md ("The drivers'
class archive").

An archive is only valid for the JVM and the exact class path it was made with: one jar more
in Spark's jars folder (PostgreSQL's JDBC driver, which `infra/postgres.sh start` links there)
and the JVM silently loads every class as before. So the archive is keyed by the java binary,
the jars folder's listing (names, sizes, times) and the driver's JVM options, and

- `make setup` builds it (`python -m percolate.io.jvm_archive`: a small Spark application with
  Hive, Parquet and a pandas UDF, under spark-submit, run with the dump option);
- every launcher of a job (the DAG's spark-submit operator, `workflows.launch.spark_submit`) calls
  `ensure()` first, which builds it when the key has none (once: later launchers wait on a
  lock, and a failed build is not tried again for a day);
- every driver JVM gets `java_options()`: the measured options plus the archive where one
  exists. Nothing fails for want of an archive: the driver starts as it did before.
  `PERCOLATE_JVM_ARCHIVE=0` turns both off. A driver started elsewhere (a cluster's deploy
  mode) finds no file at that path and starts without it too (Java 17 checked: no error).

Archives live in `$PERCOLATE_JVM_ARCHIVE_DIR` (default: `share/percolate/jvm` in the
virtualenv, beside the jars they describe), about 220 MB each; building one for a new key
removes the others.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from percolate.core import tuning

ENV_DIR = "PERCOLATE_JVM_ARCHIVE_DIR"
ENV_SWITCH = "PERCOLATE_JVM_ARCHIVE"  # "0": neither build nor use one (to measure without, or rule it out)
BUILD_TIMEOUT_S = 600
RETRY_AFTER_S = 24 * 3600  # a failed build is tried again after this long (a full disk may have been freed)
PREFIX = "spark-driver-"


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def archive_dir() -> Path:
    return Path(os.environ.get(ENV_DIR) or Path(sys.prefix) / "share" / "percolate" / "jvm")


def java_binary() -> Path | None:
    """The java that spark-submit will start (`JAVA_HOME`, else the PATH's)."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return Path(os.path.realpath(found)) if found and os.path.exists(found) else None


def archive_key(jars: Path | None = None, java: Path | None = None,
                options: str = tuning.DRIVER_JAVA_OPTIONS) -> str | None:
    """What an archive is valid for, as a short hash; None without a java or a jars folder."""
    if jars is None:
        from percolate.io.metastore import spark_jars

        jars = spark_jars()
    java = java or java_binary()
    if java is None or not jars.is_dir():
        return None
    listing = []
    for entry in sorted(jars.iterdir()):
        try:
            st = entry.stat()  # a link's target: what the class path reads
        except OSError:
            continue
        listing.append((entry.name, st.st_size, st.st_mtime_ns))
    blob = json.dumps([str(java), java.stat().st_mtime_ns, str(jars.resolve()), listing, options])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def archive_path(key: str) -> Path:
    return archive_dir() / f"{PREFIX}{key}.jsa"


def java_options(base: str = tuning.DRIVER_JAVA_OPTIONS) -> str:
    """`base` plus the archive for this JVM and class path, where one has been built."""
    key = archive_key(options=base) if enabled() else None
    if key is None or not archive_path(key).is_file():
        return base
    return f"{base} -XX:SharedArchiveFile={archive_path(key)}"


def with_archive(confs: dict[str, str]) -> dict[str, str]:
    """Spark settings (`tuning.submit_confs()` or a DAG task's) with the archive added to the
    driver's JVM options, where one exists for them."""
    base = confs.get("spark.driver.extraJavaOptions", tuning.DRIVER_JAVA_OPTIONS)
    return dict(confs, **{"spark.driver.extraJavaOptions": java_options(base)})


def ensure(base: str = tuning.DRIVER_JAVA_OPTIONS, timeout_s: float = BUILD_TIMEOUT_S) -> Path | None:
    """The archive for this JVM and class path, built now if there is none; None where it cannot
    be built (logged, never raised: a driver without it only starts slower)."""
    key = archive_key(options=base) if enabled() else None
    if key is None:
        return None
    path = archive_path(key)
    if path.is_file():
        return path
    failed = path.with_suffix(".failed")
    if _failed_lately(failed):
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another launcher may be building it right now
            if path.is_file() or _failed_lately(failed):
                return path if path.is_file() else None
            return _build(key, base, timeout_s)
    except OSError as exc:  # a read-only virtualenv, a full disk: run without
        print(f"[percolate] no JVM class archive ({exc})", file=sys.stderr, flush=True)
        return None


def _failed_lately(marker: Path) -> bool:
    try:
        return time.time() - marker.stat().st_mtime < RETRY_AFTER_S
    except FileNotFoundError:
        return False


def _build(key: str, base: str, timeout_s: float) -> Path | None:
    path = archive_path(key)
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    print(f"[percolate] building the Spark drivers' class archive {path.name} (once for this JVM and "
          "class path, about a minute)", file=sys.stderr, flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="percolate-jvm-archive-") as home:
        env = dict(os.environ, PERCOLATE_HOME=home, PYSPARK_PYTHON=sys.executable,
                   PYSPARK_DRIVER_PYTHON=sys.executable, SPARK_LOCAL_IP=os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        for name in ("PERCOLATE_STORE", "PERCOLATE_STAGE", "PERCOLATE_REGISTRY", "PERCOLATE_METASTORE_URL"):
            env.pop(name, None)  # the workload's own temporary home, the embedded metastore
        confs = dict(tuning.submit_confs(), **{"spark.driver.extraJavaOptions": f"{base} -XX:ArchiveClassesAtExit={partial}"})
        cmd = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]",
               *[arg for k, v in confs.items() for arg in ("--conf", f"{k}={v}")], __file__, "--workload", home]
        try:
            out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 timeout=timeout_s, errors="replace")
            ok = out.returncode == 0 and partial.is_file() and partial.stat().st_size > 0
            log = out.stdout
        except subprocess.TimeoutExpired as exc:
            ok, log = False, f"timed out after {timeout_s:.0f} s\n{exc.stdout or ''}"
    if not ok:
        partial.unlink(missing_ok=True)
        path.with_suffix(".failed").write_text(log[-20000:])
        print(f"[percolate] the class archive could not be built (log: {path.with_suffix('.failed')}); "
              "Spark drivers start without it", file=sys.stderr, flush=True)
        return None
    os.replace(partial, path)
    for other in path.parent.glob(f"{PREFIX}*"):
        if other != path and not other.name.endswith(".part"):
            other.unlink(missing_ok=True)  # other keys: an old JVM or jars folder (a mapped file stays readable)
    print(f"[percolate] class archive built in {time.monotonic() - started:.0f} s "
          f"({path.stat().st_size / 1e6:.0f} MB)", file=sys.stderr, flush=True)
    return path


def _double(batches):
    for frame in batches:
        frame["score"] = frame["score"] * 2.0
        yield frame


def workload(home: str) -> None:
    """What a Percolate job's driver does, in small: the classes the archive should hold."""
    from pyspark.sql import functions as F

    from percolate.core.settings import Settings
    from percolate.io.spark import get_spark

    settings = Settings.from_env({"PERCOLATE_HOME": home})
    spark = get_spark("percolate-jvm-archive", settings)
    rows = [(i, f"u{i % 7}", bytes([i % 256]) * 64, float(i)) for i in range(500)]
    df = spark.createDataFrame(rows, "id long, user_id string, payload binary, score double")
    df = df.mapInPandas(_double, df.schema).persist()
    stage = str(Path(home) / "stage")
    df.coalesce(1).write.mode("overwrite").parquet(stage)
    back = spark.read.parquet(stage)
    back.groupBy("user_id").agg(F.count("*").alias("n"), F.max("score").alias("top")).orderBy("user_id").collect()
    df.unpersist()
    spark.sql("CREATE DATABASE IF NOT EXISTS archive_db")
    spark.sql("CREATE TABLE IF NOT EXISTS archive_db.t (id BIGINT, score DOUBLE) PARTITIONED BY (ds STRING) "
              "STORED AS PARQUET")
    back.createOrReplaceTempView("back")
    spark.sql("INSERT OVERWRITE TABLE archive_db.t PARTITION (ds='2026-01-01') SELECT id, score FROM back")
    spark.sql("SELECT ds, count(*), sum(score) FROM archive_db.t GROUP BY ds").collect()
    spark.catalog.listTables("archive_db")
    spark.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Spark drivers' class archive unless there is one.")
    parser.add_argument("--workload", metavar="HOME", help=argparse.SUPPRESS)  # what the dump runs
    args = parser.parse_args(argv)
    if args.workload:
        workload(args.workload)
        return 0
    path = ensure()
    print(path if path else "no archive: Spark drivers start without one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
