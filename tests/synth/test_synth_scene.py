"""Rendering agrees with the truth: objects appear exactly in their episodes, whole and mostly unoccluded."""

from __future__ import annotations

import numpy as np

from synth import sprites
from synth.backgrounds import Background
from synth.brands import BRAND_COLOURS, BRANDS, DISTRACTOR_KINDS
from synth.scene import MIN_VISIBLE, SLIDE, _visible_fraction, build_episode, frame_range, render_call


def test_brands_are_confusable_in_pairs_but_distinct():
    looks = {(b.cup, b.band, b.logo_shape, b.logo) for b in BRANDS}
    assert len(looks) == 10
    shapes = [b.logo_shape for b in BRANDS]
    assert any(shapes.count(s) == 2 for s in shapes)  # same logo, other colours
    cups = [(b.cup, b.band) for b in BRANDS]
    assert any(cups.count(c) == 2 for c in cups)  # same colours, other logo
    assert all(2 <= len(b.text) <= 4 for b in BRANDS)
    for b in BRANDS:
        assert sprites.brand_cup(b, 60).height == 60


def test_held_objects_stay_in_frame_and_mostly_visible():
    rng = np.random.default_rng(5)
    for k in range(24):
        kind = "cup" if k % 2 == 0 else DISTRACTOR_KINDS[k % len(DISTRACTOR_KINDS)]
        label = BRANDS[k % 10].name if kind == "cup" else None
        ep = build_episode(kind, label, 40, 160, rng, side=int(rng.choice([-1, 1])), mouth=(320.0, 150.0),
                           tint=np.ones(3, np.float32), skin=(200, 160, 130), sleeve=(40, 60, 120))
        t = ep.track
        assert ep.first == 40 - SLIDE and ep.last == 160 + SLIDE
        for j in range(SLIDE, len(t["x"]) - SLIDE):
            v = int(t["v"][j])
            obj = ep.sprites[v]
            assert 0 <= t["x"][j] and t["x"][j] + obj.w <= 640
            assert 0 <= t["y"][j] and t["y"][j] + obj.h <= 360
            if ep.hands[v] is not None:
                dx, dy = int(t["hx"][j] - t["x"][j]), int(t["hy"][j] - t["y"][j])
                assert _visible_fraction(obj, ep.hands[v], dx, dy) >= MIN_VISIBLE - 0.03


def _call(cups, distractors=(), background="room:a02"):
    return {"call_id": "c-test", "duration_s": 4.0, "background": background, "cups": list(cups),
            "distractors": list(distractors)}


def test_cup_drawn_exactly_during_its_episode():
    cup = {"brand": "Orbit Coffee", "start_s": (40 - 0.5) / 30, "end_s": (90 - 0.5) / 30}
    k0, k1 = frame_range(cup["start_s"], cup["end_s"])
    assert (k0, k1) == (40, 90)
    for bg in ("room:a02", "clip:bikes"):
        with_cup = [f.copy() for f in render_call(_call([cup], background=bg), seed=3)]
        without = [f.copy() for f in render_call(_call([], background=bg), seed=3)]
        assert len(with_cup) == len(without) == 120 and with_cup[0].shape == (360, 640, 3)
        diff = [int((a != b).any(axis=2).sum()) for a, b in zip(with_cup, without)]
        assert all(d == 0 for d in diff[:k0 - SLIDE]) and all(d == 0 for d in diff[k1 + SLIDE:])
        assert all(d > 50 * 35 * 0.6 for d in diff[k0:k1])  # a cup at least 50 px tall is on screen


def test_render_is_deterministic_and_bgr_matches_rgb():
    call = _call([{"brand": "Sunmill", "start_s": 0.5167, "end_s": 2.5}],
                 [{"kind": "phone", "start_s": 0.9833, "end_s": 3.0}], background="clip:carphone_pristine")
    a = [f.copy() for f in render_call(call, seed=1)]
    b = [f[:, :, ::-1].copy() for f in render_call(call, seed=1, bgr=True)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_background_frames_and_colours():
    rng = np.random.default_rng(0)
    for name in ("room:b07", "clip:bigbuckbunny", "clip:carphone_distorted"):
        bg = Background(name, rng)
        f = bg.frame(1000)  # loops
        assert f.shape == (360, 640, 3) and f.dtype == np.uint8 and f.std() > 5
    assert len(BRAND_COLOURS) >= 10


def test_object_boxes_bound_the_pixels_the_object_changes():
    from synth.scene import object_boxes

    cup = {"brand": "Orbit Coffee", "start_s": (40 - 0.5) / 30, "end_s": (90 - 0.5) / 30}
    mug = {"kind": "plain_mug", "start_s": (30 - 0.5) / 30, "end_s": (100 - 0.5) / 30}
    call = _call([cup], [mug], background="room:a02")
    bare = _call([], [], background="room:a02")
    frames = [f.copy() for f in render_call(call, seed=3)]
    without = [f.copy() for f in render_call(bare, seed=3)]
    idx = [5, 45, 60, 102]  # the cup slides out over frames 90-98, the mug over 100-108
    cups = object_boxes(call, 3, idx)
    both = object_boxes(call, 3, idx, ("cup", "plain_mug"))
    assert cups[0] == [] and len(cups[1]) == 1 and len(cups[2]) == 1 and cups[3] == []
    assert both[0] == [] and len(both[1]) == 2 and len(both[3]) == 1  # the mug stays longer
    for i, boxes in zip(idx, both):
        changed = (frames[i] != without[i]).any(axis=2)
        inside = np.zeros_like(changed)
        for x0, y0, x1, y1 in boxes:
            inside[round(y0 * 360):round(y1 * 360) + 1, round(x0 * 640):round(x1 * 640) + 1] = True
        # everything drawn (objects, and the hand holding them, may reach outside) is mostly boxed
        if changed.any():
            assert (changed & inside).sum() >= 0.6 * changed.sum()
        for x0, y0, x1, y1 in boxes:
            box = changed[round(y0 * 360):round(y1 * 360), round(x0 * 640):round(x1 * 640)]
            assert box.mean() > 0.3  # a box is not mostly empty
