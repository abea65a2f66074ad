"""The transfer probe per held-out combination (issue 18): which novel shape x colour combinations a factor probe
fit on the training images reads right.

One accuracy over all novel images mixes combinations whose shape the training set shows in several colours
with ones whose shape it shows in a single colour. In the second kind, shape and colour are confounded in
training (every trained square is blue, say), so a shape probe may lean on colour and call every red square
something else, although the model's representation of shape may be fine. Each row therefore carries how
many colours the combination's shape is trained in and how many shapes its colour is trained with."""

from __future__ import annotations

import numpy as np
import pandas as pd

from memlab.errors import UsageError
from memlab.iar.analyze.probes import (LABEL_PASSES, SITES, block_features, fit_probe, pass_labels, probe_rows,
                                       wilson_interval)
from memlab.iar.interface import IARModel

COLUMNS = ["site", "pool", "labels", "block", "factor", "combo", "shape", "colour", "shape_colours_trained",
           "colour_shapes_trained", "n", "accuracy", "lo", "hi"]


def transfer_by_combination(model: IARModel, image_set, *, labels: str = "constant", site: str = "units",
                            batch_size: int = 64, seed: int = 0, C: float = 1.0, constant_label: int = 0,
                            max_images: int | None = None, pool: str = "mean") -> pd.DataFrame:
    """One row per (block, factor, held-out combination): the accuracy (Wilson 95% interval) on that
    combination's novel images of the real probe fit on all probe rows of the training set (probes.probe_rows),
    features from `site` and `pool` (probes.block_features) under the label pass `labels` (probes module
    docstring). Empty when nothing is held out."""
    from memlab.iar.data import to_tensor
    from synthetic.factors import COLOURS, SHAPES

    info = image_set.factors
    if info is None:
        raise UsageError(f"the composition probes need the factors image set (--data factors), got "
                         f"{image_set.name!r}")
    if labels not in LABEL_PASSES or site not in SITES:
        raise UsageError(f"label pass must be one of {', '.join(LABEL_PASSES)} and site one of {', '.join(SITES)}, "
                         f"got {labels!r} and {site!r}")
    if not len(info.novel_NxF):
        return pd.DataFrame(columns=COLUMNS)
    rows = probe_rows(image_set.train_ids, max_images, seed)
    F_tr, F_nv = np.asarray(info.train_NxF)[rows], np.asarray(info.novel_NxF)
    tr = block_features(model, to_tensor(image_set.train_NxHxWx3[rows]),
                        pass_labels(np.asarray(image_set.train_labels)[rows], labels, constant_label), batch_size,
                        site=site, pool=pool)
    nv = block_features(model, to_tensor(info.novel_NxHxWx3), pass_labels(info.novel_labels, labels, constant_label),
                        batch_size, site=site, pool=pool)
    trained = {(int(s), int(c)) for s, c in F_tr[:, :2]}
    combos = sorted({(int(s), int(c)) for s, c in F_nv[:, :2]})
    out = []
    for block in tr:
        for f, factor in enumerate(info.names):
            if len(np.unique(F_tr[:, f])) < 2:
                continue
            pred = fit_probe(tr[block], F_tr[:, f], seed, C)[0].predict(nv[block])
            for s, c in combos:
                m = (F_nv[:, 0] == s) & (F_nv[:, 1] == c)
                k, n = int((pred[m] == F_nv[m, f]).sum()), int(m.sum())
                lo, hi = wilson_interval(k, n)
                out.append({"site": site, "pool": pool, "labels": labels, "block": block, "factor": factor,
                            "combo": f"{SHAPES[s]}:{COLOURS[c]}", "shape": SHAPES[s], "colour": COLOURS[c],
                            "shape_colours_trained": sum((s, c2) in trained for c2 in range(len(COLOURS))),
                            "colour_shapes_trained": sum((s2, c) in trained for s2 in range(len(SHAPES))),
                            "n": n, "accuracy": k / n, "lo": lo, "hi": hi})
    return pd.DataFrame(out, columns=COLUMNS)
