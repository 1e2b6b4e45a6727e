"""Render one call's frames: background, person, cup and distractor episodes.

Sprites are drawn with Pillow once per episode (a few scales and tilts); per frame the
work is numpy slicing and alpha blending of small regions only.

Timing convention (shared with the plan): an episode with visible frames [k0, k1) is
labelled [start_s, end_s) = [(k0 - 0.5) / fps, (k1 - 0.5) / fps). The object slides in
from below during the SLIDE frames before k0 and out during the SLIDE frames from k1,
and during [k0, k1) it is whole in frame with at most ~30% hidden by the holding hand.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
from PIL import Image, ImageFilter

from synth import sprites
from synth.backgrounds import HEIGHT, WIDTH, Background
from synth.brands import BRAND_COLOURS, UNKNOWN_LOGOS, brand

FPS = 30
SLIDE = 9  # frames to slide in / out (0.3 s)
SKINS = ((241, 204, 178), (224, 172, 138), (198, 145, 105), (160, 108, 74), (116, 76, 52), (84, 56, 40))
HAIRS = ((30, 24, 20), (70, 45, 28), (120, 80, 45), (190, 150, 90), (110, 110, 110))
MIN_VISIBLE = 0.68  # of a held object's pixels, hand excluded (the truth promises >= 60%)
HELD_SIP = {"cup", "plain_mug", "unknown_cup", "bottle"}


def frame_range(start_s: float, end_s: float) -> tuple[int, int]:
    """Visible frames [k0, k1) of an episode labelled [start_s, end_s)."""
    return round(start_s * FPS + 0.5), round(end_s * FPS + 0.5)


class Sprite:
    """An RGBA image prepared for fast blending onto BGR frames: premultiplied colour, 0..256 alpha."""

    def __init__(self, img: Image.Image, tint: np.ndarray | None = None):
        a = np.asarray(img.convert("RGBA"))
        rgb = a[:, :, 2::-1].astype(np.float32)  # stored as BGR
        if tint is not None:
            rgb = np.clip(rgb * tint, 0, 255)
        alpha = (a[:, :, 3:4].astype(np.float32) * (256.0 / 255.0)).round()
        self.h, self.w = a.shape[:2]
        self._rgb_alpha = rgb * alpha  # premultiplied, float
        self._max = (alpha * 255).astype(np.uint16)
        self.inv16 = (256 - alpha).astype(np.uint16)
        self._prem: dict[float, np.ndarray] = {}

    def prem16(self, gain: float) -> np.ndarray:
        """Premultiplied colour at a lighting gain (cached: gains are quantised by the caller)."""
        p = self._prem.get(gain)
        if p is None:
            p = np.minimum(self._rgb_alpha * gain, self._max).round().astype(np.uint16)
            self._prem[gain] = p
        return p

    def blend(self, frame: np.ndarray, x: int, y: int, gain: float = 1.0) -> None:
        """Draw onto `frame` (in place) with the top-left corner at (x, y), clipped to the frame."""
        H, W = frame.shape[:2]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + self.w, W), min(y + self.h, H)
        if x0 >= x1 or y0 >= y1:
            return
        sy, sx = slice(y0 - y, y1 - y), slice(x0 - x, x1 - x)
        region = frame[y0:y1, x0:x1]
        region[...] = (region * self.inv16[sy, sx] + self.prem16(gain)[sy, sx]) >> 8


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return BRAND_COLOURS[int(rng.integers(len(BRAND_COLOURS)))]


def _letters(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list("QXZJVYKGF"), int(rng.integers(2, 4))))


def _object_image(kind: str, label: str | None, height: int, rng: np.random.Generator) -> Image.Image:
    """The (unrotated) picture of one episode's object at `height` pixels."""
    if kind == "cup":
        style = brand(label)
        return sprites.brand_cup(style, height, "mug" if rng.random() < 0.3 else "paper", bool(rng.random() < 0.5))
    if kind == "plain_mug":
        return sprites.mug(height, _colour(rng), _colour(rng) if rng.random() < 0.5 else None,
                           handle_right=bool(rng.random() < 0.5))
    if kind == "unknown_cup":
        body, band = _colour(rng), _colour(rng)
        logo_shape = UNKNOWN_LOGOS[int(rng.integers(len(UNKNOWN_LOGOS)))]
        logo, text = _colour(rng), _letters(rng)
        if rng.random() < 0.3:
            return sprites.mug(height, body, band, logo_shape, logo, text, logo)
        return sprites.paper_cup(height, body, band, (245, 245, 242), logo_shape, logo, text, band)
    if kind == "phone":
        return sprites.phone(int(height * 1.2), (_colour(rng), (240, 240, 240)))
    if kind == "book":
        return sprites.book(int(height * 1.3), _colour(rng), _colour(rng), _letters(rng))
    if kind == "bottle":
        return sprites.bottle(int(height * 1.5), tuple(int(v) for v in rng.integers(60, 200, 3)), _colour(rng),
                              _colour(rng))
    if kind == "box":
        return sprites.box(height, _colour(rng), _colour(rng))
    raise ValueError(f"unknown object kind {kind!r}")


