"""Colored templates: x = c (outer) a_y, a mixture of K rank-C Gaussians in C*H*W dimensions.

a_y is one of K grayscale templates (H x W, min-max scaled to [0, 1]); the colour c ~ N(mu_y, s_c^2 I_C).
Samples are flattened channel-major: x[ch * H*W + p] = c[ch] * a_y[p].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthetic.base import Dataset, DataError, require_positive, require_positive_int

SOURCES = ("procedural", "digits", "<file.npy|file.npz>")


@dataclass(frozen=True)
class TemplateTruth:
    templates_KxP: np.ndarray  # grayscale templates, flattened H*W
    colour_means_KxC: np.ndarray
    colour_variance: float  # s_c^2
    weights_K: np.ndarray
    height: int
    width: int

    @property
    def channels(self) -> int:
        return int(self.colour_means_KxC.shape[1])

    @property
    def dim(self) -> int:
        return self.channels * self.templates_KxP.shape[1]

    def means_KxD(self) -> np.ndarray:
        return np.einsum("kc,kp->kcp", self.colour_means_KxC, self.templates_KxP).reshape(len(self.weights_K), -1)

    def within_eigenvalues(self) -> np.ndarray:
        """Non-zero eigenvalues of each component's covariance: K x C, all s_c^2 |a_k|^2."""
        norms = np.sum(self.templates_KxP**2, axis=1)
        return np.repeat((self.colour_variance * norms)[:, None], self.channels, axis=1)


def _minmax(img: np.ndarray) -> np.ndarray:
    lo, hi = img.min(), img.max()
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of a 2-D array (numpy only)."""
    H, W = img.shape
    ys = np.linspace(0, H - 1, h)
    xs = np.linspace(0, W - 1, w)
    y0 = np.floor(ys).astype(int); x0 = np.floor(xs).astype(int)
    y1 = np.minimum(y0 + 1, H - 1); x1 = np.minimum(x0 + 1, W - 1)
    fy = (ys - y0)[:, None]; fx = (xs - x0)[None, :]
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bot = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return top * (1 - fy) + bot * fy


_OFFSETS = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (1, 1), (-1, 1), (1, -1)]


def procedural_templates(k: int, height: int = 15, width: int = 15) -> np.ndarray:
    """K deterministic grayscale shapes (K x H x W in [0, 1]): discs, rings, squares, crosses, triangles,
    diamonds, bars and checkers, with sizes and positions varying by index so any K is distinct."""
    yy, xx = np.mgrid[0:height, 0:width].astype(float)
    cy, cx = (height - 1) / 2, (width - 1) / 2
    u, v = (yy - cy) / max(cy, 1), (xx - cx) / max(cx, 1)  # coordinates in [-1, 1]
    shapes = []
    for i in range(k):
        kind, level = i % 8, i // 8
        s = 0.85 - 0.2 * ((level // 9) % 3)  # size
        oy, ox = _OFFSETS[level % 9]
        dy, dx = 0.2 * oy, 0.2 * ox
        a, b = u - dy, v - dx
        r = np.sqrt(a**2 + b**2)
        if kind == 0:
            img = r <= s
        elif kind == 1:
            img = (r <= s) & (r >= s * 0.55)
        elif kind == 2:
            img = (np.abs(a) <= s * 0.8) & (np.abs(b) <= s * 0.8)
        elif kind == 3:
            img = ((np.abs(a) <= s * 0.25) | (np.abs(b) <= s * 0.25)) & (np.maximum(np.abs(a), np.abs(b)) <= s)
        elif kind == 4:
            img = (a <= s * 0.8) & (a >= -s) & (np.abs(b) <= (a + s) * 0.55)
        elif kind == 5:
            img = np.abs(a) + np.abs(b) <= s
        elif kind == 6:
            img = (np.floor((b + 1) * 2.5 / s) % 2 == 0) & (np.abs(a) <= s)
        else:
            img = (np.floor((a + 1) * 2 / s) + np.floor((b + 1) * 2 / s)) % 2 == 0
        shapes.append(_minmax(img.astype(float) + 0.25 * np.exp(-r**2 / 0.5)))
    return np.stack(shapes)


def digit_templates(k: int, height: int = 15, width: int = 15) -> np.ndarray:
    """Class-mean images of scikit-learn's bundled 8x8 digits (no download), upscaled."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - depends on the environment
        raise DataError("template source 'digits' needs scikit-learn (pip install scikit-learn)") from None
    if k > 10:
        raise DataError(f"components must be <= 10 for template source 'digits', got {k}")
    digits = load_digits()
    means = [digits.images[digits.target == c].mean(axis=0) for c in range(k)]
    return np.stack([_minmax(_resize(m, height, width)) for m in means])


