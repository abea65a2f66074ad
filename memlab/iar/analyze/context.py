"""What the analyses of one model share, computed once: the tokens of the run's (folded) training and held-out
images, their greedy continuations from the prefix and the memorization scores of those, their token entropies;
and the bootstrap every interval uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import torch

from memlab.iar.analyze.config import AnalyzeConfig
from memlab.iar.analyze.scores import memorization_scores, token_entropy
from memlab.iar.batching import tokenize_all
from memlab.iar.interface import IARModel
from memlab.iar.pipeline import RunData


@dataclass
class Result:
    """One analysis's output: tables (name -> DataFrame, written as CSV), figures (name -> matplotlib Figure,
    written as PNG) and a JSON-able summary."""

    tables: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


class Context:
    """The model, its run data and the analysis config; `prefix` is already checked against the model."""

    def __init__(self, model: IARModel, data: RunData, cfg: AnalyzeConfig, prefix: int, reference=None, run=None):
        self.model, self.data, self.cfg, self.prefix = model.eval(), data, cfg, prefix
        self.reference = reference  # (IARModel, RunData) of --reference, or None
        self.run = run  # the run directory (its checkpoints feed the frequency onset), or None

    @cached_property
    def train_tokens(self) -> torch.Tensor:
        return tokenize_all(self.model, self.data.train_images, self.cfg.batch_size)

    @cached_property
    def heldout_tokens(self) -> torch.Tensor:
        return tokenize_all(self.model, self.data.heldout_images, self.cfg.batch_size)

    @cached_property
    def _train(self) -> tuple[pd.DataFrame, torch.Tensor]:
        return memorization_scores(self.model, self.train_tokens, self.data.train_labels, self.prefix,
                                   self.cfg.batch_size)

    @cached_property
    def _heldout(self) -> tuple[pd.DataFrame, torch.Tensor]:
        return memorization_scores(self.model, self.heldout_tokens, self.data.heldout_labels, self.prefix,
                                   self.cfg.batch_size)

    @cached_property
    def train_scores(self) -> pd.DataFrame:
        """One row per training image (folded ids): image_id, copies, the scores, entropy, memorized (the
        analyses read it, never change it)."""
        t = self._train[0].copy()
        t.insert(0, "image_id", np.asarray(self.data.train_ids))
        t.insert(1, "copies", np.asarray(self.data.copies))
        t["entropy"] = token_entropy(self.train_tokens.cpu().numpy(), self.model.vocab_size)
        t["memorized"] = t["edit_score"] >= self.cfg.memorized_at
        return t

    @cached_property
    def heldout_scores(self) -> pd.DataFrame:
        t = self._heldout[0].copy()
        t["entropy"] = token_entropy(self.heldout_tokens.cpu().numpy(), self.model.vocab_size)
        return t

    @property
    def train_continuations(self) -> torch.Tensor:
        return self._train[1]

    def rng(self, salt: int) -> np.random.Generator:
        """A generator of its own for each use, so one analysis's draws do not depend on which others ran."""
        return np.random.default_rng([self.cfg.seed, salt])


def bootstrap_many(stat, arrays: tuple, n_boot: int, level: float, rng: np.random.Generator,
                   groups: np.ndarray | None = None, half: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Percentile intervals (lo_K, hi_K) of the K numbers `stat(*arrays)` returns, over resamples of the rows
    (within each group of `groups` when given, so a two-sample statistic keeps its sample sizes); each number's
    NaN resamples are dropped. half: half-samples without replacement instead, for statistics that a repeated
    row biases (a pooled entropy falls when an image is pooled twice); their interval is the wider one."""
    n = len(arrays[0])
    vals = []
    for _ in range(n_boot):
        if half:
            idx = rng.choice(n, max(1, n // 2), replace=False)
        elif groups is None:
            idx = rng.integers(0, n, n)
        else:
            idx = np.concatenate([rng.choice(np.flatnonzero(groups == g), (groups == g).sum())
                                  for g in np.unique(groups)])
        vals.append(np.atleast_1d(np.asarray(stat(*(np.asarray(a)[idx] for a in arrays)), dtype=np.float64)))
    v_RxK = np.array(vals)
    a = (1 - level) / 2
    lo, hi = [], []
    for col in v_RxK.T:
        col = col[np.isfinite(col)]
        lo.append(np.quantile(col, a) if len(col) else np.nan)
        hi.append(np.quantile(col, 1 - a) if len(col) else np.nan)
    return np.array(lo), np.array(hi)


def bootstrap(stat, arrays: tuple, n_boot: int, level: float, rng: np.random.Generator,
              groups: np.ndarray | None = None) -> tuple[float, float]:
    """Percentile interval of the one number `stat(*arrays)` returns (see bootstrap_many)."""
    lo, hi = bootstrap_many(stat, arrays, n_boot, level, rng, groups)
    return float(lo[0]), float(hi[0])


def mean_ci(x: np.ndarray, cfg: AnalyzeConfig, rng: np.random.Generator) -> tuple[float, float, float]:
    """(mean, lo, hi) of x with a bootstrap interval; NaNs for an empty x."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    lo, hi = bootstrap(np.mean, (x,), cfg.n_boot, cfg.level, rng)
    return float(x.mean()), lo, hi
