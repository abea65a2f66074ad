"""MaskedTokenModel: an adapter around diffusers' UVit2DModel (the aMUSEd transformer), sampled with
diffusers' AmusedScheduler.

Position: a learned grid embedding is added to UVit2DModel's token embedding (see _PositionalEmbed).
Conditioning: a learned class embedding is fed both as the single-token `encoder_hidden_states` (cross
attention) and as `pooled_text_emb`; the five micro-conditioning values aMUSEd expects (original width and
height, crop top and left, aesthetic score) are fixed to (image size, image size, 0, 0, 6).

Prefixes follow one fixed reveal order (a permutation drawn from `reveal_seed`). Teacher forcing reveals the
first half of that order and masks the rest, in one forward pass; masked positions get the model's logits,
revealed positions a one-hot on their (visible) token, so their accuracy is exact by construction.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from diffusers import AmusedScheduler, ModelMixin, UVit2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from memlab.iar.interface import UnitSpec
from memlab.iar.models.base import TokenizedIAR, per_seed_generators
from memlab.iar.models.layers import class_embedding

MICRO_COND_ENCODE_DIM = 16
AESTHETIC_SCORE = 6.0


class _PositionalEmbed(nn.Module):
    """UVit2DModel's token embedding plus a learned grid position embedding. aMUSEd has no position embedding
    (its convolutions give positions away on a 16x16 latent grid); on our 4x4 grid, with most tokens masked,
    zero-padded 3x3 convolutions cannot tell the inner positions apart, and the model cannot memorize."""

    def __init__(self, embed: nn.Module, channels: int, grid: int):
        super().__init__()
        self.inner = embed
        self.pos_1xCxGxG = nn.Parameter(torch.randn(1, channels, grid, grid) * 0.02)

    def forward(self, input_ids_BxGxG: torch.Tensor) -> torch.Tensor:
        return self.inner(input_ids_BxGxG) + self.pos_1xCxGxG


class MaskedIAR(TokenizedIAR):
    """The masked-token (MaskGIT / aMUSEd) half of an IARModel, shared by MaskedTokenModel and adapters of
    diffusers pipelines (memlab.iar.adapters.amused): fixed reveal order, teacher forcing on half of it,
    greedy continuation and seeded sampling on the scheduler's schedule, GEGLU units of a UVit2DModel.
    Subclasses provide `forward(ids_BxL, labels_B)` (ids may hold `mask_id`) -> logits B x L x V, `uvit`,
    `seq_len`, `mask_id`, `generate_steps`, the `reveal_order_L` buffer and `scheduler()`."""

    masking_schedule = "cosine"

    def sampling_logits(self, input_ids_BxL: torch.Tensor, labels_B: torch.Tensor) -> torch.Tensor:
        """Logits that continuation and sampling follow (the plain conditional ones here)."""
        return self(input_ids_BxL, labels_B)

    def revealed_mask(self, prefix: int) -> torch.Tensor:
        """Bool L: the first `prefix` positions of the reveal order."""
        m = torch.zeros(self.seq_len, dtype=torch.bool, device=self.reveal_order_L.device)
        m[self.reveal_order_L[:prefix]] = True
        return m

    def teacher_forced_logits(self, tokens_BxL: torch.Tensor, labels_B: torch.Tensor) -> torch.Tensor:
        self.check_tokens(tokens_BxL, labels_B)
        shown_L = self.revealed_mask(self.seq_len // 2).to(tokens_BxL.device)
        logits = self(torch.where(shown_L, tokens_BxL, self.mask_id), labels_B)
        onehot = torch.full_like(logits, -1e4).scatter(-1, tokens_BxL[..., None], 0.0)
        return torch.where(shown_L[None, :, None], onehot, logits)

    def scored_positions(self) -> torch.Tensor:
        """Bool L: the masked half, whose teacher-forced logits are predictions."""
        return ~self.revealed_mask(self.seq_len // 2)

    def ranking_positions(self, prefix: int) -> torch.Tensor:
        """Bool L: the masked half of teacher forcing that the prefix does not reveal (the whole masked half for
        prefix <= L / 2, the default)."""
        return self.scored_positions() & ~self.revealed_mask(prefix)

    def training_loss(self, tokens_BxL: torch.Tensor, labels_B: torch.Tensor, generator: torch.Generator):
        """aMUSEd objective: mask each sample's tokens with probability cos(pi/2 u), u ~ U(0, 1) (at least one),
        cross entropy on the masked positions."""
        B, L = tokens_BxL.shape
        ratio_B = torch.cos(torch.rand(B, generator=generator) * math.pi / 2)
        masked_BxL = torch.rand(B, L, generator=generator) < ratio_B[:, None]
        masked_BxL[torch.arange(B), torch.randint(L, (B,), generator=generator)] = True
        masked_BxL = masked_BxL.to(tokens_BxL.device)
        logits_BxLxV = self(torch.where(masked_BxL, self.mask_id, tokens_BxL), labels_B)
        return F.cross_entropy(logits_BxLxV[masked_BxL], tokens_BxL[masked_BxL])

    def _n_masked_after(self, step: int, steps: int) -> int:
        """AmusedScheduler's masking schedule (cosine, or linear): tokens still masked after `step` of `steps`."""
        ratio = (step + 1) / steps
        kept = math.cos(ratio * math.pi / 2) if self.masking_schedule == "cosine" else 1.0 - ratio
        return int(math.floor(self.seq_len * kept))

    @torch.no_grad()
    def continue_greedy(self, tokens_BxL, labels_B, prefix: int, steps: int | None = None) -> torch.Tensor:
        """Reveal the first `prefix` tokens of the reveal order; then, MaskGIT-style without noise, predict all
        masked tokens by argmax and keep the most confident ones, on the scheduler's masking schedule."""
        self.check_tokens(tokens_BxL, labels_B)
        steps = steps or self.generate_steps
        out = torch.where(self.revealed_mask(prefix).to(tokens_BxL.device), tokens_BxL, self.mask_id)
        for step in range(steps):
            unknown_BxL = out == self.mask_id
            if not unknown_BxL.any():
                break
            probs_BxLxV = self.sampling_logits(out, labels_B).float().softmax(-1)
            conf_BxL, pred_BxL = probs_BxLxV.max(-1)
            conf_BxL = conf_BxL.masked_fill(~unknown_BxL, float("inf"))
            keep_masked = min(self._n_masked_after(step, steps), int(unknown_BxL.sum(1).min()) - 1)
            if step == steps - 1:
                keep_masked = 0
            order_BxL = conf_BxL.argsort(1)  # least confident first; stable across ties by position
            still_BxL = torch.zeros_like(unknown_BxL).scatter(1, order_BxL[:, :max(keep_masked, 0)], True)
            out = torch.where(unknown_BxL & ~still_BxL, pred_BxL, out)
        return out

    @torch.no_grad()
    def generate(self, labels_B: torch.Tensor, seeds: list[int], steps: int | None = None) -> torch.Tensor:
        """AmusedScheduler sampling; each row is stepped with its own generator (sample i <- seeds[i])."""
        steps = steps or self.generate_steps
        sched = self.scheduler()
        sched.set_timesteps(steps)
        gens = per_seed_generators(seeds)
        out = torch.full((len(labels_B), self.seq_len), self.mask_id, dtype=torch.long, device=labels_B.device)
        for t in sched.timesteps:
            logits_BxLxV = self.sampling_logits(out, labels_B)
            out = torch.cat([sched.step(logits_BxLxV[b:b + 1], t, out[b:b + 1], generator=g).prev_sample
                             for b, g in enumerate(gens)])
        return out

    def units(self) -> "OrderedDict[str, UnitSpec]":
        """UVit2DModel's transformer layers use a GEGLU feed-forward: ff.net[0] outputs h * gelu(gate) (B x L x U)
        from proj = Linear(D, 2U); rows [:U] feed h, so scaling row u scales unit u exactly. `weight`/`bias` are
        views sharing storage with proj's first half; proj is the pre-module (its first U outputs are h)."""
        return uvit_units(self.uvit, "uvit")


