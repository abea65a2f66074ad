"""`unitmem`: today's UnitMem (memlab.iar.unitmem), selectivity for one training image over all of them
with augmentations; blind to the target set (a unit memorizing a control scores as high as one memorizing
a target), so the per-image mode gives every target the same scores. k_star / image_id say which image a
unit is most selective for."""

from __future__ import annotations

import pandas as pd

from memlab.iar.config import LocalizerConfig
from memlab.iar.interface import IARModel
from memlab.iar.localizers.common import Inputs
from memlab.iar.unitmem import compute_unitmem, unit_scores


def unitmem(model: IARModel, inp: Inputs, cfg: LocalizerConfig) -> pd.DataFrame:
    d = inp.data
    table = compute_unitmem(model, d.train_images, d.train_labels, d.train_ids, cfg.unitmem, progress=False)
    return unit_scores(table)
