from __future__ import annotations

import pytest

from percolate.core.settings import Settings
from percolate.core.layout import check_date, manifest_key, video_key
from percolate.io.manifest import ManifestError, read_manifest, write_manifest
from percolate.io.store import LocalStore


def test_dates_are_checked():
    assert check_date("2026-11-20") == "2026-11-20"
    for bad in ("2026-13-01", "20261120", "2026-1-1", "yesterday", None):
        with pytest.raises(ValueError):
            check_date(bad)
    with pytest.raises(ValueError):
        video_key("../../x", "c1")


def test_manifest_round_trip_sorted(tmp_path):
    store = LocalStore(tmp_path)
    rows = [{"call_id": "b", "user_id": "u2", "video_key": "videos/dt=2026-01-01/b.mp4", "size_bytes": 3},
            {"call_id": "a", "user_id": "u1", "video_key": "videos/dt=2026-01-01/a.mp4", "size_bytes": 5}]
    write_manifest(store, "2026-01-01", rows)
    assert [r["call_id"] for r in read_manifest(store, "2026-01-01")] == ["a", "b"]


def test_manifest_errors_are_clear(tmp_path):
    store = LocalStore(tmp_path)
    with pytest.raises(ManifestError, match="no manifest"):
        read_manifest(store, "2026-01-01")
    store.put_bytes(manifest_key("2026-01-01"), b"call_id,video\nx,y\n")
    with pytest.raises(ManifestError, match="lacks columns"):
        read_manifest(store, "2026-01-01")
    store.put_bytes(manifest_key("2026-01-01"),
                    b"call_id,user_id,video_key,size_bytes\na,u,k,1\na,u,k,1\n")
    with pytest.raises(ManifestError, match="twice"):
        read_manifest(store, "2026-01-01")


def test_settings_from_env(tmp_path):
    s = Settings.from_env({"PERCOLATE_HOME": str(tmp_path), "PERCOLATE_SAMPLE_FPS": "2"})
    assert s.home == tmp_path.resolve()
    assert s.store_uri == str(tmp_path.resolve() / "store")
    assert s.sampler.fps == 2.0
    assert Settings.from_env({"PERCOLATE_HOME": str(tmp_path), "PERCOLATE_STORE": "s3://b/p"}).store_uri == "s3://b/p"
    assert s.heavy_reuse_tolerance == 4.0
    assert Settings.from_env({"PERCOLATE_HOME": str(tmp_path),
                              "PERCOLATE_HEAVY_REUSE_TOLERANCE": "0"}).heavy_reuse_tolerance == 0.0


def test_decode_limits_from_env(tmp_path):
    from percolate.video.limits import DecodeLimits

    default = Settings.from_env({"PERCOLATE_HOME": str(tmp_path)}).sampler
    assert (default.time_limit_s, default.memory_limit_mb, default.isolated) == (300.0, 2048, True)
    assert DecodeLimits(**default.decode_limits()) == DecodeLimits()  # one set of defaults
    s = Settings.from_env({"PERCOLATE_HOME": str(tmp_path), "PERCOLATE_DECODE_TIME_LIMIT_S": "20",
                           "PERCOLATE_DECODE_MEMORY_MB": "512", "PERCOLATE_DECODE_MAX_PIXELS": "1000000",
                           "PERCOLATE_DECODE_MAX_DURATION_S": "60", "PERCOLATE_DECODE_ISOLATED": "no"}).sampler
    assert s.decode_limits() == {"time_limit_s": 20.0, "max_memory_bytes": 512 << 20, "max_pixels": 1_000_000,
                                 "max_duration_s": 60.0, "max_frames": None, "max_sampled_bytes": 2048 << 20}
    capped = Settings.from_env({"PERCOLATE_HOME": str(tmp_path), "PERCOLATE_DECODE_MAX_FRAMES": "100",
                                "PERCOLATE_DECODE_MAX_SAMPLED_MB": "64"}).sampler
    assert (capped.decode_limits()["max_frames"], capped.decode_limits()["max_sampled_bytes"]) == (100, 64 << 20)
    assert s.isolated is False
    with pytest.raises(ValueError):
        Settings.from_env({"PERCOLATE_HOME": str(tmp_path), "PERCOLATE_DECODE_ISOLATED": "maybe"})


def test_synthetic_days_have_their_own_database_store_stage_reports_and_leases(tmp_path):
    prod = Settings.from_env({"PERCOLATE_HOME": str(tmp_path), "PERCOLATE_STORE": "s3://calls/prod"})
    syn = prod.synthetic()
    assert syn.database == "percolate_synthetic" and prod.database == "percolate"
    assert syn.store_uri == "s3://calls/prod/synthetic" and syn.stage_uri == str(tmp_path / "stage" / "synthetic")
    # the same registry: models trained on synthetic days are registered where the nightly finds them
    assert syn.registry_uri == prod.registry_uri == "s3://calls/prod"
    for name in ("reports_dir", "leases_dir"):
        assert getattr(prod, name).parent == tmp_path
        assert getattr(syn, name).is_relative_to(tmp_path / "databases" / "percolate_synthetic")
    assert syn.synthetic() == syn  # not nested twice
    # a separate registry, when asked for
    own = Settings.from_env({"PERCOLATE_HOME": str(tmp_path), "PERCOLATE_REGISTRY": str(tmp_path / "models")})
    assert own.registry_uri == str(tmp_path / "models") and own.store_uri == str(tmp_path / "store")
