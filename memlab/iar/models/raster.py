"""RasterTransformer: LlamaGen/RAR-like class-conditional next-token model over a raster token sequence.

Input at position i is the class token (i = 0) or token i-1; causal attention; position i predicts token i.
Generation runs one token at a time with a key/value cache (or recomputes the prefix, use_cache=False).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from memlab.iar.models.base import AutoregressiveIAR
from memlab.iar.models.layers import KVCache, Trunk, class_embedding


class RasterTransformer(ModelMixin, AutoregressiveIAR, ConfigMixin):
    config_name = "config.json"
    arch = "raster"

    @register_to_config
    def __init__(self, vocab_size: int = 256, seq_len: int = 16, num_classes: int = 10, width: int = 128,
                 depth: int = 4, heads: int = 4, mlp_ratio: int = 4,
                 sink_fraction: float = 0.0, sink_active: float = 0.5, class_factors: tuple[int, ...] | None = None):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, width)
        self.cls_emb = class_embedding(num_classes, width, class_factors)
        self.pos_emb = nn.Parameter(torch.randn(seq_len, width) * 0.02)
        self.trunk = Trunk(width, depth, heads, mlp_ratio, vocab_size, sink_fraction, sink_active)
        self.register_buffer("causal_LxL", torch.ones(seq_len, seq_len, dtype=torch.bool).tril(), persistent=False)

    @property
    def seq_len(self) -> int:
        return self.config.seq_len

    def _inputs(self, tokens_BxT: torch.Tensor, labels_B: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Embeddings of positions start..start+T-1 given the tokens before each (tokens_BxT = t[start-1 ...])."""
        if start == 0:
            h = torch.cat([self.cls_emb(labels_B)[:, None], self.tok_emb(tokens_BxT[:, :-1])], 1)
        else:
            h = self.tok_emb(tokens_BxT)
        return h + self.pos_emb[start:start + h.shape[1]]

    def forward(self, tokens_BxL: torch.Tensor, labels_B: torch.Tensor) -> torch.Tensor:
        L = tokens_BxL.shape[1]
        return self.trunk(self._inputs(tokens_BxL, labels_B), self.causal_LxL[:L, :L])

    def revealed_mask(self, prefix: int) -> torch.Tensor:
        """Bool L: the first `prefix` tokens."""
        return torch.arange(self.seq_len, device=self.device) < prefix

    def ranking_positions(self, prefix: int) -> torch.Tensor:
        """Bool L: every token after the prefix."""
        return ~self.revealed_mask(prefix)

    @classmethod
    def from_run_config(cls, cfg, num_classes: int) -> RasterTransformer:
        grid = cfg.data.size // 4
        return cls(seq_len=grid * grid, **cls.trunk_config(cfg, num_classes), **cls.sink_config(cfg))

    @torch.no_grad()
    def _fill(self, tokens_BxL: torch.Tensor, labels_B: torch.Tensor, prefix: int, choose, use_cache: bool = True):
        """Keep tokens < prefix, choose(logits_Bx1xV) -> B x 1 the rest, left to right."""
        out = tokens_BxL.clone()
        L = self.seq_len
        if prefix >= L:
            return out
        if not use_cache:
            for i in range(prefix, L):
                out[:, i] = choose(self(out[:, : i + 1], labels_B)[:, -1:])[:, 0]
            return out
        cache = KVCache(len(self.trunk.blocks))
        # prefill: class token and the kept tokens in one causal pass; its last position predicts token `prefix`
        h = torch.cat([self.cls_emb(labels_B)[:, None], self.tok_emb(out[:, :prefix])], 1) + self.pos_emb[: prefix + 1]
        logits_Bx1xV = self.trunk(h, self.causal_LxL[: prefix + 1, : prefix + 1], cache)[:, -1:]
        for i in range(prefix, L):
            out[:, i] = choose(logits_Bx1xV)[:, 0]
            if i + 1 < L:
                logits_Bx1xV = self.trunk(self._inputs(out[:, i: i + 1], labels_B, start=i + 1), None, cache)
        return out

    def units(self) -> "OrderedDict":
        return self.mlp_units(self.trunk.blocks, "trunk.blocks")
