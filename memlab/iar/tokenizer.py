"""Image tokenizer: diffusers' VQModel encoder/decoder with one codebook, quantizing a latent grid either in
one scale (plain VQ, `scales=(g,)`) or VAR-style in growing scales, each scale quantizing the residual that
the coarser ones left (same codebook for all scales).

Pixels in [0, 1] outside, [-1, 1] inside the VQModel. Tokens: B x L with L = sum(s^2 for s in scales),
scales concatenated coarse to fine, each scale row-major.

Quantizer loss: diffusers' VectorQuantizer defaults to `legacy=True`, which (for backwards compatibility)
puts beta on the codebook term instead of the commitment term. We set `legacy=False`, the VQ-VAE form:
|sg(z_q) - z|^2 * beta (commitment, beta = 0.25) + |z_q - sg(z)|^2 (codebook).

Decoder norms (`norm_type`): "group" (GroupNorm, the default) or "spatial" (MoVQ, Zheng et al. 2022, diffusers'
SpatialNorm: every GroupNorm of the decoder is scaled and shifted by convolutions of the quantized latents).
The plain encoder/decoder learns the shapes' colours late: at 32x32 after 30 epochs it decodes them near grey,
with or without its GroupNorms, and unquantized latents decode no better (the codebook is not the cause). The
spatial norm's path from the latents into every decoder layer keeps them within the same 30 epochs
(docs/iar_models.md, "The 8x8 setting"). diffusers' SpatialNorm has 32 groups, so "spatial" needs
block_out_channels that are multiples of 32.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # memlab never loads anything from a hub

import torch
import torch.nn.functional as F
from diffusers import ModelMixin, VQModel
from diffusers.configuration_utils import ConfigMixin, register_to_config

NORM_TYPES = ("group", "spatial")


def _resize(z_BxCxHxW: torch.Tensor, s: int) -> torch.Tensor:
    if z_BxCxHxW.shape[-1] == s:
        return z_BxCxHxW
    if s < z_BxCxHxW.shape[-1]:
        return F.interpolate(z_BxCxHxW, size=(s, s), mode="area")
    return F.interpolate(z_BxCxHxW, size=(s, s), mode="bicubic", align_corners=False)


def scale_slices(sides) -> list[slice]:
    """Positions of each s x s token map in the flat coarse-to-fine sequence."""
    out, start = [], 0
    for s in sides:
        out.append(slice(start, start + s * s))
        start += s * s
    return out


class ImageTokenizer(ModelMixin, ConfigMixin):
    config_name = "config.json"

    @register_to_config
    def __init__(self, sample_size: int = 16, scales: tuple[int, ...] = (4,), codebook_size: int = 256,
                 latent_channels: int = 16, block_out_channels: tuple[int, ...] = (32, 64, 64),
                 norm_num_groups: int = 8, norm_type: str = "group"):
        super().__init__()
        if norm_type not in NORM_TYPES:
            raise ValueError(f"norm_type must be one of {', '.join(NORM_TYPES)}, got {norm_type!r}")
        if norm_type == "spatial" and any(c % 32 for c in block_out_channels):
            raise ValueError(f"norm_type 'spatial' needs block_out_channels that are multiples of 32 "
                             f"(diffusers' SpatialNorm has 32 groups), got {tuple(block_out_channels)}")
        grid = sample_size // 2 ** (len(block_out_channels) - 1)
        if tuple(scales)[-1] != grid:
            raise ValueError(f"scales must end at the latent grid size {grid}, got {scales}")
        n = len(block_out_channels)
        self.vq = VQModel(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                          up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=tuple(block_out_channels),
                          layers_per_block=1, latent_channels=latent_channels, sample_size=sample_size,
                          num_vq_embeddings=codebook_size, norm_num_groups=norm_num_groups,
                          mid_block_add_attention=False, norm_type=norm_type)
        self.vq.quantize.legacy = False  # see module docstring

    @property
    def scales(self) -> tuple[int, ...]:
        return tuple(self.config.scales)

    @property
    def grid(self) -> int:
        return self.scales[-1]

    @property
    def seq_len(self) -> int:
        return sum(s * s for s in self.scales)

    @property
    def codebook(self) -> torch.Tensor:
        return self.vq.quantize.embedding.weight

    def scale_slices(self) -> list[slice]:
        return scale_slices(self.scales)

    def encode_latent(self, images_Bx3xHxW: torch.Tensor) -> torch.Tensor:
        return self.vq.encode(images_Bx3xHxW * 2 - 1).latents

    def quantize(self, f_BxCxGxG: torch.Tensor):
        """Residual quantization over the scales. Returns (f_hat with straight-through gradients, tokens BxL,
        mean quantizer loss, residual vectors N x C seen by the codebook, for dead-code restarts)."""
        f_hat = torch.zeros_like(f_BxCxGxG)
        rest = f_BxCxGxG
        tokens, losses, residuals = [], [], []
        for s in self.scales:
            r_s = _resize(rest, s)
            z_q, loss, (_, _, idx) = self.vq.quantize(r_s)
            up = _resize(z_q, self.grid)
            f_hat = f_hat + up
            rest = rest - up
            tokens.append(idx.view(f_BxCxGxG.shape[0], s * s))
            losses.append(loss)
            residuals.append(r_s.detach().permute(0, 2, 3, 1).reshape(-1, r_s.shape[1]))
        return f_hat, torch.cat(tokens, 1), torch.stack(losses).mean(), torch.cat(residuals)

    def _decoder(self, f_BxCxGxG: torch.Tensor) -> torch.Tensor:
        """Latents -> pixels in [-1, 1]; spatial norm conditions the decoder's norms on the latents too."""
        zq = f_BxCxGxG if self.config.norm_type == "spatial" else None
        return self.vq.decoder(self.vq.post_quant_conv(f_BxCxGxG), zq)

    def decode_latent(self, f_BxCxGxG: torch.Tensor) -> torch.Tensor:
        return ((self._decoder(f_BxCxGxG) + 1) / 2).clamp(0, 1)

    def forward(self, images_Bx3xHxW: torch.Tensor):
        """Training pass: (reconstruction in [0,1] without clamping gradients, quantizer loss, tokens, residuals)."""
        f_hat, tokens, q_loss, residuals = self.quantize(self.encode_latent(images_Bx3xHxW))
        recon = (self._decoder(f_hat) + 1) / 2
        return recon, q_loss, tokens, residuals

    @torch.no_grad()
    def tokenize(self, images_Bx3xHxW: torch.Tensor) -> torch.Tensor:
        return self.quantize(self.encode_latent(images_Bx3xHxW))[1]

    def latent_from_tokens(self, tokens_BxL: torch.Tensor, n_scales: int | None = None) -> torch.Tensor:
        """Sum of the upsampled code vectors of the first n_scales scales (all by default)."""
        B = tokens_BxL.shape[0]
        f_hat = 0.0
        for s, sl in list(zip(self.scales, self.scale_slices()))[: n_scales or len(self.scales)]:
            z = self.codebook[tokens_BxL[:, sl]].view(B, s, s, -1).permute(0, 3, 1, 2)
            f_hat = f_hat + _resize(z, self.grid)
        return f_hat

    @torch.no_grad()
    def decode(self, tokens_BxL: torch.Tensor, n_scales: int | None = None) -> torch.Tensor:
        if tokens_BxL.shape[1] != self.seq_len:
            raise ValueError(f"expected {self.seq_len} tokens per image, got {tokens_BxL.shape[1]}")
        return self.decode_latent(self.latent_from_tokens(tokens_BxL, n_scales))

    @torch.no_grad()
    def init_codebook(self, images_Bx3xHxW: torch.Tensor, generator: torch.Generator) -> None:
        """Put every code on a random encoder residual of these images (the default uniform init near 0 often
        collapses onto a handful of codes)."""
        residuals = self.quantize(self.encode_latent(images_Bx3xHxW))[3]
        self.restart_dead_codes(torch.zeros(len(self.codebook), dtype=torch.bool), residuals, generator)

    @torch.no_grad()
    def restart_dead_codes(self, used_V: torch.Tensor, residuals_NxC: torch.Tensor, generator: torch.Generator) -> int:
        """Move codes no token used in the last epoch onto random residual vectors (avoids codebook collapse)."""
        dead = (~used_V).nonzero().flatten()
        if len(dead) == 0 or len(residuals_NxC) == 0:
            return 0
        pick = torch.randint(len(residuals_NxC), (len(dead),), generator=generator)
        self.codebook[dead] = residuals_NxC[pick].to(self.codebook.dtype)
        return int(len(dead))
