"""Pillow drawings of the things in a scene: cups, mugs, phones, books, bottles, boxes,
a person and a holding hand. Each returns an RGBA image; all are drawn large and
downsampled, once per episode, never per frame."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from synth.brands import RGB, BrandStyle

SS = 3  # supersampling factor for anti-aliased edges


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=max(6, int(size)))


def _darker(c: RGB, f: float) -> RGB:
    return tuple(int(max(0, min(255, v * f))) for v in c)  # type: ignore[return-value]


def draw_logo(d: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill: RGB) -> None:
    """One logo shape of radius `r` centred at (cx, cy)."""
    def poly(n: int, rot: float, rr: float = r) -> list[tuple[float, float]]:
        return [(cx + rr * math.cos(rot + 2 * math.pi * k / n), cy + rr * math.sin(rot + 2 * math.pi * k / n))
                for k in range(n)]

    w = max(2, int(r * 0.28))
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "ring":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=w)
        d.ellipse([cx - r * 0.3, cy - r * 0.3, cx + r * 0.3, cy + r * 0.3], fill=fill)
    elif shape == "star":
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else r * 0.45
            a = -math.pi / 2 + math.pi * k / 5
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        d.polygon(pts, fill=fill)
    elif shape == "diamond":
        d.polygon([(cx, cy - r), (cx + r * 0.7, cy), (cx, cy + r), (cx - r * 0.7, cy)], fill=fill)
    elif shape == "triangle":
        d.polygon(poly(3, -math.pi / 2), fill=fill)
    elif shape == "square":
        s = r * 0.8
        d.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
    elif shape == "hexagon":
        d.polygon(poly(6, 0), fill=fill)
    elif shape == "wave":
        for dy in (-0.4, 0.15):
            pts = [(cx - r + 2 * r * k / 24, cy + dy * r + 0.28 * r * math.sin(k / 24 * 2 * math.pi * 1.5))
                   for k in range(25)]
            d.line(pts, fill=fill, width=w, joint="curve")
    elif shape == "crown":
        d.polygon([(cx - r, cy + r * 0.6), (cx - r, cy - r * 0.5), (cx - r * 0.5, cy),
                   (cx, cy - r * 0.8), (cx + r * 0.5, cy), (cx + r, cy - r * 0.5), (cx + r, cy + r * 0.6)],
                  fill=fill)
    elif shape == "bean":
        d.ellipse([cx - r * 0.7, cy - r, cx + r * 0.7, cy + r], fill=fill)
        d.arc([cx - r * 0.9, cy - r * 0.8, cx + r * 0.3, cy + r * 0.8], -60, 60, fill=(0, 0, 0, 0), width=w)
    elif shape == "heart":
        d.ellipse([cx - r, cy - r * 0.7, cx, cy + r * 0.2], fill=fill)
        d.ellipse([cx, cy - r * 0.7, cx + r, cy + r * 0.2], fill=fill)
        d.polygon([(cx - r * 0.97, cy - r * 0.1), (cx + r * 0.97, cy - r * 0.1), (cx, cy + r)], fill=fill)
    elif shape == "cross":
        s = r * 0.32
        d.rectangle([cx - s, cy - r, cx + s, cy + r], fill=fill)
        d.rectangle([cx - r, cy - s, cx + r, cy + s], fill=fill)
    elif shape == "bolt":
        d.polygon([(cx + r * 0.2, cy - r), (cx - r * 0.6, cy + r * 0.15), (cx - r * 0.05, cy + r * 0.15),
                   (cx - r * 0.25, cy + r), (cx + r * 0.6, cy - r * 0.2), (cx + r * 0.05, cy - r * 0.2)], fill=fill)
    else:
        raise ValueError(f"unknown logo shape {shape!r}")


def _shade_cylinder(img: Image.Image, x0: float, x1: float, strength: float = 0.28) -> Image.Image:
    """Darken towards the left/right edges and add a soft highlight, like a lit cylinder."""
    a = np.asarray(img).astype(np.float32)
    xs = (np.arange(a.shape[1]) - x0) / max(1.0, x1 - x0)
    xs = np.clip(xs, 0, 1)
    prof = 1 - strength * (np.abs(xs - 0.42) * 2) ** 2 + 0.16 * np.exp(-((xs - 0.3) / 0.07) ** 2)
    a[:, :, :3] *= prof[None, :, None]
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGBA")


def _finish(img: Image.Image, height: int) -> Image.Image:
    w = max(1, round(img.width * height / img.height))
    return img.resize((w, height), Image.LANCZOS)


def paper_cup(height: int, cup: RGB, band: RGB | None, lid: RGB, logo_shape: str | None = None,
              logo: RGB = (0, 0, 0), text: str | None = None, text_colour: RGB = (0, 0, 0)) -> Image.Image:
    """A take-away paper cup with lid, sleeve band, logo and letters."""
    H = height * SS
    W = int(H * 0.74)
    img = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    top, bot = 0.10 * H, H - 1

    def xat(y: float) -> tuple[float, float]:
        f = (y - top) / (bot - top)
        return 0.05 * W + f * 0.12 * W, 0.95 * W - f * 0.12 * W

    d.polygon([(0.05 * W, top), (0.95 * W, top), (0.83 * W, bot), (0.17 * W, bot)], fill=cup)
    if band is not None:
        b0, b1 = 0.36 * H, 0.80 * H
        (l0, r0), (l1, r1) = xat(b0), xat(b1)
        d.polygon([(l0, b0), (r0, b0), (r1, b1), (l1, b1)], fill=band)
    d.rounded_rectangle([0.01 * W, 0.02 * H, 0.99 * W, 0.125 * H], radius=0.03 * H, fill=lid)
    d.rectangle([0.2 * W, 0.0, 0.6 * W, 0.04 * H], fill=_darker(lid, 0.85))
    if logo_shape:
        draw_logo(d, logo_shape, W / 2, 0.58 * H, 0.15 * H, logo)
    if text:
        f = _font(0.115 * H if len(text) <= 3 else 0.09 * H)
        d.text((W / 2, 0.245 * H), text, fill=text_colour, font=f, anchor="mm")
    img = _shade_cylinder(img, 0.05 * W, 0.95 * W)
    return _finish(img, height)


def mug(height: int, body: RGB, band: RGB | None = None, logo_shape: str | None = None, logo: RGB = (0, 0, 0),
        text: str | None = None, text_colour: RGB = (0, 0, 0), handle_right: bool = True) -> Image.Image:
    """A ceramic mug with a handle; a brand's if a logo is given, plain otherwise."""
    H = height * SS
    W = int(H * 1.0)
    img = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    bx0, bx1 = 0.06 * W, 0.78 * W
    hw = int(0.07 * W)
    d.ellipse([0.62 * W, 0.25 * H, 0.98 * W, 0.75 * H], outline=_darker(body, 0.9), width=hw)
    d.rounded_rectangle([bx0, 0.06 * H, bx1, H - 1], radius=0.1 * H, fill=body)
    if band is not None:
        d.rectangle([bx0, 0.36 * H, bx1, 0.80 * H], fill=band)
    d.ellipse([bx0, 0.0, bx1, 0.12 * H], fill=_darker(body, 0.92))
    d.ellipse([bx0 + 0.03 * W, 0.015 * H, bx1 - 0.03 * W, 0.105 * H], fill=(72, 44, 28))
    cx = (bx0 + bx1) / 2
    if logo_shape:
        draw_logo(d, logo_shape, cx, 0.58 * H, 0.15 * H, logo)
    if text:
        d.text((cx, 0.235 * H), text, fill=text_colour, font=_font(0.11 * H), anchor="mm")
    img = _shade_cylinder(img, bx0, bx1)
    if not handle_right:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return _finish(img, height)