class MaskedTokenModel(ModelMixin, MaskedIAR, ConfigMixin):
    config_name = "config.json"
    arch = "masked"

    @register_to_config
    def __init__(self, vocab_size: int = 256, grid: int = 4, num_classes: int = 10, width: int = 128,
                 depth: int = 4, heads: int = 4, mlp_ratio: int = 4, image_size: int = 16, reveal_seed: int = 0,
                 generate_steps: int = 8, class_factors: tuple[int, ...] | None = None):
        super().__init__()
        self.uvit = UVit2DModel(
            hidden_size=width, use_bias=False, cond_embed_dim=width, micro_cond_encode_dim=MICRO_COND_ENCODE_DIM,
            micro_cond_embed_dim=5 * MICRO_COND_ENCODE_DIM, encoder_hidden_size=width, vocab_size=vocab_size + 1,
            codebook_size=vocab_size, in_channels=width, block_out_channels=width, num_res_blocks=1,
            downsample=False, upsample=False, block_num_heads=heads, num_hidden_layers=depth,
            num_attention_heads=heads, intermediate_size=mlp_ratio * width, sample_size=grid)
        self.uvit.embed = _PositionalEmbed(self.uvit.embed, width, grid)
        self.cls_emb = class_embedding(num_classes, width, class_factors)
        g = torch.Generator().manual_seed(reveal_seed)
        self.register_buffer("reveal_order_L", torch.randperm(grid * grid, generator=g), persistent=False)
        self.register_buffer("micro_conds_5", torch.tensor([image_size, image_size, 0.0, 0.0, AESTHETIC_SCORE]),
                             persistent=False)

    @property
    def seq_len(self) -> int:
        return self.config.grid ** 2

    @property
    def mask_id(self) -> int:
        return self.config.vocab_size

    def forward(self, input_ids_BxL: torch.Tensor, labels_B: torch.Tensor) -> torch.Tensor:
        """input_ids may hold mask_id; -> logits B x L x V."""
        B, G = input_ids_BxL.shape[0], self.config.grid
        c_BxD = self.cls_emb(labels_B)
        logits_BxVxGxG = self.uvit(input_ids_BxL.view(B, G, G), encoder_hidden_states=c_BxD[:, None],
                                   pooled_text_emb=c_BxD, micro_conds=self.micro_conds_5.expand(B, 5))
        return logits_BxVxGxG.flatten(2).transpose(1, 2)

    @property
    def generate_steps(self) -> int:
        return self.config.generate_steps

    def scheduler(self) -> AmusedScheduler:
        return AmusedScheduler(mask_token_id=self.mask_id)

    @classmethod
    def from_run_config(cls, cfg, num_classes: int) -> MaskedTokenModel:
        return cls(grid=cfg.data.size // 4, image_size=cfg.data.size, reveal_seed=cfg.train.seed,
                   **cls.trunk_config(cfg, num_classes))


def uvit_units(uvit: UVit2DModel, path: str) -> "OrderedDict[str, UnitSpec]":
    """The GEGLU units of every transformer layer of `uvit` (see MaskedIAR.units); `path`: uvit's module path."""
    out = OrderedDict()
    for i, layer in enumerate(uvit.transformer_layers):
        geglu = layer.ff.net[0]
        U = geglu.proj.out_features // 2
        w = nn.Parameter(geglu.proj.weight.data[:U], requires_grad=False)
        b = None if geglu.proj.bias is None else nn.Parameter(geglu.proj.bias.data[:U], requires_grad=False)
        out[f"block.{i}.mlp"] = UnitSpec(module=geglu, pre_module=geglu.proj, weight=w, bias=b, block=i,
                                         path=f"{path}.transformer_layers.{i}.ff.net.0")
    return out
