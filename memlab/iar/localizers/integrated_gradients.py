"""`integrated-gradients` (knowledge-neuron style): for one unit layer at a time, its activations are scaled
by alpha from 0 to 1 (the other layers untouched) and unit u's score is integral_0^1 d LL / d g_u at
g = alpha dalpha (midpoint rule, `ig_steps` steps), which is the integrated gradient of the targets' mean
log-likelihood with respect to the unit's activation (summed over positions); a layer's scores add up to
LL(layer on) - LL(layer off)."""

from __future__ import annotations

import pandas as pd
import torch

from memlab.iar.config import LocalizerConfig
from memlab.iar.interface import IARModel
from memlab.iar.localizers.common import Inputs, gate_grads, unit_table


def integrated_gradients(model: IARModel, inp: Inputs, cfg: LocalizerConfig) -> pd.DataFrame:
    tokens, labels = inp.target()
    scores = {}
    for name, spec in model.units().items():
        U, n = spec.weight.shape[0], cfg.ig_steps
        grads = [gate_grads(model, tokens, labels, {name: torch.full((U,), (k + 0.5) / n, device=model.device)},
                            cfg.batch_size)[name] for k in range(n)]
        scores[name] = torch.stack(grads).mean(0)
    return unit_table(model, scores)
