"""NextScaleTransformer: VAR-like class-conditional next-scale prediction.

All scales form one sequence (coarse to fine, each scale row-major). The input of scale k is the running sum
of the token embeddings of scales < k, upsampled to the finest grid and area-resized to scale k (VAR's
accumulated f_hat, with learned embeddings in place of codebook vectors); scale 0's single input is the class
embedding. Block-causal attention: a token sees its own scale and the coarser ones. Per-scale position
embeddings; the class embedding is added to every position (the role of VAR's adaptive norm).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from memlab.iar.models.base import AutoregressiveIAR
from memlab.iar.models.layers import KVCache, Trunk, class_embedding
from memlab.iar.tokenizer import _resize, scale_slices


class NextScaleTransformer(ModelMixin, AutoregressiveIAR, ConfigMixin):
    config_name = "config.json"
    arch = "next-scale"
    prefix_unit = "scales"

    @register_to_config
    def __init__(self, vocab_size: int = 256, scales: tuple[int, ...] = (1, 2, 3, 4), num_classes: int = 10,
                 width: int = 128, depth: int = 4, heads: int = 4, mlp_ratio: int = 4,
                 sink_fraction: float = 0.0, sink_active: float = 0.5, class_factors: tuple[int, ...] | None = None):
        super().__init__()
        L = sum(s * s for s in scales)
        self.tok_emb = nn.Embedding(vocab_size, width)
        self.cls_emb = class_embedding(num_classes, width, class_factors)
        self.pos_emb = nn.Parameter(torch.randn(L, width) * 0.02)  # one table per scale, concatenated
        self.level_emb = nn.Embedding(len(scales), width)
        self.trunk = Trunk(width, depth, heads, mlp_ratio, vocab_size, sink_fraction, sink_active)
        level_L = torch.cat([torch.full((s * s,), k) for k, s in enumerate(scales)])
        self.register_buffer("level_L", level_L, persistent=False)
        self.register_buffer("block_causal_LxL", level_L[:, None] >= level_L[None, :], persistent=False)

    @property
    def seq_len(self) -> int:
        return sum(s * s for s in self.config.scales)

    def scale_slices(self) -> list[slice]:
        return scale_slices(self.config.scales)

    def _scale_inputs(self, tokens_BxL: torch.Tensor, labels_B: torch.Tensor, k_from: int, k_to: int) -> torch.Tensor:
        """Input embeddings of scales k_from..k_to-1 (they depend on tokens of scales < k_to - 1 only)."""
        scales, slices = self.config.scales, self.scale_slices()
        B, D, G = tokens_BxL.shape[0], self.config.width, scales[-1]
        cls_BxD = self.cls_emb(labels_B)
        parts, cum_BxDxGxG = [], torch.zeros(B, D, G, G, device=tokens_BxL.device, dtype=cls_BxD.dtype)
        for k in range(k_to):
            if k >= k_from:
                if k == 0:
                    x = cls_BxD[:, None]
                else:
                    x = _resize(cum_BxDxGxG, scales[k]).flatten(2).transpose(1, 2)
                sl = slices[k]
                parts.append(x + self.pos_emb[sl] + self.level_emb(self.level_L[sl]) + cls_BxD[:, None])
            if k + 1 < k_to:
                s = scales[k]
                e = self.tok_emb(tokens_BxL[:, slices[k]]).transpose(1, 2).reshape(B, D, s, s)
                cum_BxDxGxG = cum_BxDxGxG + _resize(e, G)
        return torch.cat(parts, 1)

    def forward(self, tokens_BxL: torch.Tensor, labels_B: torch.Tensor) -> torch.Tensor:
        h = self._scale_inputs(tokens_BxL, labels_B, 0, len(self.config.scales))
        return self.trunk(h, self.block_causal_LxL)

    def revealed_mask(self, prefix: int) -> torch.Tensor:
        """Bool L: the tokens of the first `prefix` scales."""
        slices = self.scale_slices()
        stop = slices[prefix].start if prefix < len(slices) else self.seq_len
        return torch.arange(self.seq_len, device=self.device) < stop

    def prefix_limit(self) -> int:
        """Prefixes count scales: all of them reveal everything."""
        return len(self.config.scales)

    def default_prefix(self) -> int:
        """Half of the scales (at least one)."""
        return max(1, len(self.config.scales) // 2)

    def ranking_positions(self, prefix: int) -> torch.Tensor:
        """Bool L: the finest scale, whatever the prefix (the scale that decides what the image looks like;
        coarse scales are easy to predict for any image)."""
        keep_L = torch.zeros(self.seq_len, dtype=torch.bool, device=self.device)
        keep_L[self.scale_slices()[-1]] = True
        return keep_L

    @classmethod
    def tokenizer_scales(cls, cfg) -> tuple[int, ...]:
        """The run's scales (coarse to fine, ending at the latent grid)."""
        return tuple(cfg.train.scales)

    @classmethod
    def from_run_config(cls, cfg, num_classes: int) -> NextScaleTransformer:
        return cls(scales=tuple(cfg.train.scales), **cls.trunk_config(cfg, num_classes), **cls.sink_config(cfg))

    @torch.no_grad()
    def _fill(self, tokens_BxL, labels_B, prefix: int, choose, use_cache: bool = True):
        """Keep scales < prefix, choose(logits_BxNxV) -> B x N tokens for each later scale, coarse to fine."""
        out, slices = tokens_BxL.clone(), self.scale_slices()
        S = len(slices)
        if prefix >= S:
            return out
        if not use_cache:
            for k in range(prefix, S):
                out[:, slices[k]] = choose(self(out, labels_B)[:, slices[k]])
            return out
        cache = KVCache(len(self.trunk.blocks))
        # prefill the kept scales and the first new one in one block-causal pass
        end = slices[prefix].stop
        h = self._scale_inputs(out, labels_B, 0, prefix + 1)
        logits = self.trunk(h, self.block_causal_LxL[:end, :end], cache)[:, slices[prefix]]
        for k in range(prefix, S):
            out[:, slices[k]] = choose(logits)
            if k + 1 < S:
                h = self._scale_inputs(out, labels_B, k + 1, k + 2)
                logits = self.trunk(h, None, cache)  # a scale sees itself and everything cached
        return out

    def units(self) -> "OrderedDict":
        return self.mlp_units(self.trunk.blocks, "trunk.blocks")
