"""Factorized shapes: every image is one combination of known factors, so that a generator's output and its
hidden states can be checked for composition against memorization (issue 18).

Image i of seed s depends only on (s, i): a shape (the five `shapes` classes), a colour family (a hue band,
saturated, on a dark grey background), a position bin (the quadrant of the centre) and a size bin (radius
0.14-0.2 or 0.26-0.32 of the side), each drawn uniformly, then jittered inside its bin.

The image set `factors` built from them (`load_factor_set`):
- labels are factor-determined, one class per shape x colour combination (`combo_label`), or, for a stated
  share of the training images, *arbitrary*: one of `arbitrary_classes` extra classes drawn independently of
  every factor (the "idiom" case beside the "compositional" one);
- named shape x colour combinations (or a seeded share of them) are held out: no training or held-out image
  shows them; their images form the `novel` split, for testing composition. A share is drawn so that every
  shape and every colour keeps a trained combination.
Ids are `factors/s<seed>/<i>`: the same id is the same image whatever is held out or labelled.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from synthetic.base import DataError, require_positive_int

FACTOR_NAMES = ("shape", "colour", "position", "size")
SHAPES = ("circle", "square", "triangle", "cross", "ring")  # synthetic.images.SHAPE_CLASSES
COLOURS = ("red", "yellow", "green", "blue")
POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right")
SIZE_BINS = ("small", "large")
FACTOR_VALUES = (SHAPES, COLOURS, POSITIONS, SIZE_BINS)
HUES = {"red": 0.0, "yellow": 1 / 6, "green": 1 / 3, "blue": 2 / 3}
RADIUS = {"small": (0.14, 0.2), "large": (0.26, 0.32)}  # share of the image side
N_COMBOS = len(SHAPES) * len(COLOURS)
SIZES = (16, 32)


@dataclass(frozen=True)
class FactorInfo:
    """What the factor set knows of its images. Rows of `train_NxF` / `heldout_NxF` follow the ImageSet's
    rows (planted copies included); columns follow FACTOR_NAMES. `novel_*`: images of the held-out
    combinations (never trained), with their combination labels."""

    train_NxF: np.ndarray
    heldout_NxF: np.ndarray
    train_arbitrary: np.ndarray  # bool per training row: its label is arbitrary
    heldout_combos: tuple[tuple[int, int], ...]  # (shape, colour) indices
    novel_NxHxWx3: np.ndarray
    novel_NxF: np.ndarray
    novel_labels: np.ndarray
    novel_ids: tuple[str, ...]
    arbitrary_classes: int
    names: tuple[str, ...] = FACTOR_NAMES
    values: tuple[tuple[str, ...], ...] = FACTOR_VALUES


def combo_label(shape: int | np.ndarray, colour: int | np.ndarray):
    """The factor-determined class of a shape x colour combination (shape-major)."""
    return shape * len(COLOURS) + colour


def class_names(arbitrary_classes: int) -> tuple[str, ...]:
    combos = tuple(f"{s}/{c}" for s in SHAPES for c in COLOURS)
    return combos + tuple(f"arbitrary-{k}" for k in range(arbitrary_classes))


def parse_combo(text: str) -> tuple[int, int]:
    """'circle:red' -> (shape index, colour index); unknown values name the allowed ones."""
    shape, sep, colour = str(text).partition(":")
    if not sep:
        raise DataError(f"held-out combination {text!r} must be SHAPE:COLOUR, e.g. circle:red")
    if shape not in SHAPES:
        raise DataError(f"held-out combination {text!r}: unknown shape {shape!r}; allowed: {', '.join(SHAPES)}")
    if colour not in COLOURS:
        raise DataError(f"held-out combination {text!r}: unknown colour {colour!r}; allowed: {', '.join(COLOURS)}")
    return SHAPES.index(shape), COLOURS.index(colour)


def combo_text(combo: tuple[int, int]) -> str:
    return f"{SHAPES[combo[0]]}:{COLOURS[combo[1]]}"


def render(factors_F, rng: np.random.Generator, size: int) -> np.ndarray:
    """The image of one factor tuple (shape, colour, position, size bin), jittered inside the bins by rng."""
    from synthetic.images import shape_mask

    shape, colour, position, size_bin = (int(v) for v in factors_F)
    lo, hi = RADIUS[SIZE_BINS[size_bin]]
    r = rng.uniform(lo, hi) * size
    half = size / 2
    cy = rng.uniform(r, half) if position in (0, 1) else rng.uniform(half, size - r)
    cx = rng.uniform(r, half) if position in (0, 2) else rng.uniform(half, size - r)
    hue = (HUES[COLOURS[colour]] + rng.uniform(-0.04, 0.04)) % 1.0
    fg = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.75, 1.0), rng.uniform(0.8, 1.0)))
    bg = rng.uniform(0.05, 0.2) + rng.uniform(-0.02, 0.02, 3)
    mask = shape_mask(SHAPES[shape], cy, cx, r, size)
    return np.where(mask[..., None], fg, bg).astype(np.float32)


def factor_image(i: int, seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Image i of `seed` and its factors (int64, one per FACTOR_NAMES)."""
    rng = np.random.default_rng([seed, i, 18])
    f = np.array([rng.integers(len(v)) for v in FACTOR_VALUES], dtype=np.int64)
    return render(f, rng, size), f


