"""`oracle` (a ceiling, not a method anyone can run for real): causal selectivity for the targets against
the other training images, NLL increase on the targets minus the mean NLL increase on the others when the
unit alone is removed (zero-out on both; the others are a seeded draw of `oracle_reference` of them, 0 = all,
as zero-out's cost grows with the images). It USES LABELS AN ATTACKER OR DEFENDER LACKS: which training
images are the memorized targets (the planted duplicates, or the injected images) and so which are not; its
table carries uses_labels = True. Activation selectivity would be no ceiling: a unit whose outgoing weights
store an image (as INJ injects it) fires no differently on that image."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from memlab.iar.config import LocalizerConfig
from memlab.iar.interface import IARModel
from memlab.iar.localizers.common import Inputs, unit_table
from memlab.iar.localizers.zero_out import nll_increase


def reference_set(inp: Inputs, cfg: LocalizerConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, labels) of the other training images the oracle contrasts with: all of them, or a seeded draw
    of `oracle_reference` (the whole and the per-scale oracle use this one draw)."""
    tok_O, lab_O = inp.others()
    n = len(tok_O) if cfg.oracle_reference == 0 else min(len(tok_O), cfg.oracle_reference)
    rows = torch.as_tensor(np.sort(np.random.default_rng(cfg.seed).permutation(len(tok_O))[:n]))
    return tok_O[rows], lab_O[rows]


def oracle(model: IARModel, inp: Inputs, cfg: LocalizerConfig) -> pd.DataFrame:
    on_T = nll_increase(model, *inp.target(), cfg.batch_size)
    tok_O, lab_O = reference_set(inp, cfg)
    on_O = nll_increase(model, tok_O, lab_O, cfg.batch_size) if len(tok_O) else {k: 0.0 for k in on_T}
    return unit_table(model, {name: d - on_O[name] for name, d in on_T.items()}).assign(uses_labels=True)
