"""`percolate cost-model`: the talk's table from its inputs, and the measured one beside it."""

import json

import pytest

from workflows.cost_model import cost_model, format_cost_model, talk_table


def test_the_talks_table_is_reproduced_from_its_inputs():
    usd = [round(r["usd_per_day"], 2) for r in talk_table()]
    # the talk's slide: $248,275, $8,280, $828, $152 (52 GPU-hours, rounded up), $0.01
    assert usd[0] == pytest.approx(248_275, abs=1)
    assert usd[1] == pytest.approx(8_276, abs=5)
    assert usd[2] == pytest.approx(828, abs=1)
    assert usd[3] == pytest.approx(150, abs=3)
    assert usd[4] == pytest.approx(0.01, abs=0.01)
    assert usd[5] > usd[4]


def test_the_measured_table_shows_the_decode_line(tmp_path):
    latest = tmp_path / "latest.json"
    assert "measured" not in cost_model(latest, 0.048)
    enc = {"decode_limit": {"cpu_s_per_video_hour": 9.0}, "percolate": {"cpu_s_per_video_hour": 40.0},
           "where_the_cpu_goes_per_video_hour": {"demux + decode": 20.0, "heavy model": 5.0}}
    latest.write_text(json.dumps({"when": "now", "commit": "abc", "encodings": {"gop1s": enc}}))
    out = cost_model(latest, 0.048)
    rows = out["measured"]["prices"]["0.02"]
    assert rows[0]["step"].startswith("decode limit")
    assert rows[0]["usd_per_day"] == pytest.approx(9.0 / 3600 * 4e6 * 0.02)
    assert "decode limit alone" in format_cost_model(out)
