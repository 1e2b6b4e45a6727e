"""The ten fictional coffee brands and the look-alike distractor styles.

Every brand is invented. Pairs are made to be confusable on purpose: some share cup
and band colours but differ in logo shape, others share a logo shape in other colours.
"""

from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class BrandStyle:
    """How one brand's cup looks."""

    name: str
    text: str  # 2-4 letters printed on the cup
    cup: RGB  # cup body colour
    band: RGB  # sleeve / band colour (the logo sits on it)
    logo_shape: str
    logo: RGB  # logo colour
    lid: RGB
    text_colour: RGB


CREAM, WHITE, BLACK = (236, 228, 212), (245, 245, 242), (34, 33, 38)

BRANDS: tuple[BrandStyle, ...] = (
    # pair: same cup and band colours, different logo
    BrandStyle("Brewhaus", "BRW", CREAM, (112, 72, 42), "circle", (238, 224, 200), WHITE, (112, 72, 42)),
    BrandStyle("Kettlebloom", "KB", CREAM, (112, 72, 42), "star", (238, 224, 200), WHITE, (112, 72, 42)),
    # pair: same logo, different colours
    BrandStyle("Morrow Roast", "MRW", (186, 38, 44), WHITE, "diamond", (186, 38, 44), WHITE, WHITE),
    BrandStyle("Duskbean", "DB", (32, 96, 66), WHITE, "diamond", (32, 96, 66), WHITE, WHITE),
    # pair: same colours, different logo
    BrandStyle("Velvet Drip", "VD", BLACK, (204, 164, 64), "crown", BLACK, BLACK, (204, 164, 64)),
    BrandStyle("Orbit Coffee", "ORB", BLACK, (204, 164, 64), "ring", BLACK, BLACK, (204, 164, 64)),
    # pair: same logo, different blues
    BrandStyle("Tidewater", "TW", (38, 86, 168), WHITE, "wave", (38, 86, 168), WHITE, WHITE),
    BrandStyle("Pebble & Pour", "P&P", (118, 170, 206), (30, 52, 92), "wave", (118, 170, 206), WHITE, (30, 52, 92)),
    # pair: warm cups, same dark band, different logo
    BrandStyle("Hexa Grind", "HX", (228, 128, 38), (52, 40, 40), "hexagon", (228, 128, 38), (52, 40, 40), WHITE),
    BrandStyle("Sunmill", "SUN", (232, 196, 58), (52, 40, 40), "square", (232, 196, 58), (52, 40, 40), (52, 40, 40)),
)

BRAND_NAMES: list[str] = [b.name for b in BRANDS]

# Logo shapes no top-10 brand uses: for cups of "unknown" brands.
UNKNOWN_LOGOS: tuple[str, ...] = ("bean", "heart", "cross", "triangle", "bolt")

# Colours the distractors borrow, so that colour alone never identifies a brand.
BRAND_COLOURS: tuple[RGB, ...] = tuple(sorted({c for b in BRANDS for c in (b.cup, b.band)}))

DISTRACTOR_KINDS: tuple[str, ...] = ("plain_mug", "unknown_cup", "phone", "book", "bottle", "box")


def brand(name: str) -> BrandStyle:
    """The style of the brand called `name` (KeyError if there is none)."""
    for b in BRANDS:
        if b.name == name:
            return b
    raise KeyError(name)
