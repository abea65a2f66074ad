"""The one small interface every IAR model implements, so that UnitMem, extraction, ablation and quality work
on any of them (ours, diffusers' UVit2DModel, a fake for tests) without knowing the layout or branching on
the architecture: what differs between architectures (prefixes, ranking positions, quality features) is
a method of the model.

Conventions: images are float tensors B x 3 x H x W with pixels in [0, 1]; tokens are long tensors B x L
(one flat sequence; next-scale models concatenate their scales coarse to fine); labels are long B.
"""

from __future__ import annotations

import abc
import itertools
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ARCHS = ("next-scale", "raster", "masked")


@dataclass(frozen=True)
class UnitSpec:
    """One MLP hidden layer. `module`'s forward output is the hidden activation after the nonlinearity,
    shaped B x L x U (U units); `weight` (U x D_in) and `bias` (U, or None) feed it: scaling row u of both
    scales unit u's pre-activation input. `pre_module`'s forward output is B x L x C (C >= U) whose first
    U channels are those pre-activations (the Linear that owns `weight`'s rows), so batched evaluation can
    scale unit u per batch row with a forward hook instead of editing weights."""

    module: nn.Module
    pre_module: nn.Module
    weight: nn.Parameter
    bias: nn.Parameter | None
    block: int
    path: str  # module path inside the model, for humans and error messages


class IARModel(nn.Module, abc.ABC):
    """Base of every IAR model: an nn.Module (train / eval, parameters, forward hooks, `device`) with the
    few methods the tooling needs, so that no caller has to know which architecture it holds.

    A `prefix` (continue_greedy, revealed_mask, ranking_positions) counts `prefix_unit`s: tokens (raster),
    scales (next-scale), or revealed tokens in the model's fixed reveal order (masked). `arch` names the
    architecture in tables and configs; callers never branch on it, they ask the model."""

    arch: str
    prefix_unit: str  # what a prefix counts, for messages: "tokens" or "scales"

    @property
    def device(self) -> torch.device:
        """Where the model's parameters (else buffers) live; CPU for a model with neither."""
        for t in itertools.chain(self.parameters(), self.buffers()):
            return t.device
        return torch.device("cpu")

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
    def prefix_limit(self) -> int:
        """Prefix units in one sequence: `revealed_mask(prefix_limit())` reveals every token, so a continuation
        that has something to fill needs 1 <= prefix < prefix_limit()."""

    @abc.abstractmethod
    def default_prefix(self) -> int:
        """The prefix the extraction attack gives when none is chosen, in [1, prefix_limit())."""

    @abc.abstractmethod
    def ranking_positions(self, prefix: int) -> torch.Tensor:
        """Bool L: positions whose teacher-forced top-1 accuracy ranks extraction candidates for a
        continuation from `prefix`; scored positions that the continuation has to produce (outside
        `revealed_mask(prefix)`), never none for 1 <= prefix < prefix_limit(). Raster: every token after the
        prefix. Next-scale: the finest scale. Masked: the masked half of teacher forcing, less the prefix."""

    @abc.abstractmethod
    def quality_features(self, images_Bx3xHxW: torch.Tensor) -> torch.Tensor:
        """Float B x F features of images in [0, 1] for the Frechet distance of sample quality; a fixed function
        of the images (deterministic, independent of the batch it is computed in)."""

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

    def code_vectors(self) -> torch.Tensor:
        """V x C: what each code stands for, so that 'nearest code' has a meaning: by default the decoded image of
        a sequence of that code alone; models with a codebook return its vectors."""
        seqs = torch.arange(self.vocab_size)[:, None].expand(-1, self.seq_len).to(self.device)
        with torch.no_grad():
            return self.decode(seqs).flatten(1).float().cpu()

    def tokenizer_module(self) -> nn.Module:
        """The module whose weights decide `tokenize` (what a token cache is keyed on); the whole model when
        tokenizing is not a separate module (then any change of the model invalidates such a cache)."""
        return self


def pooled_pixels(images_Bx3xHxW: torch.Tensor, side: int = 8) -> torch.Tensor:
    """Quality features of a model without an image encoder: side x side average-pooled pixels, B x 3*side^2."""
    return F.adaptive_avg_pool2d(images_Bx3xHxW.float(), side).flatten(1)