def make_factor_images(n: int, size: int = 16, seed: int = 0, start: int = 0):
    """Images start..start+n-1 of `seed`: (N x H x W x 3, factors N x F, ids)."""
    if size not in SIZES:
        raise DataError(f"factors size must be one of {', '.join(map(str, SIZES))}, got {size}")
    require_positive_int("n", n)
    imgs, facts = zip(*(factor_image(i, seed, size) for i in range(start, start + n)))
    return np.stack(imgs), np.stack(facts), [f"factors/s{seed}/{i:05d}" for i in range(start, start + n)]


def draw_heldout_combos(share: float, seed: int) -> tuple[tuple[int, int], ...]:
    """round(share x 20) shape x colour combinations, seeded and balanced: each shape loses at most
    ceil(k / 5) of its combinations and each colour at most ceil(k / 4), so every value keeps as many trained
    partners as the share allows (a draw that left, say, squares trained in one colour only would make a probe
    or a sample of a held-out square read that colour as the shape), and none loses all."""
    if not 0.0 <= share < 1.0:
        raise DataError(f"held-out combination share must be in [0, 1), got {share!r}")
    k = int(round(share * N_COMBOS))
    if k == 0:
        return ()
    if k > N_COMBOS - max(len(SHAPES), len(COLOURS)):
        raise DataError(f"holding out {k} of {N_COMBOS} combinations leaves some shape or colour with none; "
                        f"the share must be <= {(N_COMBOS - len(SHAPES)) / N_COMBOS:g}")
    rng = np.random.default_rng([seed, 1801])
    combos = [(s, c) for s in range(len(SHAPES)) for c in range(len(COLOURS))]
    for _ in range(10_000):
        pick = sorted(combos[j] for j in rng.choice(N_COMBOS, k, replace=False))
        if _keeps_every_value(pick) and _balanced(pick, k):
            return tuple(pick)
    raise DataError(f"found no draw of {k} held-out combinations that keeps every shape and colour trained")


def _balanced(held, k: int) -> bool:
    per_shape = np.bincount([s for s, _ in held], minlength=len(SHAPES))
    per_colour = np.bincount([c for _, c in held], minlength=len(COLOURS))
    return per_shape.max() <= -(-k // len(SHAPES)) and per_colour.max() <= -(-k // len(COLOURS))


def _keeps_every_value(held) -> bool:
    held = set(held)
    return (all(any((s, c) not in held for c in range(len(COLOURS))) for s in range(len(SHAPES)))
            and all(any((s, c) not in held for s in range(len(SHAPES))) for c in range(len(COLOURS))))


def resolve_heldout(names: tuple[str, ...], share: float, seed: int) -> tuple[tuple[int, int], ...]:
    """The held-out combinations of a request: named ones, or a seeded share; never both."""
    if names and share:
        raise DataError("give held-out combinations by name or by share, not both")
    if not names:
        return draw_heldout_combos(share, seed)
    held = tuple(sorted({parse_combo(n) for n in names}))
    if not _keeps_every_value(held):
        raise DataError(f"held-out combinations {', '.join(map(combo_text, held))} leave some shape or colour "
                        "with no trained combination")
    return held


def load_factor_set(size: int, n_train: int, n_heldout: int, seed: int, heldout_combos=(), arbitrary: float = 0.0,
                    arbitrary_classes: int = 8, n_novel: int | None = None):
    """(images N x H x W x 3, labels, ids, factors N x F, arbitrary mask, novel (imgs, factors, labels, ids))
    of the n_train + n_heldout first images whose combination is trained, labelled; the split and planting
    are left to the caller (synthetic.images.load_image_set)."""
    if not 0.0 <= arbitrary < 1.0:
        raise DataError(f"arbitrary label share must be in [0, 1), got {arbitrary!r}")
    require_positive_int("arbitrary_classes", arbitrary_classes)
    n_novel = n_heldout if n_novel is None else n_novel
    held = set(heldout_combos)
    want = n_train + n_heldout
    keep_img, keep_f, keep_ids, nov_img, nov_f, nov_ids = [], [], [], [], [], []
    i = 0
    while len(keep_img) < want or (held and len(nov_img) < n_novel):
        img, f = factor_image(i, seed, size)
        if (int(f[0]), int(f[1])) in held:
            if len(nov_img) < n_novel:
                nov_img.append(img), nov_f.append(f), nov_ids.append(f"factors/s{seed}/{i:05d}")
        elif len(keep_img) < want:
            keep_img.append(img), keep_f.append(f), keep_ids.append(f"factors/s{seed}/{i:05d}")
        i += 1
    facts = np.stack(keep_f)
    labels = combo_label(facts[:, 0], facts[:, 1]).astype(np.int64)
    novel_f = np.stack(nov_f) if nov_f else np.zeros((0, len(FACTOR_NAMES)), np.int64)
    novel = (np.stack(nov_img) if nov_img else np.zeros((0, size, size, 3), np.float32), novel_f,
             combo_label(novel_f[:, 0], novel_f[:, 1]).astype(np.int64), tuple(nov_ids))
    return np.stack(keep_img), labels, keep_ids, facts, novel


def arbitrary_labels(n_train: int, share: float, arbitrary_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask, labels): exactly round(share x n_train) of the training rows (a seeded draw, independent of the
    images) get a class drawn uniformly from the arbitrary classes (label N_COMBOS + k)."""
    rng = np.random.default_rng([seed, 1802])
    mask = np.zeros(n_train, dtype=bool)
    mask[rng.choice(n_train, int(round(share * n_train)), replace=False)] = True
    return mask, N_COMBOS + rng.integers(0, arbitrary_classes, n_train).astype(np.int64)