@dataclass
class Episode:
    """One object on screen: pre-rendered sprites and a per-frame track."""

    first: int  # first frame drawn (slide-in starts)
    sprites: list[Sprite]  # variants indexed by track["v"]
    hands: list[Sprite | None]
    track: dict[str, np.ndarray] = field(default_factory=dict)  # x, y (top-left), v, gain, hx, hy

    @property
    def last(self) -> int:
        return self.first + len(self.track["x"])

    def draw(self, frame: np.ndarray, i: int) -> None:
        j = i - self.first
        t = self.track
        v = int(t["v"][j])
        self.sprites[v].blend(frame, int(t["x"][j]), int(t["y"][j]), float(t["gain"][j]))
        hand = self.hands[v]
        if hand is not None:
            hand.blend(frame, int(t["hx"][j]), int(t["hy"][j]), float(t["gain"][j]))


def build_episode(kind: str, label: str | None, k0: int, k1: int, rng: np.random.Generator, *, side: int,
                  mouth: tuple[float, float], tint: np.ndarray, skin: tuple, sleeve: tuple,
                  sip_ok: bool = True) -> Episode:
    """Sprites and motion for an object fully visible during frames [k0, k1)."""
    held = rng.random() < (0.75 if kind in HELD_SIP or kind == "phone" else 0.4)
    sips = held and sip_ok and kind in HELD_SIP
    base_h = int(rng.uniform(50, 130))
    obj = _object_image(kind, label, 3 * base_h, rng)  # drawn big once, resized per variant
    if rng.random() < 0.5:
        obj = obj.filter(ImageFilter.GaussianBlur(1.2))
    a0 = float(rng.uniform(-8, 8))
    tilt = float(rng.uniform(12, 28)) * (1 if side < 0 else -1)  # lean towards the mouth
    scales, angles = (1.0, 1.08, 1.16), (a0, a0 + tilt / 2, a0 + tilt)
    obj_h = obj.height / 3
    variants, hands = [], []
    ov = float(rng.uniform(0.15, 0.40))  # how far the hand reaches over the object (fraction of its width)
    hand_left = side < 0
    for s, ang in zip(scales, angles):
        h = max(8, int(obj_h * s))
        im = obj.resize((max(4, round(obj.width * h / obj.height)), h), Image.LANCZOS)
        im = im.rotate(ang, resample=Image.BICUBIC, expand=True)
        variants.append(Sprite(im, tint))
        if held:
            hw = max(8, int(im.width * 0.7))
            hand = sprites.hand(hw, skin, sleeve, length=HEIGHT)
            if not hand_left:
                hand = hand.transpose(Image.FLIP_LEFT_RIGHT)
            hands.append(Sprite(hand, tint))
        else:
            hands.append(None)
        if not sips:  # only sips change scale and tilt
            variants, hands = variants * 3, hands * 3
            break

    n = (k1 - k0) + 2 * SLIDE
    t = np.arange(n, dtype=np.float64) / FPS
    big = variants[-1]
    # rest position (centre) and slow drift
    if held:
        cx = WIDTH / 2 + side * rng.uniform(90, 230)
        cy = rng.uniform(0.55, 0.78) * HEIGHT
        amp = rng.uniform(4, 18)
    else:  # standing on the desk at the bottom of the picture
        cx = WIDTH / 2 + side * rng.uniform(60, 260)
        cy = HEIGHT - big.h / 2 - rng.uniform(2, 30)
        amp = rng.uniform(0, 3)
    ph = rng.uniform(0, 2 * math.pi, 2)
    x = cx + amp * np.sin(2 * math.pi * t / rng.uniform(3, 7) + ph[0])
    y = cy + 0.6 * amp * np.sin(2 * math.pi * t / rng.uniform(3, 7) + ph[1])
    # sips: move to the mouth, hold, come back
    p = np.zeros(n)
    if sips:
        k = SLIDE + int(rng.integers(5, 30))
        while k + 75 < SLIDE + (k1 - k0):
            up, hold = int(rng.integers(15, 30)), int(rng.integers(20, 60))
            seg = np.concatenate([np.linspace(0, 1, up), np.ones(hold), np.linspace(1, 0, up)])
            seg = seg[: max(0, SLIDE + (k1 - k0) - k)]
            p[k:k + len(seg)] = 0.5 - 0.5 * np.cos(np.pi * seg)
            k += len(seg) + int(rng.integers(60, 200))
    mx, my = mouth
    x = x * (1 - p) + (mx - side * 0.25 * big.w) * p
    y = y * (1 - p) + (my + 0.3 * big.h) * p
    v = np.minimum((p * 3).astype(int), 2) if sips else np.zeros(n, int)
    ws = np.array([s.w for s in variants])[v]
    hs = np.array([s.h for s in variants])[v]
    x = np.clip(x, ws / 2, WIDTH - ws / 2)
    y = np.clip(y, hs / 2, HEIGHT - hs / 2)
    # slide in from below before k0, out after k1
    ease = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, SLIDE + 1) / (SLIDE + 1))
    off_in = HEIGHT + hs[:SLIDE] / 2 + 4 - y[:SLIDE]
    y[:SLIDE] += off_in * (1 - ease)
    off_out = HEIGHT + hs[-SLIDE:] / 2 + 4 - y[-SLIDE:]
    y[-SLIDE:] += off_out * ease
    x0 = np.round(x - ws / 2)
    y0 = np.round(y - hs / 2)
    g0 = rng.uniform(0.7, 1.15)
    gain = g0 * (1 + 0.08 * np.sin(2 * math.pi * t / rng.uniform(4, 12) + rng.uniform(0, 6)))
    gain = np.round(gain * 40) / 40  # quantised: each level's sprite is cached
    track = {"x": x0.astype(int), "y": y0.astype(int), "v": v, "gain": gain}
    if held:
        hws = np.array([h.w for h in hands])[v]
        grip = rng.uniform(0.35, 0.6)
        # keep at least MIN_VISIBLE of the object uncovered: pull the hand back if needed
        while ov > -0.3 and min(_visible_fraction(c, h, _hand_dx(c, h, ov, hand_left), round(grip * c.h - 0.45 * h.w))
                                for c, h in zip(variants, hands)) < MIN_VISIBLE:
            ov -= 0.05
        hx = x0 + ov * ws - hws if hand_left else x0 + ws - ov * ws
        track["hx"] = np.round(hx).astype(int)
        track["hy"] = np.round(y0 + grip * hs - 0.45 * hws).astype(int)
    return Episode(first=k0 - SLIDE, sprites=variants, hands=hands, track=track)


