"""What the localizers share: their inputs (the run's images as tokens, split by the evaluation sets), the
targets' log-likelihood with gradients, activation gates, per-image activation means, and the unit table.

Shape letters: N training images (T of them targets, O the others), H held-out images, L tokens, S scales,
U units of a layer.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Iterator, Mapping

import numpy as np
import pandas as pd
import torch

from memlab.errors import UsageError
from memlab.iar.batching import tokenize_all
from memlab.iar.evalsets import EvalSets
from memlab.iar.hooks import capture
from memlab.iar.interface import IARModel
from memlab.iar.unitmem import UnitStats

COLUMNS = ["layer", "block", "unit", "scale", "score"]  # every localizer's table; scale -1: the unit at every scale


@dataclass(frozen=True)
class Inputs:
    """The run's unique training images (pipeline.RunData) and evaluation sets, tokenized once; `target_rows`
    index the training rows of T (one row in the per-image mode). Held-out: the first `sets.n_heldout`."""

    data: object  # pipeline.RunData
    sets: EvalSets
    train_tokens_NxL: torch.Tensor
    heldout_tokens_HxL: torch.Tensor
    target_rows: np.ndarray

    @classmethod
    def build(cls, model: IARModel, data, sets: EvalSets, batch_size: int = 64) -> "Inputs":
        rows = sets.rows(data.train_ids, "target")
        held = data.heldout_images[:sets.n_heldout]
        return cls(data, sets, tokenize_all(model, data.train_images, batch_size),
                   tokenize_all(model, held, batch_size), rows)

    def only(self, j: int) -> "Inputs":
        """The same inputs with target j alone (the per-image mode)."""
        return replace(self, target_rows=self.target_rows[j:j + 1])

    def target(self) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.as_tensor(self.target_rows)
        return self.train_tokens_NxL[rows], self.data.train_labels[rows]

    def others(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Training images outside the targets."""
        keep = torch.ones(len(self.train_tokens_NxL), dtype=torch.bool)
        keep[torch.as_tensor(self.target_rows)] = False
        return self.train_tokens_NxL[keep], self.data.train_labels[keep]

    def heldout(self, need: int = 1, method: str = "") -> tuple[torch.Tensor, torch.Tensor]:
        H = len(self.heldout_tokens_HxL)
        if H < need:
            raise UsageError(f"localizer {method} needs at least {need} held-out images, the run has {H}")
        return self.heldout_tokens_HxL, self.data.heldout_labels[:H]


def log_probs(model: IARModel, tokens_BxL: torch.Tensor, labels_B: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probabilities B x P x V, true tokens B x P) at the model's P scored positions, with gradients
    (the no-grad scores are batching.teacher_forced_scores)."""
    pos_L = model.scored_positions()
    logp_BxPxV = model.teacher_forced_logits(tokens_BxL, labels_B)[:, pos_L].float().log_softmax(-1)
    return logp_BxPxV, tokens_BxL[:, pos_L]


def loglik_B(model: IARModel, tokens_BxL: torch.Tensor, labels_B: torch.Tensor) -> torch.Tensor:
    """Mean log-likelihood (nats) of the true tokens at the scored positions, per sequence, with gradients."""
    logp_BxPxV, true_BxP = log_probs(model, tokens_BxL, labels_B)
    return torch.gather(logp_BxPxV, 2, true_BxP[..., None])[..., 0].mean(1)


@contextmanager
def gated(model: IARModel, gates: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """Within the block, the hidden activation of unit layer `name` is multiplied by `gates[name]` (U, or
    anything that broadcasts against B x L x U; a per-position L x U gate also on activations with extra
    leading positions), gradients flowing to the gate; hooks always removed."""
    specs = model.units()
    handles = []
    try:
        for name, gate in gates.items():
            handles.append(specs[name].module.register_forward_hook(
                lambda _m, _i, out, gate=gate: out * _fit(gate, out)))
        yield
    finally:
        for h in handles:
            h.remove()


def _fit(gate: torch.Tensor, out_BxLxU: torch.Tensor) -> torch.Tensor:
    """A per-position gate (L x U, from the per-scale localizers) on an activation with extra leading positions
    (class / start tokens, outside every scale): they take the first position's gate."""
    extra = out_BxLxU.shape[-2] - gate.shape[-2] if gate.ndim >= 2 and gate.shape[-2] > 1 else 0
    if extra > 0:
        gate = torch.cat([gate[..., :1, :].expand(*gate.shape[:-2], extra, gate.shape[-1]), gate], -2)
    return gate.to(out_BxLxU.dtype)


