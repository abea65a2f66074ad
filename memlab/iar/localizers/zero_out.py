"""`zero-out`: the increase of the targets' mean NLL (teacher-forced, scored positions, nats) when the unit
alone is removed, measured exactly: every single-unit edit is evaluated, many per forward pass through
memlab.iar.batched (E edits stacked on the batch axis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from memlab.iar.batched import teacher_forced_scores_E
from memlab.iar.config import LocalizerConfig
from memlab.iar.interface import IARModel
from memlab.iar.interventions import ZeroUnits
from memlab.iar.localizers.common import Inputs, unit_table

EDITS_PER_CALL = 128  # bounds the E x U edit tables that one batched call builds


def nll_increase(model: IARModel, tokens_BxL: torch.Tensor, labels_B: torch.Tensor,
                 batch_size: int) -> dict[str, np.ndarray]:
    """Per unit layer, U: mean over the B sequences of NLL(unit u zeroed) - NLL(unedited), nats per token."""
    pos_L = model.scored_positions()
    _, base_1xB = teacher_forced_scores_E(model, [{}], tokens_BxL, labels_B, pos_L, batch_size)
    out = {}
    for name, spec in model.units().items():
        U, parts = spec.weight.shape[0], []
        for s in range(0, U, EDITS_PER_CALL):
            edits = [ZeroUnits({name: [u]}) for u in range(s, min(s + EDITS_PER_CALL, U))]
            _, ll_ExB = teacher_forced_scores_E(model, edits, tokens_BxL, labels_B, pos_L, batch_size)
            parts.extend((base_1xB - ll_ExB).mean(1))
        out[name] = np.array(parts)
    return out


def zero_out(model: IARModel, inp: Inputs, cfg: LocalizerConfig) -> pd.DataFrame:
    return unit_table(model, nll_increase(model, *inp.target(), cfg.batch_size))
