"""`grad-act`: gradient times activation of the targets' log-likelihood, summed over positions: d LL / d g_u
at g = 1 for a gate g_u on unit u's activation, the first-order drop of the targets' mean log-likelihood
(teacher-forced, scored positions) when the unit is removed. Higher = the targets lean on it more."""

from __future__ import annotations

import pandas as pd
import torch

from memlab.iar.config import LocalizerConfig
from memlab.iar.interface import IARModel
from memlab.iar.localizers.common import Inputs, gate_grads, unit_table


def grad_act(model: IARModel, inp: Inputs, cfg: LocalizerConfig) -> pd.DataFrame:
    gates = {name: torch.ones(spec.weight.shape[0], device=model.device) for name, spec in model.units().items()}
    return unit_table(model, gate_grads(model, *inp.target(), gates, cfg.batch_size))
