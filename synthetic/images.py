"""Small labelled RGB image sets for the IAR side (numpy only; optional packages imported inside loaders).

Every set has a training split and a held-out split, and every image a stable id (the same image gets the
same id whatever the split sizes). Images are float32 N x H x W x 3 with pixels in [0, 1].

Specs: `shapes` (procedural coloured shapes), `digits` (scikit-learn's bundled 8x8 digits, upscaled),
`faces` (scikit-image's bundled lfw_subset), `folder:PATH` (PNG/JPEG files; sub-folders are classes),
`npz:PATH` (arrays `images`, optional `labels`, optional `ids`).
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthetic.base import DataError, require_positive_int
from synthetic.factors import (FactorInfo, arbitrary_labels, class_names, load_factor_set,
                               resolve_heldout)
from synthetic.templates import _resize

SOURCES = ("shapes", "factors", "digits", "faces", "folder:PATH", "npz:PATH")
SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "ring")
SHAPE_SIZES = (16, 32)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class ImageSet:
    """train/heldout images N x H x W x 3 in [0, 1]; labels int64; ids are stable strings. Planted duplicates
    are extra training rows whose id is `<id>#copy<r>`."""

    name: str
    train_NxHxWx3: np.ndarray
    train_labels: np.ndarray
    train_ids: tuple[str, ...]
    heldout_NxHxWx3: np.ndarray
    heldout_labels: np.ndarray
    heldout_ids: tuple[str, ...]
    class_names: tuple[str, ...]
    factors: FactorInfo | None = None  # the `factors` set's per-image factors (synthetic.factors)

    @property
    def size(self) -> int:
        return int(self.train_NxHxWx3.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _shape_image(i: int, seed: int, size: int) -> tuple[np.ndarray, int]:
    """Image i depends only on (seed, i): one shape of a random class, colour, position and scale."""
    rng = np.random.default_rng([seed, i])
    label = int(rng.integers(len(SHAPE_CLASSES)))
    bg, fg = rng.uniform(0.0, 0.45, 3), rng.uniform(0.55, 1.0, 3)
    if rng.random() < 0.5:  # light background, dark shape half of the time
        bg, fg = 1.0 - bg, 1.0 - fg
    r = rng.uniform(0.22, 0.38) * size
    cy, cx = rng.uniform(r, size - r, 2)
    img = np.where(shape_mask(SHAPE_CLASSES[label], cy, cx, r, size)[..., None], fg, bg).astype(np.float32)
    return img, label


def shape_mask(name: str, cy: float, cx: float, r: float, size: int) -> np.ndarray:
    """The size x size boolean mask of shape `name` (one of SHAPE_CLASSES) of radius r centred at (cy, cx)."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    dy, dx = yy - cy, xx - cx
    if name == "circle":
        mask = dy**2 + dx**2 <= r**2
    elif name == "square":
        mask = (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
    elif name == "triangle":
        mask = (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    elif name == "cross":
        w = r * 0.35
        mask = ((np.abs(dy) <= w) & (np.abs(dx) <= r)) | ((np.abs(dx) <= w) & (np.abs(dy) <= r))
    else:  # ring
        d2 = dy**2 + dx**2
        mask = (d2 <= r**2) & (d2 >= (0.55 * r) ** 2)
    return mask


def make_shapes(n: int, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if size not in SHAPE_SIZES:
        raise DataError(f"shapes size must be one of {', '.join(map(str, SHAPE_SIZES))}, got {size}")
    imgs, labels = zip(*(_shape_image(i, seed, size) for i in range(n)))
    return np.stack(imgs), np.asarray(labels, np.int64), [f"shapes/s{seed}/{i:05d}" for i in range(n)]


def _gray_to_rgb(gray_NxHxW: np.ndarray, size: int) -> np.ndarray:
    out = np.stack([_resize(g, size, size) for g in gray_NxHxW]).astype(np.float32)
    return np.repeat(np.clip(out, 0.0, 1.0)[..., None], 3, axis=-1)


def load_digits_images(size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("image set 'digits' needs scikit-learn (pip install scikit-learn)") from None
    d = load_digits()
    imgs = _gray_to_rgb(d.images / 16.0, size)
    return imgs, d.target.astype(np.int64), [f"digits/{i:04d}" for i in range(len(imgs))]


def load_faces_images(size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """lfw_subset: 100 faces (label 1) then 100 non-faces (label 0), 25 x 25 grayscale."""
    try:
        from skimage.data import lfw_subset
    except ImportError:
        raise DataError("image set 'faces' needs scikit-image (pip install scikit-image)") from None
    raw = np.asarray(lfw_subset(), dtype=np.float64)
    raw = (raw - raw.min()) / max(raw.max() - raw.min(), 1e-12)
    labels = np.r_[np.ones(100), np.zeros(len(raw) - 100)].astype(np.int64)
    return _gray_to_rgb(raw, size), labels, [f"faces/{i:03d}" for i in range(len(raw))]


def _to_rgb01(arr: np.ndarray, where: str) -> np.ndarray:
    """uint8 or float arrays, N x H x W, N x H x W x {1,3,4} or N x 3 x H x W -> float32 N x H x W x 3."""
    a = np.asarray(arr)
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4:
        raise DataError(f"{where}: images must be N x H x W [x C], got shape {tuple(np.shape(arr))}")
    if a.shape[1] in (1, 3) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 1, -1)
    if a.shape[-1] == 4:
        a = a[..., :3]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    if a.shape[-1] != 3:
        raise DataError(f"{where}: images need 1, 3 or 4 channels, got shape {tuple(np.shape(arr))}")
    a = a.astype(np.float32) / 255.0 if np.issubdtype(a.dtype, np.integer) else a.astype(np.float32)
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
        raise DataError(f"{where}: float pixels must be finite and in [0, 1]")
    return a


def _resize_rgb(imgs: np.ndarray, size: int) -> np.ndarray:
    if imgs.shape[1] == size and imgs.shape[2] == size:
        return imgs
    return np.stack([np.stack([_resize(im[..., c], size, size) for c in range(3)], -1) for im in imgs]).astype(np.float32)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def load_folder_images(path: str, size: int) -> tuple[np.ndarray, np.ndarray, list[str], tuple[str, ...]]:
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"image folder does not exist: {path}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"image folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    try:
        from PIL import Image, UnidentifiedImageError
        from PIL.Image import DecompressionBombError
    except ImportError:
        raise DataError("image set 'folder:' needs Pillow (pip install pillow)") from None
    arrays, shapes = [], set()
    for f in files:
        try:
            with Image.open(f) as im:
                a = np.asarray(im.convert("RGB"))
        except UnidentifiedImageError:
            raise DataError(f"cannot read image {f}: not an image file Pillow can read") from None
        except (OSError, SyntaxError, ValueError, DecompressionBombError) as e:  # Pillow's damaged-file errors
            raise DataError(f"cannot read image {f}: {_first_line(e)}") from None
        shapes.add(a.shape[:2])
        arrays.append(a)
    if len(shapes) > 1:
        raise DataError(f"images in {path} have mixed sizes {sorted(shapes)}; all must share one height x width")
    rel = [f.relative_to(root) for f in files]
    classes = tuple(sorted({r.parts[0] for r in rel if len(r.parts) > 1})) or ("all",)
    labels = np.asarray([classes.index(r.parts[0]) if len(r.parts) > 1 else 0 for r in rel], np.int64)
    imgs = _resize_rgb(_to_rgb01(np.stack(arrays), path), size)
    return imgs, labels, [str(r) for r in rel], classes


def load_npz_images(path: str, size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"npz file does not exist: {path}")
    if not zipfile.is_zipfile(p):  # np.load would read it as .npy or (refused) pickle data
        raise DataError(f"cannot read {path}: not an .npz (zip) archive, or a truncated one")
    try:
        with np.load(p, allow_pickle=False) as z:
            if "images" not in z:
                raise DataError(f"{path} needs an array named 'images'; found {', '.join(z.files) or 'none'}")
            imgs = _to_rgb01(z["images"], path)
            labels = np.asarray(z["labels"], np.int64) if "labels" in z else np.zeros(len(imgs), np.int64)
            ids = [str(s) for s in z["ids"]] if "ids" in z else [f"{p.stem}/{i:05d}" for i in range(len(imgs))]
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"cannot read {path} as a pickle-free .npz: {_first_line(e)}") from None
    if len(imgs) == 0:
        raise DataError(f"{path} holds no images")
    if len(labels) != len(imgs) or len(ids) != len(imgs):
        raise DataError(f"{path}: 'labels' and 'ids' must have one entry per image ({len(imgs)})")
    if labels.min() < 0:
        raise DataError(f"{path}: labels must be >= 0")
    return _resize_rgb(imgs, size), labels, ids


def _split(n_avail: int, n_train: int, n_heldout: int, seed: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    if n_train + n_heldout > n_avail:
        raise DataError(f"{name} has {n_avail} images; n_train + n_heldout must be <= {n_avail}, "
                        f"got {n_train} + {n_heldout}")
    perm = np.random.default_rng(seed).permutation(n_avail)
    return np.sort(perm[:n_train]), np.sort(perm[n_train:n_train + n_heldout])


def _planted_copies(n_train: int, duplicates: int, n_duplicated: int, graded: tuple[int, ...], graded_size: int,
                    graded_start: int) -> np.ndarray:
    """Copies of each of the n_train training images in total (1: seen once)."""
    copies = np.ones(n_train, dtype=np.int64)
    if graded:
        if duplicates > 1 and n_duplicated > 0:
            raise DataError("graded duplication replaces duplicates / n_duplicated: give one or the other")
        require_positive_int("graded_size", graded_size)
        if any(not isinstance(c, (int, np.integer)) or c < 1 for c in graded):
            raise DataError(f"graded copy counts must be integers >= 1, got {list(graded)}")
        end = graded_start + len(graded) * graded_size
        if not isinstance(graded_start, (int, np.integer)) or graded_start < 0 or end > n_train:
            raise DataError(f"graded groups need graded_start >= 0 and graded_start + {len(graded)} x graded_size "
                            f"<= n_train={n_train}, got {graded_start} + {len(graded)} x {graded_size} = {end}")
        copies[graded_start:end] = np.repeat(np.asarray(graded, dtype=np.int64), graded_size)
    elif duplicates > 1:
        copies[:n_duplicated] = duplicates
    return copies


def load_image_set(spec: str, *, size: int = 16, n_train: int = 256, n_heldout: int = 64, seed: int = 0,
                   duplicates: int = 1, n_duplicated: int = 0, graded: tuple[int, ...] = (),
                   graded_size: int = 8, graded_start: int = 0, heldout_combos: tuple[str, ...] = (),
                   heldout_share: float = 0.0, arbitrary: float = 0.0, arbitrary_classes: int = 8) -> ImageSet:
    """Build the image set `spec` names. `duplicates` r >= 1 repeats the first `n_duplicated` training
    images r times in total (planted memorization); r = 1 plants nothing. `graded` (copy counts, e.g.
    1, 2, 4, 8, 16) plants graded duplication instead: group g, the `graded_size` training images from
    `graded_start + g * graded_size` on, appears graded[g] times in total. `factors` only: `heldout_combos`
    ('circle:red', ...) or `heldout_share` of the shape x colour combinations are never trained, and
    `arbitrary` of the training images get one of `arbitrary_classes` labels that no factor determines
    (synthetic.factors)."""
    require_positive_int("size", size)
    require_positive_int("n_train", n_train)
    require_positive_int("n_heldout", n_heldout)
    require_positive_int("duplicates", duplicates)
    if not isinstance(n_duplicated, int) or not 0 <= n_duplicated <= n_train:
        raise DataError(f"n_duplicated must be in [0, n_train={n_train}], got {n_duplicated!r}")
    kind, _, arg = spec.partition(":")
    if kind in ("folder", "npz") and not arg:
        raise DataError(f"image set {spec!r} needs a path, e.g. {kind}:/data/images")
    classes = None
    if spec != "factors" and (heldout_combos or heldout_share or arbitrary):
        raise DataError(f"held-out combinations and arbitrary labels need the image set 'factors', got {spec!r}")
    if spec == "factors":
        return _factor_set(size, n_train, n_heldout, seed, resolve_heldout(tuple(heldout_combos), heldout_share, seed),
                           arbitrary, arbitrary_classes, _planted_copies(n_train, duplicates, n_duplicated,
                                                                         tuple(graded), graded_size, graded_start))
    if spec == "shapes":
        imgs, labels, ids = make_shapes(n_train + n_heldout, size, seed)
        classes = SHAPE_CLASSES
    elif spec == "digits":
        imgs, labels, ids = load_digits_images(size)
        classes = tuple(str(d) for d in range(10))
    elif spec == "faces":
        imgs, labels, ids = load_faces_images(size)
        classes = ("non-face", "face")
    elif kind == "folder":
        imgs, labels, ids, classes = load_folder_images(arg, size)
    elif kind == "npz":
        imgs, labels, ids = load_npz_images(arg, size)
        classes = tuple(str(c) for c in range(int(labels.max()) + 1))
    else:
        raise DataError(f"unknown image set {spec!r}; allowed: {', '.join(SOURCES)}")
    tr, ho = _split(len(imgs), n_train, n_heldout, seed, spec)
    train, train_lab, train_ids = imgs[tr], labels[tr], [ids[i] for i in tr]
    copies = _planted_copies(n_train, duplicates, n_duplicated, tuple(graded), graded_size, graded_start)
    extra, train_ids = _plant(copies, train_ids)
    train, train_lab = np.concatenate([train, train[extra]]), np.concatenate([train_lab, train_lab[extra]])
    return ImageSet(name=spec, train_NxHxWx3=np.ascontiguousarray(train), train_labels=train_lab,
                    train_ids=tuple(train_ids), heldout_NxHxWx3=np.ascontiguousarray(imgs[ho]),
                    heldout_labels=labels[ho], heldout_ids=tuple(ids[i] for i in ho), class_names=classes)


def _plant(copies: np.ndarray, ids: list[str]) -> tuple[np.ndarray, list[str]]:
    """(rows to append: each image's extra copies, the ids with `<id>#copy<r>` appended)."""
    extra = np.repeat(np.arange(len(copies)), copies - 1)
    copy_no = np.concatenate([np.arange(1, c) for c in copies if c > 1] or [np.zeros(0, np.int64)])
    return extra, ids + [f"{ids[i]}#copy{r}" for i, r in zip(extra, copy_no)]


def _factor_set(size, n_train, n_heldout, seed, held, arbitrary, arbitrary_classes, copies) -> ImageSet:
    imgs, labels, ids, facts, novel = load_factor_set(size, n_train, n_heldout, seed, held, arbitrary,
                                                      arbitrary_classes)
    tr, ho = _split(len(imgs), n_train, n_heldout, seed, "factors")
    train, train_lab, train_f = imgs[tr], labels[tr].copy(), facts[tr]
    is_arb, arb_lab = arbitrary_labels(n_train, arbitrary, arbitrary_classes, seed)
    train_lab[is_arb] = arb_lab[is_arb]
    extra, train_ids = _plant(copies, [ids[i] for i in tr])
    info = FactorInfo(train_NxF=np.concatenate([train_f, train_f[extra]]), heldout_NxF=facts[ho],
                      train_arbitrary=np.concatenate([is_arb, is_arb[extra]]), heldout_combos=held,
                      novel_NxHxWx3=novel[0], novel_NxF=novel[1], novel_labels=novel[2], novel_ids=novel[3],
                      arbitrary_classes=arbitrary_classes if arbitrary else 0)
    return ImageSet(name="factors", train_NxHxWx3=np.ascontiguousarray(np.concatenate([train, train[extra]])),
                    train_labels=np.concatenate([train_lab, train_lab[extra]]), train_ids=tuple(train_ids),
                    heldout_NxHxWx3=np.ascontiguousarray(imgs[ho]), heldout_labels=labels[ho],
                    heldout_ids=tuple(ids[i] for i in ho),
                    class_names=class_names(arbitrary_classes if arbitrary else 0), factors=info)