def brand_cup(style: BrandStyle, height: int, form: str = "paper", handle_right: bool = True) -> Image.Image:
    """A top-10 brand's cup ("paper") or branded mug ("mug")."""
    if form == "mug":
        return mug(height, style.cup, style.band, style.logo_shape, style.logo, style.text, style.text_colour,
                   handle_right)
    return paper_cup(height, style.cup, style.band, style.lid, style.logo_shape, style.logo, style.text,
                     style.text_colour)


def phone(height: int, screen: tuple[RGB, RGB]) -> Image.Image:
    """A dark phone with a lit screen showing a couple of coloured blocks."""
    H = height * SS
    W = int(H * 0.5)
    img = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle([0, 0, W - 1, H - 1], radius=0.09 * W + 0.04 * H, fill=(22, 22, 26))
    m = 0.06 * W
    d.rounded_rectangle([m, 0.05 * H, W - m, 0.95 * H], radius=0.05 * W, fill=screen[0])
    d.rectangle([m, 0.05 * H, W - m, 0.14 * H], fill=_darker(screen[1], 0.8))
    for k in range(3):
        y = 0.22 * H + k * 0.2 * H
        d.rounded_rectangle([2 * m, y, W - 2 * m, y + 0.14 * H], radius=0.03 * W, fill=screen[1] if k != 1 else
                            _darker(screen[0], 0.7))
    d.ellipse([W / 2 - 0.05 * W, 0.01 * H, W / 2 + 0.05 * W, 0.035 * H], fill=(60, 60, 66))
    return _finish(img, height)