def file_templates(path: str | Path, k: int) -> np.ndarray:
    """The first K images of a user's .npy / .npz file of shape (n, H, W); .npz uses its first array."""
    p = Path(path)
    if p.suffix not in (".npy", ".npz"):
        raise DataError(f"template source must be one of {', '.join(SOURCES)}, got {str(path)!r}")
    if not p.is_file():
        raise DataError(f"template file does not exist: {p}")
    try:
        loaded = np.load(p, allow_pickle=False)
        arr = loaded[loaded.files[0]] if p.suffix == ".npz" else loaded
    except Exception as e:
        raise DataError(f"cannot read template file {p}: {e}") from None
    if arr.ndim != 3 or min(arr.shape) < 1 or not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"template file {p} must hold a numeric array of shape (n, H, W), got shape {arr.shape}")
    if arr.shape[0] < k:
        raise DataError(f"template file {p} holds {arr.shape[0]} images, fewer than components={k}")
    return np.stack([_minmax(a.astype(float)) for a in arr[:k]])


def load_templates(source: str, k: int, height: int = 15, width: int = 15) -> np.ndarray:
    """K x H x W grayscale templates in [0, 1] from 'procedural', 'digits', or a .npy/.npz path."""
    if source == "procedural":
        return procedural_templates(k, height, width)
    if source == "digits":
        return digit_templates(k, height, width)
    return file_templates(source, k)


def make_templates(components: int = 4, n_train: int = 100, n_test: int = 1000, colour_variance: float = 1.0,
                   source: str = "procedural", height: int = 15, width: int = 15, channels: int = 3,
                   colour_means=None, seed: int = 0, scale: float = 1.0) -> Dataset:
    """Draw N training and T test colored-template samples. `scale` multiplies the templates (|a|^2 grows
    as scale^2), which is how tests reach the large-|a|^2 regime."""
    k = require_positive_int("components", components)
    n = require_positive_int("n_train", n_train)
    t = require_positive_int("n_test", n_test)
    c = require_positive_int("channels", channels)
    require_positive_int("height", height)
    require_positive_int("width", width)
    s2 = require_positive("variance", colour_variance)
    if k > n:
        raise DataError(f"components must be <= n_train ({n}), got {k}")
    temps = load_templates(source, k, height, width) * float(scale)
    kk, h, w = temps.shape
    mu = np.zeros((k, c)) if colour_means is None else np.asarray(colour_means, float)
    if mu.shape != (k, c):
        raise DataError(f"colour_means must have shape ({k}, {c}), got {mu.shape}")
    truth = TemplateTruth(temps.reshape(k, -1), mu, s2, np.full(k, 1.0 / k), h, w)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7E]))
    train, ytr = sample_templates(truth, n, rng)
    test, yte = sample_templates(truth, t, rng)
    return Dataset("templates", train, test, ytr, yte, truth, (c, h, w))


def sample_templates(truth: TemplateTruth, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.choice(len(truth.weights_K), size=n, p=truth.weights_K)
    colours = truth.colour_means_KxC[labels] + np.sqrt(truth.colour_variance) * rng.standard_normal((n, truth.channels))
    x = np.einsum("nc,np->ncp", colours, truth.templates_KxP[labels])
    return x.reshape(n, -1), labels