def _hand_dx(obj: Sprite, hand: Sprite, ov: float, hand_left: bool) -> int:
    """Hand x offset from the object's left edge when it reaches `ov` of the width over it."""
    return round(ov * obj.w - hand.w) if hand_left else round(obj.w - ov * obj.w)


def _visible_fraction(obj: Sprite, hand: Sprite, dx: int, dy: int) -> float:
    """Share of the object's opaque pixels not covered by the hand placed at (dx, dy)."""
    a = obj.inv16[:, :, 0] < 128
    total = int(a.sum())
    x0, y0, x1, y1 = max(dx, 0), max(dy, 0), min(dx + hand.w, obj.w), min(dy + hand.h, obj.h)
    if total == 0 or x0 >= x1 or y0 >= y1:
        return 1.0
    covered = a[y0:y1, x0:x1] & (hand.inv16[y0 - dy:y1 - dy, x0 - dx:x1 - dx, 0] < 128)
    return 1.0 - int(covered.sum()) / total


def call_rng(seed: int, call_id: str) -> np.random.Generator:
    """The random stream a call's rendering draws from (same on every machine)."""
    return np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(call_id.encode())])


def render_call(call: dict, seed: int, bgr: bool = False) -> Iterator[np.ndarray]:
    """Yield the call's frames (360x640x3 uint8), following the call's truth entry.

    Frames are RGB, or BGR (faster: no channel swap) with `bgr=True`. Yielded arrays may be
    shared buffers: consume each before asking for the next, never write into them.
    """
    frames = _render_bgr(call, seed)
    if bgr:
        yield from frames
    else:
        for f in frames:
            yield np.ascontiguousarray(f[:, :, ::-1])


@dataclass
class Scene:
    """Everything a call's frames are drawn from, built from its truth entry and the seed."""

    n_frames: int
    background: Background
    person: Sprite | None
    sway_x: np.ndarray | None
    sway_y: np.ndarray | None
    cups: list[Episode]
    distractors: list[Episode]


