"""Rendered scenes for the vision chapters: coloured shapes with captions and questions.

A scene is 1–4 non-overlapping shapes (colour × shape × size) at random positions on a plain
background, drawn with PIL at twice the size and downsampled for smooth edges. From the object
list (the ground truth) come a caption and questions about colour, shape, size, count and
relative position (left of / above), in the spirit of CLEVR (Johnson et al., 2017,
arXiv:1612.06890) in two dimensions.

Compositional generalisation: the colour–shape pairs in HELD_OUT_COMBOS never appear in a
train, validation or test scene (nor in their text); every held-out colour and shape does appear
in other pairs. Only the "compositional" split contains them, to test whether a model that saw
"red" and "triangle" separately recognises a red triangle (CLEVR-CoGenT's idea).
"""

from __future__ import annotations

import io
import random
from functools import lru_cache

from PIL import Image, ImageDraw

from .world import check_n, check_split, make_rng, number_word, take_split

SCENE_COLORS = {"red": (220, 45, 45), "green": (40, 165, 70), "blue": (45, 85, 220),
                "yellow": (235, 205, 30), "purple": (140, 60, 180), "orange": (245, 135, 25)}
SCENE_SHAPES = ("circle", "square", "triangle", "diamond")
SCENE_SIZES = {"small": 0.09, "large": 0.16}  # radius as a fraction of the image side
# One pair per shape, four different colours: every colour and shape is still seen in training.
HELD_OUT_COMBOS = {("red", "triangle"), ("green", "circle"), ("blue", "diamond"),
                   ("yellow", "square")}
SCENE_SPLITS = ("train", "validation", "test", "compositional")
SCENE_SIZES_PER_SPLIT = {"train": 5000, "validation": 300, "test": 300, "compositional": 300}
_ALLOWED = [(c, s) for c in SCENE_COLORS for s in SCENE_SHAPES if (c, s) not in HELD_OUT_COMBOS]
_ALL = [(c, s) for c in SCENE_COLORS for s in SCENE_SHAPES]


def _place_objects(rng: random.Random, held_out: bool) -> list[dict]:
    """1–4 non-overlapping objects in unit coordinates; `held_out` forces ≥1 held-out pair."""
    n = rng.randint(1, 4)
    objs: list[dict] = []
    while len(objs) < n:
        pool = list(HELD_OUT_COMBOS) if held_out and not objs else (_ALL if held_out else _ALLOWED)
        color, shape = rng.choice(sorted(pool))
        size = rng.choice(("small", "large"))
        r = SCENE_SIZES[size]
        for _ in range(30):  # rejection sampling for a free spot
            x, y = rng.uniform(r + 0.02, 0.98 - r), rng.uniform(r + 0.02, 0.98 - r)
            if all((x - o["x"]) ** 2 + (y - o["y"]) ** 2 > (r + SCENE_SIZES[o["size"]] + 0.04) ** 2
                   for o in objs):
                objs.append({"color": color, "shape": shape, "size": size,
                             "x": round(x, 3), "y": round(y, 3)})
                break
        else:
            n -= 1  # the canvas is full: a scene with fewer objects
    rng.shuffle(objs)
    return objs


def _key(objs: list[dict]) -> str:
    return ";".join(f"{o['color']} {o['shape']} {o['size']} {o['x']} {o['y']}" for o in objs)


def render_scene(objs: list[dict], image_size: int = 64, background=(238, 236, 230)) -> Image.Image:
    """Draw unit-coordinate objects on an RGB image_size² canvas (2× supersampled)."""
    s = image_size * 2
    img = Image.new("RGB", (s, s), background)
    draw = ImageDraw.Draw(img)
    for o in objs:
        x, y, r = o["x"] * s, o["y"] * s, SCENE_SIZES[o["size"]] * s
        fill = SCENE_COLORS[o["color"]]
        if o["shape"] == "circle":
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        elif o["shape"] == "square":
            q = r * 0.85  # a square of the same area feel as the circle
            draw.rectangle((x - q, y - q, x + q, y + q), fill=fill)
        elif o["shape"] == "triangle":
            draw.polygon([(x, y - r), (x - r, y + r * 0.8), (x + r, y + r * 0.8)], fill=fill)
        else:
            draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=fill)
    return img.resize((image_size, image_size), Image.Resampling.BOX)


def _name(o: dict) -> str:
    return f"{o['color']} {o['shape']}"