def book(height: int, cover: RGB, strip: RGB, title: str) -> Image.Image:
    """A hardback seen from the front: cover colour, a title strip, a darker spine."""
    H = height * SS
    W = int(H * 0.7)
    img = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, W - 1, H - 1], fill=cover)
    d.rectangle([0, 0, 0.09 * W, H - 1], fill=_darker(cover, 0.7))
    d.rectangle([0.09 * W, 0.3 * H, W - 1, 0.48 * H], fill=strip)
    d.text((0.55 * W, 0.39 * H), title, fill=cover, font=_font(0.1 * H), anchor="mm")
    d.rectangle([0.2 * W, 0.75 * H, 0.85 * W, 0.79 * H], fill=strip)
    return _finish(img, height)


def bottle(height: int, glass: RGB, label: RGB, mark: RGB) -> Image.Image:
    """A bottle with a cap and a coloured label with a round mark."""
    H = height * SS
    W = int(H * 0.36)
    img = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rectangle([0.36 * W, 0.0, 0.64 * W, 0.08 * H], fill=(40, 40, 44))
    d.rectangle([0.38 * W, 0.08 * H, 0.62 * W, 0.2 * H], fill=glass)
    d.polygon([(0.38 * W, 0.2 * H), (0.62 * W, 0.2 * H), (W - 1, 0.34 * H), (0, 0.34 * H)], fill=glass)
    d.rounded_rectangle([0, 0.3 * H, W - 1, H - 1], radius=0.12 * W, fill=glass)
    d.rectangle([0, 0.48 * H, W - 1, 0.8 * H], fill=label)
    d.ellipse([0.25 * W, 0.56 * H, 0.75 * W, 0.56 * H + 0.5 * W], fill=mark)
    img = _shade_cylinder(img, 0, W, 0.35)
    return _finish(img, height)


def box(height: int, face: RGB, stripe: RGB) -> Image.Image:
    """A small carton in three-quarter view with a stripe across the front."""
    H = height * SS
    W = int(H * 0.9)
    img = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    dx, dy = 0.22 * W, 0.18 * H
    d.polygon([(0, dy), (dx, 0), (W - 1, 0), (W - 1 - dx, dy)], fill=_darker(face, 1.2))
    d.polygon([(W - 1 - dx, dy), (W - 1, 0), (W - 1, H - 1 - dy), (W - 1 - dx, H - 1)], fill=_darker(face, 0.7))
    d.rectangle([0, dy, W - 1 - dx, H - 1], fill=face)
    d.rectangle([0, 0.5 * H, W - 1 - dx, 0.66 * H], fill=stripe)
    return _finish(img, height)


