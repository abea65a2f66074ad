"""`activation`: how strongly a unit fires on the targets, mean |activation| over the target images and the
positions of each scale. Label-free and naive: units that fire everywhere rank first."""

from __future__ import annotations

import numpy as np
import pandas as pd

from memlab.iar.config import LocalizerConfig
from memlab.iar.interface import IARModel
from memlab.iar.localizers.common import Inputs, mean_abs_activation, unit_table


def activation_by_scale(model: IARModel, inp: Inputs, cfg: LocalizerConfig) -> dict[str, np.ndarray]:
    """S x U per unit layer: the mean |activation| over the targets and the positions of each scale."""
    mu = mean_abs_activation(model, *inp.target(), cfg.batch_size)
    return {name: m_TxSxU.mean(0) for name, m_TxSxU in mu.items()}


def activation(model: IARModel, inp: Inputs, cfg: LocalizerConfig) -> pd.DataFrame:
    return unit_table(model, activation_by_scale(model, inp, cfg))
