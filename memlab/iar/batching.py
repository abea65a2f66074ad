"""Run an IARModel over many images or sequences in batches, without gradients: tokenize, decode,
continue, generate, and score teacher-forced predictions. Used by training, quality, UnitMem, extraction
and ablation alike, so none of them has to import another's module for it.

Outputs keep the order of the inputs; `batch_size` changes only speed and memory.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from memlab.iar.interface import IARModel


def _batched(fn: Callable[..., torch.Tensor], n: int, batch_size: int, *arrays) -> torch.Tensor:
    outs = [fn(*(a[i:i + batch_size] for a in arrays)) for i in range(0, n, batch_size)]
    return torch.cat(outs) if outs else torch.empty(0)


def tokenize_all(model: IARModel, images_Bx3xHxW: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Images in [0, 1] -> tokens B x L."""
    with torch.no_grad():
        return _batched(model.tokenize, len(images_Bx3xHxW), batch_size, images_Bx3xHxW)


def decode_all(model: IARModel, tokens_BxL: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Tokens B x L -> images B x 3 x H x W in [0, 1]."""
    with torch.no_grad():
        return _batched(model.decode, len(tokens_BxL), batch_size, tokens_BxL)


def continue_all(model: IARModel, tokens_BxL: torch.Tensor, labels_B: torch.Tensor, prefix: int,
                 batch_size: int = 64) -> torch.Tensor:
    """`model.continue_greedy` of every sequence from its first `prefix` units: tokens B x L."""
    with torch.no_grad():
        return _batched(lambda t, y: model.continue_greedy(t, y, prefix), len(tokens_BxL), batch_size,
                        tokens_BxL, labels_B)


def generate_all(model: IARModel, labels_B: torch.Tensor, seeds: list[int], batch_size: int = 64) -> torch.Tensor:
    """`model.generate` of one sample per (label, seed): tokens B x L; sample i depends only on seeds[i]."""
    with torch.no_grad():
        toks = [model.generate(labels_B[i:i + batch_size], seeds[i:i + batch_size])
                for i in range(0, len(seeds), batch_size)]
    return torch.cat(toks)


def teacher_forced_scores(model: IARModel, tokens_BxL: torch.Tensor, labels_B: torch.Tensor,
                          positions_L: torch.Tensor, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(top-1 accuracy_B, mean log-likelihood_B in nats) of the true tokens at `positions_L` (bool L)."""
    def scores(t, y):
        logits_BxLxV = model.teacher_forced_logits(t, y)[:, positions_L].float()
        true_BxL = t[:, positions_L]
        acc_B = (logits_BxLxV.argmax(-1) == true_BxL).float().mean(1)
        ll_B = torch.gather(logits_BxLxV.log_softmax(-1), 2, true_BxL[..., None])[..., 0].mean(1)
        return torch.stack([acc_B, ll_B], 1)
    with torch.no_grad():
        both_Bx2 = _batched(scores, len(tokens_BxL), batch_size, tokens_BxL, labels_B).double().cpu().numpy()
    return both_Bx2[:, 0], both_Bx2[:, 1]
