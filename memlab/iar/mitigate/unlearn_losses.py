"""Unlearning losses, one small function each, registered by name (unlearn_config.METHODS), over per-token
log-probabilities of one teacher-forced pass. Minimising a loss unlearns; every loss is a sum of terms:

  forget ascent     mean log p(true token) over the targets' scored positions (minimised: the NLL rises)
  retain NLL        mean -log p(true token) over the retain batch
  retain KL         mean over retain positions of KL(original || current) = sum_v p_ref (log p_ref - log p)
  NPO               (2 / beta) mean over targets of log(1 + (p / p_ref)^beta), p the sequence probability
                    (Zhang et al. 2024; at the start, p = p_ref, it is (2 / beta) log 2)
  selective         mean log p over the memorized positions minus mean log p over the targets' other
                    positions (ascent on the first, descent on the second; CodeEraser, Chu et al.)

The methods (as in locuslab/open-unlearning): ga = forget ascent; graddiff = ascent + retain_weight x retain
NLL; kl = ascent + kl_weight x retain KL; npo = NPO + retain_weight x retain NLL; selective = selective +
kl_weight x retain KL.

Shape letters: T targets, R retain sequences, P scored positions, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from memlab.iar.mitigate.unlearn_config import METHODS, UnlearnConfig


@dataclass
class Batch:
    """One step's log-probabilities. `forget_ll_TxP` and `retain_logp_RxPxV` carry gradients; the `ref_` ones
    are the original (unedited) model's. Retain fields are None for methods without a retain term."""

    forget_ll_TxP: torch.Tensor  # log p(true token) under the current model
    forget_ref_ll_TxP: torch.Tensor  # the same under the original model
    memorized_TxP: torch.Tensor  # bool: positions the original's greedy continuation reproduces
    retain_logp_RxPxV: torch.Tensor | None = None
    retain_ref_logp_RxPxV: torch.Tensor | None = None
    retain_true_RxP: torch.Tensor | None = None


def forget_ascent(b: Batch) -> torch.Tensor:
    return b.forget_ll_TxP.mean()


def retain_nll(b: Batch) -> torch.Tensor:
    return -torch.gather(b.retain_logp_RxPxV, 2, b.retain_true_RxP[..., None]).mean()


def retain_kl(b: Batch) -> torch.Tensor:
    """KL(original || current) per position, averaged; exactly 0 when both log-probabilities are equal."""
    ref = b.retain_ref_logp_RxPxV
    return (ref.exp() * (ref - b.retain_logp_RxPxV)).sum(-1).mean()


def npo(b: Batch, beta: float) -> torch.Tensor:
    log_ratio_T = (b.forget_ll_TxP - b.forget_ref_ll_TxP).sum(1)  # log p / p_ref of each whole sequence
    return -(2.0 / beta) * F.logsigmoid(-beta * log_ratio_T).mean()


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp_min(1)  # 0 (with a zero gradient) over an empty mask


def selective(b: Batch) -> torch.Tensor:
    mem = b.memorized_TxP.to(b.forget_ll_TxP.dtype)
    return _masked_mean(b.forget_ll_TxP, mem) - _masked_mean(b.forget_ll_TxP, 1.0 - mem)


Terms = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Method:
    terms: Callable[[Batch, UnlearnConfig], Terms]  # named terms, each already weighted; the loss is their sum
    uses_retain: bool


REGISTRY: dict[str, Method] = {
    "ga": Method(lambda b, c: {"forget": forget_ascent(b)}, False),
    "graddiff": Method(lambda b, c: {"forget": forget_ascent(b), "retain": c.retain_weight * retain_nll(b)}, True),
    "kl": Method(lambda b, c: {"forget": forget_ascent(b), "retain": c.kl_weight * retain_kl(b)}, True),
    "npo": Method(lambda b, c: {"forget": npo(b, c.beta), "retain": c.retain_weight * retain_nll(b)}, True),
    "selective": Method(lambda b, c: {"forget": selective(b), "retain": c.kl_weight * retain_kl(b)}, True),
}
if tuple(REGISTRY) != METHODS:  # unlearn_config.METHODS names them for the torch-free CLI
    raise RuntimeError("memlab.iar.mitigate.unlearn_config.METHODS and the loss registry disagree")


def loss(method: str, b: Batch, cfg: UnlearnConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """(the loss to minimise, its terms as floats)."""
    terms = REGISTRY[method].terms(b, cfg)
    return sum(terms.values()), {k: float(v.detach()) for k, v in terms.items()}