def hand(width: int, skin: RGB, sleeve: RGB, length: int) -> Image.Image:
    """A fist seen from the side (fingers towards the viewer) with the forearm going down.

    The hand occupies the top `width`*0.9 pixels; (width/2, 0.45*width) is the grip centre.
    """
    hw, hh = width * SS, int(width * 0.9) * SS
    aw = int(hw * 0.78)
    L = length * SS
    img = Image.new("RGBA", (hw, L), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    sk2 = _darker(skin, 0.82)
    d.rectangle([hw / 2 - aw / 2, hh * 0.5, hw / 2 + aw / 2, L - 1], fill=skin)
    d.rectangle([hw / 2 - aw / 2 - 2, hh * 0.5 + 0.45 * width * SS * 2.2, hw / 2 + aw / 2 + 2, L - 1], fill=sleeve)
    d.rounded_rectangle([0, 0, hw - 1, hh], radius=hw * 0.3, fill=skin)
    for k in range(1, 4):
        y = hh * k / 4.4
        d.line([(hw * 0.08, y), (hw * 0.7, y)], fill=sk2, width=max(1, SS))
    img = _shade_cylinder(img, 0, hw, 0.3)
    return img.resize((width, length), Image.LANCZOS)


def person(skin: RGB, hair: RGB | None, shirt: RGB, scale: float = 1.0) -> tuple[Image.Image, tuple[int, int]]:
    """Head and shoulders; returns the image and the mouth position in it."""
    Wd, Hd = int(340 * scale), int(300 * scale)
    W, H = Wd * SS, Hd * SS
    img = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    hcx, hw, hh = W / 2, 0.29 * W, 0.47 * H
    htop = 0.04 * H
    d.ellipse([0, 0.6 * H, W - 1, 1.6 * H], fill=shirt)  # shoulders
    d.polygon([(W / 2 - 0.07 * W, 0.62 * H), (W / 2 + 0.07 * W, 0.62 * H), (W / 2, 0.75 * H)],
              fill=_darker(skin, 0.9))
    d.rectangle([hcx - 0.07 * W, htop + hh * 0.8, hcx + 0.07 * W, 0.66 * H], fill=_darker(skin, 0.88))
    d.ellipse([hcx - hw / 2 - 0.025 * W, htop + 0.4 * hh, hcx - hw / 2 + 0.03 * W, htop + 0.62 * hh], fill=skin)
    d.ellipse([hcx + hw / 2 - 0.03 * W, htop + 0.4 * hh, hcx + hw / 2 + 0.025 * W, htop + 0.62 * hh], fill=skin)
    d.ellipse([hcx - hw / 2, htop, hcx + hw / 2, htop + hh], fill=skin)
    if hair is not None:
        d.chord([hcx - hw / 2 - 0.01 * W, htop - 0.02 * H, hcx + hw / 2 + 0.01 * W, htop + 0.6 * hh], 180, 360,
                fill=hair)
        d.rectangle([hcx - hw / 2 - 0.01 * W, htop + 0.28 * hh, hcx - hw / 2 + 0.02 * W, htop + 0.5 * hh], fill=hair)
        d.rectangle([hcx + hw / 2 - 0.02 * W, htop + 0.28 * hh, hcx + hw / 2 + 0.01 * W, htop + 0.5 * hh], fill=hair)
    ey = htop + 0.48 * hh
    for sx in (-1, 1):
        ex = hcx + sx * hw * 0.2
        d.ellipse([ex - 0.018 * W, ey - 0.012 * H, ex + 0.018 * W, ey + 0.012 * H], fill=(40, 32, 30))
        d.line([(ex - 0.03 * W, ey - 0.035 * H), (ex + 0.03 * W, ey - 0.04 * H)], fill=_darker(skin, 0.5),
               width=2 * SS)
    my = htop + 0.78 * hh
    d.line([(hcx - 0.04 * W, my), (hcx + 0.04 * W, my)], fill=_darker(skin, 0.6), width=3 * SS)
    d.line([(hcx, ey + 0.02 * H), (hcx - 0.01 * W, htop + 0.68 * hh)], fill=_darker(skin, 0.8), width=2 * SS)
    img = img.resize((Wd, Hd), Image.LANCZOS)
    return img, (Wd // 2, int(my / SS))
