"""`contrast`: how far out a unit's mean |activation| on the targets lies in its distribution over held-out
images, a z-score per scale (as NeMo does for diffusion models): (mean_T - mean_H) / std_H, where mean_T
averages the targets and mean_H, std_H are over the held-out images' per-image means. A unit silent on
every held-out image but firing on the targets gets a very large z. Label-free."""

from __future__ import annotations

import numpy as np
import pandas as pd

from memlab.iar.config import LocalizerConfig
from memlab.iar.interface import IARModel
from memlab.iar.localizers.common import Inputs, mean_abs_activation, unit_table

TINY = 1e-12  # std floor: a unit constant on the held-out images


def contrast(model: IARModel, inp: Inputs, cfg: LocalizerConfig) -> pd.DataFrame:
    return unit_table(model, contrast_by_scale(model, inp, cfg))


def contrast_by_scale(model: IARModel, inp: Inputs, cfg: LocalizerConfig) -> dict[str, np.ndarray]:
    """S x U per unit layer: the z-score of each scale."""
    mu_T = mean_abs_activation(model, *inp.target(), cfg.batch_size)
    mu_H = mean_abs_activation(model, *inp.heldout(2, "contrast"), cfg.batch_size)
    z = {name: (mu_T[name].mean(0) - h_HxSxU.mean(0)) / (h_HxSxU.std(0, ddof=1) + TINY)
         for name, h_HxSxU in mu_H.items()}
    return {name: np.nan_to_num(s) for name, s in z.items()}