def gate_grads(model: IARModel, tokens_BxL: torch.Tensor, labels_B: torch.Tensor, gates: dict[str, torch.Tensor],
               batch_size: int) -> dict[str, torch.Tensor]:
    """d (mean over the B sequences of loglik_B) / d gate, per gated layer, with the activations multiplied by
    `gates` (U each); the model's own parameters get no gradient."""
    names, leaves = list(gates), [g.detach().requires_grad_(True) for g in gates.values()]
    total = [torch.zeros_like(g) for g in leaves]
    with gated(model, dict(zip(names, leaves))):
        for idx in chunks(len(tokens_BxL), batch_size):
            ll = loglik_B(model, tokens_BxL[idx], labels_B[idx]).sum() / len(tokens_BxL)
            for t, g in zip(total, torch.autograd.grad(ll, leaves)):
                t += g
    return dict(zip(names, total))


def chunks(n: int, batch_size: int) -> Iterator[torch.Tensor]:
    for s in range(0, n, batch_size):
        yield torch.arange(s, min(s + batch_size, n))


def mean_abs_activation(model: IARModel, tokens_BxL: torch.Tensor, labels_B: torch.Tensor,
                        batch_size: int = 64) -> dict[str, np.ndarray]:
    """Mean |activation| per image, scale and unit (teacher-forced, averaged over each scale's positions, as
    UnitMem does without augmentations): B x S x U per unit layer."""
    stats = UnitStats(model, len(tokens_BxL))
    model.eval()
    with torch.no_grad(), capture(model, on_activation=stats, keep=False):
        for idx in chunks(len(tokens_BxL), batch_size):
            stats.index = idx
            model.teacher_forced_logits(tokens_BxL[idx], labels_B[idx])
    return {name: s.numpy() for name, s in stats.sums.items()}


def unit_table(model: IARModel, scores: Mapping[str, np.ndarray | torch.Tensor]) -> pd.DataFrame:
    """The localizers' table, one row per unit: scores U (scale -1: the unit as a whole) or S x U (score =
    the highest over scales, scale = where it is reached; an edit acts on a unit at every scale)."""
    blocks = {name: spec.block for name, spec in model.units().items()}
    frames = []
    for name, s in scores.items():
        s = torch.as_tensor(s).detach().double().cpu().numpy()
        if s.ndim == 1:
            score_U, scale_U = s, np.full(len(s), -1)
        else:
            score_U, scale_U = s.max(0), s.argmax(0)
        frames.append(pd.DataFrame({"layer": name, "block": blocks[name], "unit": np.arange(len(score_U)),
                                    "scale": scale_U.astype(np.int64), "score": score_U}))
    return pd.concat(frames, ignore_index=True)


def position_scales(model: IARModel) -> torch.Tensor:
    """The scale of every token position, long L (0 everywhere for a model with one scale)."""
    scale_L = torch.zeros(model.seq_len, dtype=torch.long)
    for s, sl in enumerate(model.scale_slices()):
        scale_L[sl] = s
    return scale_L


def scale_table(model: IARModel, scores: Mapping[str, np.ndarray | torch.Tensor]) -> pd.DataFrame:
    """The per-scale table: one row per (layer, scale, unit) of S x U scores (scale-major within a layer)."""
    blocks = {name: spec.block for name, spec in model.units().items()}
    frames = []
    for name, s in scores.items():
        s_SxU = torch.as_tensor(s).detach().double().cpu().numpy()
        S, U = s_SxU.shape
        frames.append(pd.DataFrame({"layer": name, "block": blocks[name], "unit": np.tile(np.arange(U), S),
                                    "scale": np.repeat(np.arange(S), U).astype(np.int64), "score": s_SxU.ravel()}))
    return pd.concat(frames, ignore_index=True)
