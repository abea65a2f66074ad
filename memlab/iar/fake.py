"""A fake IAR model for testing the localization tooling without training or weights.

Tokenizer: grey level of each pixel (per scale, average-pooled) quantized to V levels, so tokens are
exact and cheap. Network: the input of position i is one-hot(previous token, label, position) and goes
through residual MLP blocks (Linear -> ReLU -> Linear); the ReLU outputs are the units, and their weights
can be set by hand to build a unit with a known UnitMem score. In oracle mode the logits also carry a large
vote for the true next token of the training sequence that best matches the context seen so far, so the
model "has memorized" its training set perfectly: teacher-forced accuracy 1 and exact greedy continuation.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from memlab.iar.interface import IARModel, UnitSpec, pooled_pixels
from memlab.iar.tokenizer import scale_slices

ORACLE_LOGIT = 50.0


class FakeBlock(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc = nn.Linear(dim, hidden)
        self.act = nn.ReLU()
        self.proj = nn.Linear(hidden, dim)

    def forward(self, h_BxLxD: torch.Tensor) -> torch.Tensor:
        return h_BxLxD + self.proj(self.act(self.fc(h_BxLxD)))


class FakeIAR(IARModel):
    """arch 'raster' (one scale, side x side tokens) or 'next-scale' (sides 1, 2, 4, ..., side).
    `oracle_tokens_KxL` (and optional labels) switch on the memorizing oracle."""

    def __init__(self, arch: str = "raster", side: int = 4, vocab: int = 8, n_classes: int = 2,
                 n_blocks: int = 2, hidden: int = 16, seed: int = 0,
                 oracle_tokens_KxL: torch.Tensor | None = None, oracle_labels_K: torch.Tensor | None = None):
        super().__init__()
        if arch not in ("raster", "next-scale"):
            raise ValueError(f"FakeIAR arch must be raster or next-scale, got {arch!r}")
        self.arch = arch
        self.prefix_unit = "tokens" if arch == "raster" else "scales"
        self.side, self.n_classes, self._vocab = side, n_classes, vocab
        self.sides = [side] if arch == "raster" else [2 ** i for i in range(side.bit_length()) if 2 ** i <= side]
        if self.sides[-1] != side:
            raise ValueError(f"next-scale FakeIAR needs a power-of-two side, got {side}")
        self._len = sum(s * s for s in self.sides)
        self.dim = vocab + 1 + n_classes + self._len  # one-hot: previous token (or BOS), label, position
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.blocks = nn.ModuleList(FakeBlock(self.dim, hidden) for _ in range(n_blocks))
            self.head = nn.Linear(self.dim, vocab)
        self.oracle_tokens_KxL = oracle_tokens_KxL
        self.oracle_labels_K = oracle_labels_K

    # --- interface -------------------------------------------------------------------------------------
    @property
    def seq_len(self) -> int:
        return self._len

    @property
    def vocab_size(self) -> int:
        return self._vocab

    def scale_slices(self) -> list[slice]:
        return scale_slices(self.sides)

    def tokenize(self, images_Bx3xHxW: torch.Tensor) -> torch.Tensor:
        grey_Bx1xHxW = images_Bx3xHxW.float().mean(dim=1, keepdim=True)
        maps = [F.adaptive_avg_pool2d(grey_Bx1xHxW, s).flatten(1) for s in self.sides]
        levels_BxL = torch.cat(maps, dim=1) * (self._vocab - 1)
        return levels_BxL.round().clamp(0, self._vocab - 1).long()

    def decode(self, tokens_BxL: torch.Tensor) -> torch.Tensor:
        fine_BxSxS = tokens_BxL[:, self.scale_slices()[-1]].reshape(-1, 1, self.side, self.side)
        return (fine_BxSxS.float() / (self._vocab - 1)).expand(-1, 3, -1, -1).contiguous()

    def teacher_forced_logits(self, tokens_BxL: torch.Tensor, labels_B: torch.Tensor) -> torch.Tensor:
        B, L = tokens_BxL.shape
        prev_BxL = torch.cat([torch.full((B, 1), self._vocab, dtype=torch.long), tokens_BxL[:, :-1]], dim=1)
        v, c = self._vocab + 1, self.n_classes
        h_BxLxD = torch.cat([
            F.one_hot(prev_BxL, v).float(),
            F.one_hot(labels_B.long(), c).float()[:, None, :].expand(B, L, c),
            torch.eye(L)[None].expand(B, L, L),
        ], dim=2)
        for block in self.blocks:
            h_BxLxD = block(h_BxLxD)
        logits_BxLxV = self.head(h_BxLxD)
        if self.oracle_tokens_KxL is not None:
            logits_BxLxV = logits_BxLxV + ORACLE_LOGIT * self._oracle_onehot(tokens_BxL, labels_B)
        return logits_BxLxV

    def scored_positions(self) -> torch.Tensor:
        """Bool L, all True: position i sees the previous token, never its own."""
        return torch.ones(self._len, dtype=torch.bool)

    def revealed_mask(self, prefix: int) -> torch.Tensor:
        """Bool L: the first `prefix` tokens (raster) or the tokens of the first `prefix` scales."""
        return torch.arange(self._len) < self._prefix_start(prefix)

    def prefix_limit(self) -> int:
        """Tokens (raster) or scales (next-scale)."""
        return len(self.sides) if self.arch == "next-scale" else self._len

    def default_prefix(self) -> int:
        """Half of the scales (next-scale), a quarter of the tokens (raster), as the real models."""
        return max(1, len(self.sides) // 2) if self.arch == "next-scale" else max(1, self._len // 4)

    def ranking_positions(self, prefix: int) -> torch.Tensor:
        """Bool L: the finest scale (next-scale) or every token after the prefix (raster), as the real models."""
        if self.arch == "next-scale":
            return torch.arange(self._len) >= self.scale_slices()[-1].start
        return ~self.revealed_mask(prefix)

    def quality_features(self, images_Bx3xHxW: torch.Tensor) -> torch.Tensor:
        """8 x 8 average-pooled pixels (the fake has no image encoder): B x 192."""
        return pooled_pixels(images_Bx3xHxW)

    def continue_greedy(self, tokens_BxL: torch.Tensor, labels_B: torch.Tensor, prefix: int) -> torch.Tensor:
        start = self._prefix_start(prefix)
        seq_BxL = tokens_BxL.clone()
        with torch.no_grad():
            for i in range(start, self._len):
                seq_BxL[:, i] = self.teacher_forced_logits(seq_BxL, labels_B)[:, i].argmax(-1)
        return seq_BxL

    def generate(self, labels_B: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        seq_BxL = torch.zeros(len(seeds), self._len, dtype=torch.long)
        with torch.no_grad():
            for i in range(self._len):
                probs_BxV = self.teacher_forced_logits(seq_BxL, labels_B)[:, i].softmax(-1)
                for b, g in enumerate(gens):
                    seq_BxL[b, i] = torch.multinomial(probs_BxV[b], 1, generator=g)[0]
        return seq_BxL

    def units(self) -> "OrderedDict[str, UnitSpec]":
        return OrderedDict(
            (f"block.{i}.mlp", UnitSpec(module=b.act, pre_module=b.fc, weight=b.fc.weight, bias=b.fc.bias, block=i,
                                        path=f"blocks.{i}.act"))
            for i, b in enumerate(self.blocks))

    # --- helpers ---------------------------------------------------------------------------------------
    def _prefix_start(self, prefix: int) -> int:
        if self.arch == "raster":
            return int(prefix)
        slices = self.scale_slices()
        return slices[prefix].start if prefix < len(slices) else self._len

    def _oracle_onehot(self, tokens_BxL: torch.Tensor, labels_B: torch.Tensor) -> torch.Tensor:
        """One-hot B x L x V of what the best-matching training sequence has at each position: the one
        agreeing on most tokens before that position (same label first), as a memorizer would answer."""
        ref_KxL = self.oracle_tokens_KxL
        L = ref_KxL.shape[1]
        match_BxKxL = (tokens_BxL[:, None, :] == ref_KxL[None]).float()
        seen_BxKxL = F.pad(match_BxKxL.cumsum(-1), (1, 0))[..., :L]  # matches strictly before position i
        if self.oracle_labels_K is not None:
            same_BxK = (labels_B[:, None] == self.oracle_labels_K[None]).float()
            seen_BxKxL = seen_BxKxL + (L + 1) * same_BxK[..., None]
        best_BxL = seen_BxKxL.argmax(dim=1)  # ties -> lowest k
        target_BxL = torch.gather(ref_KxL.expand(tokens_BxL.shape[0], -1, -1), 1, best_BxL[:, None, :])[:, 0]
        return F.one_hot(target_BxL, self._vocab).float()


def lookup_memorizer(tokens_KxL: torch.Tensor, arch: str = "raster", side: int = 4, vocab: int = 8,
                     n_classes: int = 2, n_filler: int = 64, seed: int = 0) -> FakeIAR:
    """A FakeIAR whose memory lives in known units: block 0 has one "lookup" unit per (image k, position
    i) that fires only when the context is (position i, previous token of image k) and writes image k's
    token i into the logits, followed by `n_filler` weak random units that carry no memory. So units
    0 .. K*L-1 of block.0.mlp are the memorization units; silencing them stops regurgitation."""
    K, L = tokens_KxL.shape
    model = FakeIAR(arch=arch, side=side, vocab=vocab, n_classes=n_classes, n_blocks=2, hidden=K * L + n_filler,
                    seed=seed)
    pos0, bos = vocab + 1 + n_classes, vocab
    with torch.no_grad():
        fc, proj = model.blocks[0].fc, model.blocks[0].proj
        fc.weight[:K * L].zero_()
        fc.bias[:K * L] = -1.5  # needs both the position and the token input (1 + 1 - 1.5 = 0.5 > 0)
        proj.weight.mul_(0.01)  # filler units barely touch the residual stream
        proj.weight[:, :K * L].zero_()
        for k in range(K):
            for i in range(L):
                u = k * L + i
                prev = bos if i == 0 else int(tokens_KxL[k, i - 1])
                fc.weight[u, prev] = fc.weight[u, pos0 + i] = 1.0
                proj.weight[int(tokens_KxL[k, i]), u] = 20.0  # token dims of the residual carry the answer
        model.blocks[1].proj.weight.mul_(0.01)
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.weight[:, :vocab] = torch.eye(vocab)
    return model
