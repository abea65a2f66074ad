"""Transformer pieces shared by our IAR models: pre-LN blocks whose MLP has a separate activation module
(`mlp.act`, so a forward hook on it sees the hidden activation after the nonlinearity, B x L x U) and
self-attention with an optional key/value cache for generation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KVCache:
    """Keys and values of the positions seen so far, one entry per block."""

    def __init__(self, n_layers: int):
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers

    def extend(self, layer: int, k_BxHxTxDh: torch.Tensor, v_BxHxTxDh: torch.Tensor):
        if self.k[layer] is not None:
            k_BxHxTxDh = torch.cat([self.k[layer], k_BxHxTxDh], 2)
            v_BxHxTxDh = torch.cat([self.v[layer], v_BxHxTxDh], 2)
        self.k[layer], self.v[layer] = k_BxHxTxDh, v_BxHxTxDh
        return k_BxHxTxDh, v_BxHxTxDh


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x_BxLxD, mask_LxT=None, cache: KVCache | None = None, layer: int = 0):
        B, L, D = x_BxLxD.shape
        q, k, v = self.qkv(x_BxLxD).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            k, v = cache.extend(layer, k, v)
        y_BxHxLxDh = F.scaled_dot_product_attention(q, k, v, attn_mask=mask_LxT)
        return self.out(y_BxHxLxDh.transpose(1, 2).reshape(B, L, D))


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc = nn.Linear(width, hidden)  # rows = units: UnitSpec.weight / bias
        self.act = nn.GELU()  # hooked: its output is the unit activation
        self.proj = nn.Linear(hidden, width)

    def forward(self, x_BxLxD):
        return self.proj(self.act(self.fc(x_BxLxD)))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = MLP(width, mlp_ratio * width)

    def forward(self, x_BxLxD, mask_LxT=None, cache: KVCache | None = None, layer: int = 0):
        x_BxLxD = x_BxLxD + self.attn(self.ln1(x_BxLxD), mask_LxT, cache, layer)
        return x_BxLxD + self.mlp(self.ln2(x_BxLxD))


class Trunk(nn.Module):
    """depth blocks + final LayerNorm + head to vocabulary logits."""

    def __init__(self, width: int, depth: int, heads: int, mlp_ratio: int, vocab_size: int):
        super().__init__()
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio) for _ in range(depth))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size)

    def forward(self, h_BxLxD, mask_LxT=None, cache: KVCache | None = None):
        for i, blk in enumerate(self.blocks):
            h_BxLxD = blk(h_BxLxD, mask_LxT, cache, i)
        return self.head(self.ln_f(h_BxLxD))