def build_scene(call: dict, seed: int) -> Scene:
    """The call's background, person and episodes (draws the call's random stream in a fixed order)."""
    rng = call_rng(seed, call["call_id"])
    n_frames = round(call["duration_s"] * FPS)
    bg = Background(call["background"], rng)
    tint = rng.uniform(0.92, 1.08, 3).astype(np.float32)
    skin = SKINS[int(rng.integers(len(SKINS)))]
    sleeve = _colour(rng) if rng.random() < 0.4 else tuple(int(v) for v in rng.integers(20, 230, 3))
    person, sway_x, sway_y = None, None, None
    if bg.has_person:
        mouth = bg.mouth
    else:
        scale = rng.uniform(0.9, 1.2)
        img, (mx, my) = sprites.person(skin, HAIRS[int(rng.integers(len(HAIRS)))] if rng.random() < 0.9 else None,
                                       sleeve, scale)
        person = Sprite(img, tint)
        px = int(WIDTH / 2 + rng.uniform(-80, 80) - img.width / 2)
        py = HEIGHT - img.height + int(rng.uniform(0, 30))
        mouth = (px + mx, py + my)
        t = np.arange(n_frames) / FPS
        sway_x = np.round(px + rng.uniform(3, 15) * np.sin(2 * np.pi * t / rng.uniform(5, 11) + rng.uniform(0, 6)))
        sway_y = np.round(py + rng.uniform(1, 5) * np.sin(2 * np.pi * t / rng.uniform(4, 9) + rng.uniform(0, 6)))
    side_cup = int(rng.choice([-1, 1]))
    episodes = []
    for cup in call["cups"]:
        k0, k1 = frame_range(cup["start_s"], cup["end_s"])
        episodes.append(build_episode("cup", cup["brand"], k0, k1, rng, side=side_cup, mouth=mouth, tint=tint,
                                      skin=skin, sleeve=sleeve))
    distractor_eps = []
    for dis in call["distractors"]:
        k0, k1 = frame_range(dis["start_s"], dis["end_s"])
        side = -side_cup if call["cups"] else int(rng.choice([-1, 1]))
        distractor_eps.append(build_episode(dis["kind"], None, k0, k1, rng, side=side, mouth=mouth, tint=tint,
                                            skin=skin, sleeve=sleeve, sip_ok=not call["cups"]))
    return Scene(n_frames, bg, person, sway_x, sway_y, episodes, distractor_eps)


def object_boxes(call: dict, seed: int, frame_indexes, kinds=("cup",)) -> list[list[tuple[float, float, float, float]]]:
    """Boxes (x0, y0, x1, y1, as fractions of the frame) of the objects of `kinds` drawn at each
    30 fps frame index ("cup" = brand cups; other kinds name distractors), sliding in or out included.

    Boxes bound the drawn sprite (tilted objects include their transparent corners), so they
    are a little loose. Used to supervise where the prefilter should fire.
    """
    scene = build_scene(call, seed)
    episodes = [e for e, kind in zip(scene.cups + scene.distractors,
                                     ["cup"] * len(scene.cups) + [d["kind"] for d in call["distractors"]])
                if kind in kinds]
    out = []
    for i in frame_indexes:
        boxes = []
        for e in episodes:
            if e.first <= i < e.last:
                j = i - e.first
                sp = e.sprites[int(e.track["v"][j])]
                x0, y0 = int(e.track["x"][j]), int(e.track["y"][j])
                box = (max(x0, 0) / WIDTH, max(y0, 0) / HEIGHT,
                       min(x0 + sp.w, WIDTH) / WIDTH, min(y0 + sp.h, HEIGHT) / HEIGHT)
                if box[2] > box[0] and box[3] > box[1]:
                    boxes.append(box)
        out.append(boxes)
    return out


def _render_bgr(call: dict, seed: int) -> Iterator[np.ndarray]:
    scene = build_scene(call, seed)
    n_frames, bg, person = scene.n_frames, scene.background, scene.person
    sway_x, sway_y = scene.sway_x, scene.sway_y
    episodes = scene.distractors + scene.cups  # cups drawn last: never hidden by a distractor

    # Footage behind a drawn person advances every other frame (a 15 fps virtual background):
    # the person is then blended once per two frames.
    hold = 1 if person is None or bg.static else 2
    cached_key, cached = None, None
    for i in range(n_frames):
        base = bg.frame(i // hold)
        if person is not None:
            key = (i // hold, int(sway_x[i]), int(sway_y[i])) if hold > 1 else (int(sway_x[i]), int(sway_y[i]))
            if key != cached_key:
                cached = base.copy()
                person.blend(cached, int(sway_x[i]), int(sway_y[i]))
                cached_key = key
            base = cached
        active = [e for e in episodes if e.first <= i < e.last]
        if not active:
            yield base
            continue
        frame = base.copy()
        for e in active:
            e.draw(frame, i)
        yield frame