def caption(rng: random.Random, objs: list[dict]) -> str:
    """One sentence naming every object, left to right."""
    if len(objs) == 1:
        o = objs[0]
        row = "top" if o["y"] < 0.36 else "bottom" if o["y"] > 0.64 else "middle"
        col = "left" if o["x"] < 0.36 else "right" if o["x"] > 0.64 else "center"
        where = "center" if (row, col) == ("middle", "center") else f"{row} {col}"
        return f"A {o['size']} {_name(o)} in the {where}."
    parts = [f"a {o['size']} {_name(o)}" for o in sorted(objs, key=lambda o: o["x"])]
    listing = ", ".join(parts[:-1]) + " and " + parts[-1]
    if rng.random() < 0.5:
        return f"{number_word(len(objs)).capitalize()} shapes: {listing}, from left to right."
    return f"From left to right: {listing}."


def questions(rng: random.Random, objs: list[dict], k: int = 5) -> list[dict]:
    """Up to `k` question/answer pairs that the object list answers exactly."""
    qs = [("How many shapes are there?", str(len(objs)))]
    colors = [o["color"] for o in objs]
    shapes = [o["shape"] for o in objs]
    c = rng.choice(sorted(SCENE_COLORS))
    qs.append((f"How many {c} shapes are there?", str(colors.count(c))))
    present = {(o["color"], o["shape"]) for o in objs}
    held = bool(present & HELD_OUT_COMBOS)
    absent = [p for p in (_ALL if held else _ALLOWED) if p not in present]
    cs = rng.choice(sorted(present)) if rng.random() < 0.5 else rng.choice(absent)
    article = "an" if cs[0][0] in "aeiou" else "a"
    qs.append((f"Is there {article} {cs[0]} {cs[1]}?", "yes" if cs in present else "no"))
    for o in objs:
        if shapes.count(o["shape"]) == 1:
            qs.append((f"What color is the {o['shape']}?", o["color"]))
        if colors.count(o["color"]) == 1:
            qs.append((f"What shape is the {o['color']} object?", o["shape"]))
            qs.append((f"Is the {_name(o)} small or large?", o["size"]))
    unique = [o for o in objs if colors.count(o["color"]) == 1]
    for a in unique:
        for b in unique:
            if a is b:
                continue
            if abs(a["x"] - b["x"]) > 0.15:
                qs.append((f"Is the {_name(a)} to the left of the {_name(b)}?",
                           "yes" if a["x"] < b["x"] else "no"))
            if abs(a["y"] - b["y"]) > 0.15:
                qs.append((f"Is the {_name(a)} above the {_name(b)}?",
                           "yes" if a["y"] < b["y"] else "no"))
    if len(objs) >= 2 and len(unique) == len(objs):
        left = min(objs, key=lambda o: o["x"])
        qs.append(("What is the leftmost shape?", _name(left)))
    first, rest = qs[:1], qs[1:]
    rng.shuffle(rest)
    return [{"question": q, "answer": a} for q, a in (first + rest)[:k]]


def _make_scene(held_out: bool):
    def make(rng: random.Random):
        objs = _place_objects(rng, held_out)
        return objs, caption(rng, objs), questions(rng, objs)
    return make


@lru_cache(maxsize=16)
def _scenes(split: str, n: int, seed: int) -> tuple:
    rng = make_rng("scenes", seed)
    if split == "compositional":  # its own stream: every scene here holds a held-out pair
        make = _make_scene(True)
        return tuple(make(rng) for _ in range(n))
    return tuple(take_split(_make_scene(False), lambda s: _key(s[0]), split, n, rng))


def world_scenes(split: str = "train", n: int | None = None, seed: int = 0,
                 image_size: int = 64) -> list[dict]:
    """`n` scenes {"image", "caption", "questions", "objects"} (objects in pixel coordinates)."""
    check_split(split, SCENE_SPLITS)
    check_n(n)
    if not isinstance(image_size, int) or image_size < 16:
        raise ValueError(f"image_size must be an int >= 16, got {image_size!r}")
    out = []
    for objs, cap, qs in _scenes(split, SCENE_SIZES_PER_SPLIT[split] if n is None else n, seed):
        px = [{**o, "x": round(o["x"] * image_size), "y": round(o["y"] * image_size)}
              for o in objs]
        out.append({"image": render_scene(objs, image_size), "caption": cap,
                    "questions": [dict(q) for q in qs], "objects": px})
    return out


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
