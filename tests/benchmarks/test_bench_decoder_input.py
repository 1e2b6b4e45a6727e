"""benchmarks/bench_decoder_input.py: the prefilter's two inputs compared (no timings asserted)."""


def test_both_inputs_are_scored_for_every_keyframe_and_compared(tmp_path, monkeypatch):
    from benchmarks.bench_decoder_input import FILTERS, measure
    from percolate.core.layout import video_key
    from percolate.io.manifest import write_manifest
    from percolate.io.store import open_store
    from tests.media import make_video

    store = open_store(str(tmp_path / "store"))
    video = tmp_path / "call.mp4"
    make_video(video, n=150, w=640, h=360, rate=30, gop=30)
    key = video_key("2026-12-01", "c1")
    store.put_file(key, video)
    write_manifest(store, "2026-12-01", [{"call_id": "c1", "user_id": "u1", "video_key": key,
                                          "size_bytes": video.stat().st_size}])
    for name in ("PERCOLATE_STORE", "PERCOLATE_REGISTRY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PERCOLATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PERCOLATE_STORE", str(tmp_path / "store"))
    result = measure("2026-12-01", 1)
    assert result["calls"] == 1 and result["frames"] == 5
    assert set(result["filters"]) == {f.lower() for f in FILTERS}
    for figures in result["filters"].values():
        assert 0 <= figures["mean_abs_score_difference"] <= figures["max_abs_score_difference"] <= 1
        assert 0 <= figures["decisions_changed"] <= 5
    assert all(ms > 0 for ms in result["cpu_ms_per_frame"].values())
