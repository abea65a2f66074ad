"""Plumbing shared by the three IAR models: the attached tokenizer, unit maps, seeded sampling, building
from a run config."""

from __future__ import annotations

import abc
from collections import OrderedDict
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from memlab.iar.interface import IARModel, UnitSpec

if TYPE_CHECKING:
    from memlab.iar.config import RunConfig


def per_seed_generators(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def sample_rows(logits_BxNxV: torch.Tensor, generators: list[torch.Generator], temperature: float = 1.0,
                top_k: int | None = None) -> torch.Tensor:
    """Draw one token per position; row b uses only generators[b] (so sample b depends only on its seed)."""
    logits = logits_BxNxV.float() / max(temperature, 1e-6)
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    cdf_BxNxV = torch.softmax(logits, -1).cumsum(-1)
    u_BxN = torch.stack([torch.rand(logits.shape[1], generator=g) for g in generators]).to(logits.device)
    idx = torch.searchsorted(cdf_BxNxV, u_BxN[..., None] * cdf_BxNxV[..., -1:]).squeeze(-1)
    return idx.clamp_max(logits.shape[-1] - 1)


class TokenizedIAR(IARModel):
    """IARModel pieces that do not depend on the architecture. The tokenizer is attached, not registered as
    a sub-module, so the model's save_pretrained holds only the model's own weights. Prefixes count tokens
    here (raster, masked); the next-scale model counts scales instead.

    Models list their bases as (ModelMixin, <this>, ConfigMixin): IARModel is an nn.Module, and ModelMixin's
    attribute lookup must fall through to nn.Module's (which finds sub-modules), not to ConfigMixin's."""

    sample_temperature: float = 1.0
    sample_top_k: int | None = None
    prefix_unit = "tokens"

    @classmethod
    @abc.abstractmethod
    def from_run_config(cls, cfg: RunConfig, num_classes: int) -> TokenizedIAR:
        """A freshly initialised model of the sizes in `cfg` for `num_classes` classes."""

    @staticmethod
    def trunk_config(cfg: RunConfig, num_classes: int) -> dict:
        """Constructor arguments every model shares: vocabulary, classes, transformer sizes."""
        t = cfg.train
        factors = cfg.class_factors  # only when factorized, so older runs' model configs are unchanged
        return {"vocab_size": t.codebook_size, "num_classes": num_classes, "width": t.width, "depth": t.depth,
                "heads": t.heads, "mlp_ratio": t.mlp_ratio, **({"class_factors": factors} if factors else {})}

    @staticmethod
    def sink_config(cfg: RunConfig) -> dict:
        """MemSinks constructor arguments of models built on layers.Trunk (none without --memsinks)."""
        t = cfg.train
        return {"sink_fraction": t.memsinks, "sink_active": t.sink_active} if t.memsinks else {}

    @classmethod
    def tokenizer_scales(cls, cfg: RunConfig) -> tuple[int, ...]:
        """Token-map sides the run's tokenizer produces: one latent grid (image size / 4)."""
        return (cfg.data.size // 4,)

    def prefix_limit(self) -> int:
        """Prefixes count tokens: `seq_len` reveals everything."""
        return self.seq_len

    def default_prefix(self) -> int:
        """A quarter of the tokens (at least one)."""
        return max(1, self.seq_len // 4)

    def quality_features(self, images_Bx3xHxW: torch.Tensor) -> torch.Tensor:
        """The attached tokenizer's encoder output before quantization, flattened: B x (C * h * w)."""
        dev = next(self.tokenizer.parameters()).device
        return self.tokenizer.encode_latent(images_Bx3xHxW.to(dev)).flatten(1)

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    def attach_tokenizer(self, tokenizer) -> None:
        if tokenizer.seq_len != self.seq_len or tokenizer.config.codebook_size != self.vocab_size:
            raise ValueError(f"tokenizer gives {tokenizer.seq_len} tokens over {tokenizer.config.codebook_size} codes; "
                             f"model expects {self.seq_len} over {self.vocab_size}")
        object.__setattr__(self, "_tokenizer", tokenizer)

    def tokenizer_module(self):
        return self.tokenizer

    def with_published(self, directory, what: str = "model") -> "TokenizedIAR":
        """A model of this class with the weights its save_pretrained wrote in `directory` (a fine-tuned copy:
        INJ, unlearning), this model's tokenizer attached, in eval mode on the CPU."""
        from memlab.iar.checkpoint import load_pretrained

        model = load_pretrained(type(self), directory, what)
        model.attach_tokenizer(self.tokenizer)
        return model.eval()

    def code_vectors(self) -> torch.Tensor:
        """The tokenizer's codebook (V x latent channels)."""
        return self.tokenizer.codebook.detach().float().cpu()

    @property
    def tokenizer(self):
        tok = self.__dict__.get("_tokenizer")
        if tok is None:
            raise RuntimeError("no tokenizer attached; use memlab.iar.load.load_run or attach_tokenizer()")
        return tok

    def tokenize(self, images_Bx3xHxW: torch.Tensor) -> torch.Tensor:
        dev = next(self.tokenizer.parameters()).device
        return self.tokenizer.tokenize(images_Bx3xHxW.to(dev)).to(self.device)

    def decode(self, tokens_BxL: torch.Tensor) -> torch.Tensor:
        dev = next(self.tokenizer.parameters()).device
        return self.tokenizer.decode(tokens_BxL.to(dev))

    def check_tokens(self, tokens_BxL: torch.Tensor, labels_B: torch.Tensor) -> None:
        if tokens_BxL.ndim != 2 or tokens_BxL.shape[1] != self.seq_len:
            raise ValueError(f"tokens must be B x {self.seq_len}, got {tuple(tokens_BxL.shape)}")
        if labels_B.shape != tokens_BxL.shape[:1]:
            raise ValueError(f"labels must be B = {tokens_BxL.shape[0]}, got {tuple(labels_B.shape)}")

    def token_nll(self, tokens_BxL: torch.Tensor, labels_B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced (NLL in nats, top-1 accuracy) per sample, over the scored positions: two tensors B."""
        logits_BxLxV = self.teacher_forced_logits(tokens_BxL, labels_B)
        nll_BxL = F.cross_entropy(logits_BxLxV.transpose(1, 2), tokens_BxL, reduction="none")
        hit_BxL = (logits_BxLxV.argmax(-1) == tokens_BxL).float()
        keep = self.scored_positions()
        return nll_BxL[:, keep].mean(1), hit_BxL[:, keep].mean(1)

    def training_loss(self, tokens_BxL: torch.Tensor, labels_B: torch.Tensor, generator: torch.Generator):
        """Mean next-token (next-scale) cross entropy, nats."""
        logits_BxLxV = self(tokens_BxL, labels_B)
        return F.cross_entropy(logits_BxLxV.reshape(-1, logits_BxLxV.shape[-1]), tokens_BxL.reshape(-1))

    @staticmethod
    def mlp_units(blocks: nn.ModuleList, path: str) -> "OrderedDict[str, UnitSpec]":
        """Units of our own blocks: mlp.act's output, fed by mlp.fc (its whole output is the pre-activation).
        A MemSinks model's sinks are a layer of their own after each block's shared units, `block.i.mlp_sink`
        (mlp.sink_act fed by mlp.sink_fc): `block.i.mlp` never includes them."""
        out = OrderedDict()
        for i, b in enumerate(blocks):
            out[f"block.{i}.mlp"] = UnitSpec(module=b.mlp.act, pre_module=b.mlp.fc, weight=b.mlp.fc.weight,
                                             bias=b.mlp.fc.bias, block=i, path=f"{path}.{i}.mlp.act")
            if b.mlp.sinks:
                out[f"block.{i}.mlp_sink"] = UnitSpec(module=b.mlp.sink_act, pre_module=b.mlp.sink_fc,
                                                      weight=b.mlp.sink_fc.weight, bias=b.mlp.sink_fc.bias,
                                                      block=i, path=f"{path}.{i}.mlp.sink_act")
        return out


class AutoregressiveIAR(TokenizedIAR):
    """Greedy continuation and seeded sampling on top of `_fill(tokens, labels, prefix, choose, use_cache)`,
    where choose maps logits B x N x V of the next N positions to tokens B x N, and on `forward(tokens,
    labels)` giving teacher-forced logits B x L x V (causal, or block-causal over scales)."""

    def teacher_forced_logits(self, tokens_BxL: torch.Tensor, labels_B: torch.Tensor) -> torch.Tensor:
        self.check_tokens(tokens_BxL, labels_B)
        return self(tokens_BxL, labels_B)

    def scored_positions(self) -> torch.Tensor:
        """Bool L, all True: position i never sees token i (see IARModel.scored_positions)."""
        return torch.ones(self.seq_len, dtype=torch.bool, device=self.device)

    def continue_greedy(self, tokens_BxL: torch.Tensor, labels_B: torch.Tensor, prefix: int) -> torch.Tensor:
        self.check_tokens(tokens_BxL, labels_B)
        return self._fill(tokens_BxL, labels_B, prefix, lambda logits_BxNxV: logits_BxNxV.argmax(-1))

    def generate(self, labels_B: torch.Tensor, seeds: list[int], use_cache: bool = True) -> torch.Tensor:
        gens = per_seed_generators(seeds)
        start = torch.zeros(len(labels_B), self.seq_len, dtype=torch.long, device=labels_B.device)
        pick = lambda logits_BxNxV: sample_rows(logits_BxNxV, gens, self.sample_temperature, self.sample_top_k)
        return self._fill(start, labels_B, 0, pick, use_cache)
