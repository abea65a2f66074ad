"""`random`: seeded uniform scores, the chance level of every ranking (recall@k = k / n_units expected)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from memlab.iar.config import LocalizerConfig
from memlab.iar.interface import IARModel
from memlab.iar.localizers.common import Inputs, unit_table


def random_scores(model: IARModel, inp: Inputs, cfg: LocalizerConfig) -> pd.DataFrame:
    rng = np.random.default_rng(cfg.seed)
    return unit_table(model, {name: rng.random(spec.weight.shape[0]) for name, spec in model.units().items()})
