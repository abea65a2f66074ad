"""Near-duplicate detection in a training set, in pixel space: two images are near-duplicates when their RMS
pixel distance (pixels in [0, 1]) is below a threshold; groups are the connected components of that relation,
and deduplication keeps the first row of each group.

The planted duplicates of memlab's image sets are exact copies (distance 0); what a threshold must separate
them from is the distance between distinct images, so `nearest_distances` reports that distribution and the
docs (docs/iar_mitigations.md, "Deduplication") state where the threshold sits in it.
"""

from __future__ import annotations

import numpy as np


def rms_distances(images_NxD: np.ndarray) -> np.ndarray:
    """N x N RMS distances (pixels in [0, 1]; images flattened to D values), float64, one row at a time from the
    differences themselves (exact copies are at 0 exactly; the Gram-matrix shortcut leaves 1e-8)."""
    x_NxD = np.asarray(images_NxD, dtype=np.float64).reshape(len(images_NxD), -1)
    return np.stack([np.sqrt(((x_NxD - x_D) ** 2).mean(1)) for x_D in x_NxD]) if len(x_NxD) else np.zeros((0, 0))


def groups(images_NxD: np.ndarray, threshold: float) -> list[np.ndarray]:
    """Near-duplicate groups (connected components of distance < threshold) of two or more rows, each sorted,
    in order of their first row."""
    d_NxN = rms_distances(images_NxD)
    n = len(d_NxN)
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(d_NxN < threshold, 1))):
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([root(i) for i in range(n)])
    out = [np.nonzero(roots == r)[0] for r in np.unique(roots)]
    return sorted((g for g in out if len(g) > 1), key=lambda g: g[0])


def keep_rows(n: int, found: list[np.ndarray]) -> np.ndarray:
    """Rows kept by deduplication: every row but the second and later rows of each group."""
    drop = np.zeros(n, dtype=bool)
    for g in found:
        drop[g[1:]] = True
    return np.nonzero(~drop)[0]


def nearest_distances(images_NxD: np.ndarray, ids) -> np.ndarray:
    """Per image id (planted copies folded, by their `#copy` ids), the RMS distance to the nearest training image
    of another id: the distribution a threshold has to stay below."""
    base = np.array([str(i).split("#copy")[0] for i in ids])
    d_NxN = rms_distances(images_NxD)
    same_NxN = base[:, None] == base[None, :]
    d_NxN = np.where(same_NxN, np.inf, d_NxN)
    _, first = np.unique(base, return_index=True)
    return d_NxN[np.sort(first)].min(1)


def report(ids, found: list[np.ndarray], threshold: float, nearest: np.ndarray) -> dict:
    """What deduplication found against the planted ground truth (the `#copy` ids)."""
    base = [str(i).split("#copy")[0] for i in ids]
    planted = {b for b in base if base.count(b) > 1}
    exact = sum(1 for g in found if len({base[r] for r in g}) == 1 and base.count(base[g[0]]) == len(g))
    return {"threshold": threshold, "distance": "RMS pixel distance, pixels in [0, 1]",
            "groups_found": len(found), "rows_removed": int(sum(len(g) - 1 for g in found)),
            "planted_groups": len(planted), "planted_rows_extra": sum(base.count(b) - 1 for b in planted),
            "groups_equal_to_a_planted_group": exact,
            "nearest_other_distance": {"min": float(nearest.min()), "p01": float(np.quantile(nearest, 0.01)),
                                       "median": float(np.median(nearest))}}
