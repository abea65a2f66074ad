"""The one small interface every IAR model implements, so that UnitMem, extraction and ablation work on
any of them (ours, diffusers' UVit2DModel, a fake for tests) without knowing the layout.

Conventions: images are float tensors B x 3 x H x W with pixels in [0, 1]; tokens are long tensors B x L
(one flat sequence; next-scale models concatenate their scales coarse to fine); labels are long B.
"""

from __future__ import annotations

import abc
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

ARCHS = ("next-scale", "raster", "masked")


@dataclass(frozen=True)
class UnitSpec:
    """One MLP hidden layer. `module`'s forward output is the hidden activation after the nonlinearity,
    shaped B x L x U (U units); `weight` (U x D_in) and `bias` (U, or None) feed it: scaling row u of both
    scales unit u's pre-activation input."""

    module: nn.Module
    weight: nn.Parameter
    bias: nn.Parameter | None
    block: int
    path: str  # module path inside the model, for humans and error messages


class IARModel(abc.ABC):
    """Mixin/base for IAR models. A `prefix` (continue_greedy, revealed_mask) counts tokens (raster), scales
    (next-scale), or revealed tokens in the model's fixed reveal order (masked)."""

    arch: str

    @property
    @abc.abstractmethod
    def seq_len(self) -> int: ...

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int: ...

    @abc.abstractmethod
    def tokenize(self, images_Bx3xHxW: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> tokens B x L."""

    @abc.abstractmethod
    def decode(self, tokens_BxL: torch.Tensor) -> torch.Tensor:
        """Tokens B x L -> images B x 3 x H x W in [0, 1]."""

    @abc.abstractmethod
    def teacher_forced_logits(self, tokens_BxL: torch.Tensor, labels_B: torch.Tensor) -> torch.Tensor:
        """Logits B x L x V; position i predicts token i from what the architecture lets it see."""

    @abc.abstractmethod
    def scored_positions(self) -> torch.Tensor:
        """Bool L: positions whose teacher-forced logits are predictions, made without seeing the token they
        score. Raster: every position (position i sees the class and tokens < i). Next-scale: every position
        (a scale's inputs come from coarser scales). Masked: the masked half of the teacher-forcing pass; the
        revealed half gets a one-hot on its own visible token, which predicts nothing."""

    @abc.abstractmethod
    def revealed_mask(self, prefix: int) -> torch.Tensor:
        """Bool L: positions that `continue_greedy(..., prefix)` keeps from its input; it fills the others.
        Raster: the first `prefix` tokens. Next-scale: every token of the first `prefix` scales (all tokens
        once prefix >= the number of scales). Masked: the first `prefix` positions of the reveal order."""

    @abc.abstractmethod
    def continue_greedy(self, tokens_BxL: torch.Tensor, labels_B: torch.Tensor, prefix: int) -> torch.Tensor:
        """Keep the first `prefix` units of each sequence (tokens / scales / revealed tokens), fill the rest
        greedily (argmax). Returns B x L."""

    @abc.abstractmethod
    def generate(self, labels_B: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        """Sample B token sequences; sample i depends only on seeds[i]."""

    @abc.abstractmethod
    def units(self) -> "OrderedDict[str, UnitSpec]":
        """Canonical unit-layer names ('block.3.mlp', in block order) -> UnitSpec."""

    def scale_slices(self) -> list[slice]:
        """Token positions of each scale (next-scale); one slice over the whole sequence otherwise."""
        return [slice(0, self.seq_len)]
