"""Transformer pieces shared by our IAR models: pre-LN blocks whose MLP has a separate activation module
(`mlp.act`, so a forward hook on it sees the hidden activation after the nonlinearity, B x L x U) and
self-attention with an optional key/value cache for generation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KVCache:
    """Keys and values of the positions seen so far, one entry per block. Appending with torch.cat is kept on
    purpose: buffers preallocated to the sequence length and written in place were slower at the 8x8 setting's
    size (64 tokens, width 64, batch 32: 0.14 vs 0.12 CPU-s per batch, medians of 8 alternating runs), since a
    slice of a longer buffer is not contiguous."""

    def __init__(self, n_layers: int):
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers

    def extend(self, layer: int, k_BxHxTxDh: torch.Tensor, v_BxHxTxDh: torch.Tensor):
        if self.k[layer] is not None:
            k_BxHxTxDh = torch.cat([self.k[layer], k_BxHxTxDh], 2)
            v_BxHxTxDh = torch.cat([self.v[layer], v_BxHxTxDh], 2)
        self.k[layer], self.v[layer] = k_BxHxTxDh, v_BxHxTxDh
        return k_BxHxTxDh, v_BxHxTxDh


class FactorizedClassEmbedding(nn.Module):
    """Class c < prod(sizes) is a combination of factor values (mixed radix, first factor most significant)
    and embeds as the scaled sum of one vector per factor, so a combination no training image shows still
    has an embedding; classes from prod(sizes) on (arbitrary labels) keep one vector each."""

    def __init__(self, sizes: tuple[int, ...], num_classes: int, width: int):
        super().__init__()
        self.sizes = tuple(int(s) for s in sizes)
        self.n_combos = int(torch.tensor(self.sizes).prod())
        self.factors = nn.ModuleList(nn.Embedding(s, width) for s in self.sizes)
        self.extra = nn.Embedding(max(num_classes - self.n_combos, 1), width)

    def forward(self, labels_B: torch.Tensor) -> torch.Tensor:
        is_combo = labels_B < self.n_combos
        c = torch.where(is_combo, labels_B, torch.zeros_like(labels_B))
        out, radix = 0.0, self.n_combos
        for size, emb in zip(self.sizes, self.factors):
            radix //= size
            out = out + emb((c // radix) % size)
        out = out / len(self.sizes) ** 0.5
        extra = self.extra((labels_B - self.n_combos).clamp_min(0))
        return torch.where(is_combo[:, None], out, extra)


def class_embedding(num_classes: int, width: int, class_factors=None) -> nn.Module:
    """nn.Embedding, or a FactorizedClassEmbedding when the labels are factor combinations."""
    if not class_factors:
        return nn.Embedding(num_classes, width)
    return FactorizedClassEmbedding(tuple(class_factors), num_classes, width)


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


def n_sinks(hidden: int, fraction: float) -> int:
    """Sink units of an MLP with `hidden` units of which `fraction` are sinks (MemSinks); 0 for fraction 0."""
    return int(round(hidden * fraction))


def n_active(n_sinks: int, active: float) -> int:
    """Sinks one image switches on: `active` of them, rounded, at least one."""
    return max(1, int(round(n_sinks * active))) if n_sinks else 0


class SinkAct(nn.Module):
    """The sinks' nonlinearity times a gate (MemSinks; memlab.iar.mitigate.memsinks sets it): 0.0 (sinks off:
    the default, so a built or loaded model is the evaluated one), a float (every sink at that gate), or
    per-row masks B x 1 x U during training. Hooked like `MLP.act`: its output is the (gated) activation."""

    def __init__(self, n_units: int, active: float):
        super().__init__()
        self.act = nn.GELU()
        self.n_units, self.active = n_units, float(active)
        self.gate: float | torch.Tensor = 0.0

    def state(self) -> str:
        if isinstance(self.gate, torch.Tensor):
            return "train"
        return "off" if self.gate == 0.0 else "on"

    def forward(self, x_BxLxU):
        gate = self.gate
        return self.act(x_BxLxU) * (gate.to(x_BxLxU) if isinstance(gate, torch.Tensor) else gate)


class MLP(nn.Module):
    """`hidden` units, of which `sinks` (MemSinks) form a separate branch: fc/act/proj are the shared units,
    sink_fc/sink_act/sink_proj the sinks. sink_proj has no bias, so gated-off sinks contribute exactly zero, and
    the parameter count is the standard MLP's of `hidden` units."""

    def __init__(self, width: int, hidden: int, sinks: int = 0, sink_active: float = 0.5):
        super().__init__()
        if not 0 <= sinks < hidden:
            raise ValueError(f"sinks must be in [0, {hidden - 1}] of {hidden} hidden units, got {sinks}")
        self.fc = nn.Linear(width, hidden - sinks)  # rows = units: UnitSpec.weight / bias
        self.act = nn.GELU()  # hooked: its output is the unit activation
        self.proj = nn.Linear(hidden - sinks, width)
        self.sinks = sinks
        if sinks:
            self.sink_fc = nn.Linear(width, sinks)
            self.sink_act = SinkAct(sinks, sink_active)
            self.sink_proj = nn.Linear(sinks, width, bias=False)

    def forward(self, x_BxLxD):
        y_BxLxD = self.proj(self.act(self.fc(x_BxLxD)))
        if self.sinks:
            y_BxLxD = y_BxLxD + self.sink_proj(self.sink_act(self.sink_fc(x_BxLxD)))
        return y_BxLxD


class Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: int, sink_fraction: float = 0.0, sink_active: float = 0.5):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        hidden = mlp_ratio * width
        self.mlp = MLP(width, hidden, n_sinks(hidden, sink_fraction), sink_active)

    def forward(self, x_BxLxD, mask_LxT=None, cache: KVCache | None = None, layer: int = 0):
        x_BxLxD = x_BxLxD + self.attn(self.ln1(x_BxLxD), mask_LxT, cache, layer)
        return x_BxLxD + self.mlp(self.ln2(x_BxLxD))


class Trunk(nn.Module):
    """depth blocks + final LayerNorm + head to vocabulary logits; `sink_fraction` of every MLP's hidden units
    are MemSinks sinks (0: none)."""

    def __init__(self, width: int, depth: int, heads: int, mlp_ratio: int, vocab_size: int,
                 sink_fraction: float = 0.0, sink_active: float = 0.5):
        super().__init__()
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio, sink_fraction, sink_active) for _ in range(depth))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size)

    def forward(self, h_BxLxD, mask_LxT=None, cache: KVCache | None = None):
        for i, blk in enumerate(self.blocks):
            h_BxLxD = blk(h_BxLxD, mask_LxT, cache, i)
        return self.head(self.ln_f(h_BxLxD))
