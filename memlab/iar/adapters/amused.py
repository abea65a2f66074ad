"""AmusedIAR: a saved diffusers aMUSEd pipeline (VQModel, UVit2DModel, CLIP text encoder and tokenizer,
AmusedScheduler) behind the IARModel interface, conditioned by captions instead of class labels.

Conditioning follows AmusedPipeline.__call__: the caption is tokenized to the tokenizer's model_max_length
(padded), `encoder_hidden_states` is the text encoder's penultimate hidden state (B x T x D_text), the pooled
text embedding its projected `text_embeds` (B x P), and the five micro-conditioning values are (width, height,
crop top, crop left, aesthetic score) = (resolution, resolution, 0, 0, 6), the pipeline's defaults.

Labels are caption ids: `set_captions(texts)` encodes every caption of an image set once, and label c means
texts[c], so everything that takes labels (UnitMem, extraction, the yardstick) works unchanged.
Tokenizing follows AmusedImg2ImgPipeline: pixels in [0, 1] (the pipeline's image processor does not normalize),
`vqvae.encode(x).latents`, the codebook indices of `vqvae.quantize`, row-major over the latent grid.
Prefixes, teacher forcing, greedy continuation and sampling are MaskedIAR's (the shared masked-token half
of memlab's own MaskedTokenModel): a fixed reveal order drawn from `reveal_seed` (aMUSEd has no order of its
own: its scheduler unmasks by confidence), greedy continuation on the scheduler's masking schedule, sampling
with the pipeline's AmusedScheduler, one generator per sample. Units are the GEGLU hidden units of every
transformer layer (`block.i.mlp`, as in MaskedTokenModel).

Only the transformer is a registered sub-module (its parameters are the model's: edits, gradients, fine-tuning);
the VQModel and the text encoder are attached, like TokenizedIAR's tokenizer, and shared (never copied) by a
deep copy: nothing memlab does changes them. `save_pretrained` saves the transformer (a UVit2DModel directory,
the pipeline's own `transformer/` layout) and `with_published` reads one back. Tensors go in on any device and
come back on the device they came from (tokenize and decode, and the position masks: on the CPU), so the
CPU-side tooling works unchanged while the pipeline runs on a GPU.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from memlab.errors import UsageError
from memlab.iar.interface import UnitSpec
from memlab.iar.models.masked import AESTHETIC_SCORE, MaskedIAR, uvit_units


class AmusedIAR(MaskedIAR):
    arch = "masked"  # the architecture family (tables group by it); RUN/config.json names the pipeline itself

    def __init__(self, vqvae, text_encoder, tokenizer, transformer, scheduler, *, reveal_seed: int = 0,
                 generate_steps: int = 12, guidance: float = 1.0, text_batch: int = 64):
        super().__init__()
        self.uvit = transformer
        for name, part in (("_vqvae", vqvae), ("_text_encoder", text_encoder), ("_text_tokenizer", tokenizer)):
            object.__setattr__(self, name, part)  # attached, not registered (see the module docstring)
        self.scheduler_config = dict(scheduler.config)
        self.masking_schedule = scheduler.config.masking_schedule
        self.grid = transformer.config.sample_size
        self.resolution = self.grid * 2 ** (len(vqvae.config.block_out_channels) - 1)
        self._steps, self.guidance, self.text_batch, self.reveal_seed = generate_steps, guidance, text_batch, reveal_seed
        g = torch.Generator().manual_seed(reveal_seed)
        self.register_buffer("reveal_order_L", torch.randperm(self.grid ** 2, generator=g), persistent=False)
        self.register_buffer("micro_conds_5", torch.tensor([self.resolution, self.resolution, 0.0, 0.0,
                                                            AESTHETIC_SCORE]), persistent=False)
        D, P = text_encoder.config.hidden_size, text_encoder.config.projection_dim
        T = tokenizer.model_max_length
        self.register_buffer("cond_hidden_CxTxD", torch.zeros(0, T, D), persistent=False)
        self.register_buffer("cond_pooled_CxP", torch.zeros(0, P), persistent=False)
        self.register_buffer("uncond_hidden_1xTxD", torch.zeros(0, T, D), persistent=False)
        self.register_buffer("uncond_pooled_1xP", torch.zeros(0, P), persistent=False)
        self.captions: list[str] = []

    # --- sizes and parts ---------------------------------------------------------------------------------
    @property
    def seq_len(self) -> int:
        return self.grid ** 2

    @property
    def vocab_size(self) -> int:
        return self.uvit.config.codebook_size

    @property
    def mask_id(self) -> int:
        return self.scheduler_config["mask_token_id"]

    @property
    def generate_steps(self) -> int:
        return self._steps

    @property
    def vqvae(self):
        return self.__dict__["_vqvae"]

    @property
    def text_encoder(self):
        return self.__dict__["_text_encoder"]

    def scheduler(self):
        from diffusers import AmusedScheduler

        return AmusedScheduler.from_config(self.scheduler_config)

    def tokenizer_module(self) -> nn.Module:
        return self.vqvae

    @classmethod
    def from_run_config(cls, cfg, num_classes: int):
        raise UsageError("an aMUSEd pipeline is opened from its directory (--model diffusers:PATH), not built "
                         "from a run config")

    def units(self) -> "OrderedDict[str, UnitSpec]":
        return uvit_units(self.uvit, "uvit")

    # --- copies and saved weights ------------------------------------------------------------------------
    FROZEN = ("_vqvae", "_text_encoder", "_text_tokenizer")

    def __deepcopy__(self, memo):
        for name in self.FROZEN:  # shared: a copy (unlearning, INJ) changes only the transformer
            memo[id(self.__dict__[name])] = self.__dict__[name]
        new = object.__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new

    def save_pretrained(self, directory, **kwargs) -> None:
        """The transformer's weights (the only ones memlab changes) as a UVit2DModel directory."""
        self.uvit.save_pretrained(directory, **kwargs)

    def with_published(self, directory: Path, what: str = "transformer") -> "AmusedIAR":
        """A copy of this model (same pipeline parts and captions) with the transformer weights saved in
        `directory` by save_pretrained; weights of another size are a one-line UsageError."""
        from diffusers import UVit2DModel

        from memlab.iar.checkpoint import load_pretrained

        loaded = load_pretrained(UVit2DModel, Path(directory), what)
        if {k: v for k, v in loaded.config.items() if not k.startswith("_")} != \
                {k: v for k, v in self.uvit.config.items() if not k.startswith("_")}:
            raise UsageError(f"the {what} in {directory} is a UVit2DModel of another config than this pipeline's")
        new = copy.deepcopy(self)
        new.uvit.load_state_dict(loaded.state_dict())  # into the model's own device and precision
        return new.eval()

    # --- captions ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(penultimate hidden states B x T x D, projected pooled embeddings B x P), as AmusedPipeline does."""
        tok = self.__dict__["_text_tokenizer"]
        enc = self.text_encoder
        dev = next(enc.parameters()).device
        ids = tok(list(texts), return_tensors="pt", padding="max_length", truncation=True,
                  max_length=tok.model_max_length).input_ids.to(dev)
        out = enc(ids, return_dict=True, output_hidden_states=True)
        return out.hidden_states[-2], out.text_embeds

    def set_captions(self, texts: list[str]) -> None:
        """Encode every caption once; label c then conditions on texts[c] (and "" is the unconditional text)."""
        dt = next(self.uvit.parameters()).dtype
        parts = [self.encode_text(texts[i:i + self.text_batch]) for i in range(0, len(texts), self.text_batch)]
        hid = torch.cat([h for h, _ in parts]) if parts else self.cond_hidden_CxTxD[:0]
        pooled = torch.cat([p for _, p in parts]) if parts else self.cond_pooled_CxP[:0]
        h0, p0 = self.encode_text([""])
        dev = self.reveal_order_L.device
        self.cond_hidden_CxTxD, self.cond_pooled_CxP = hid.to(dev, dt), pooled.to(dev, dt)
        self.uncond_hidden_1xTxD, self.uncond_pooled_1xP = h0.to(dev, dt), p0.to(dev, dt)
        self.captions = list(texts)

    # --- the network -------------------------------------------------------------------------------------
    def _uvit(self, ids_BxL: torch.Tensor, hidden_BxTxD: torch.Tensor, pooled_BxP: torch.Tensor) -> torch.Tensor:
        B, G = ids_BxL.shape[0], self.grid
        micro = self.micro_conds_5.to(hidden_BxTxD.dtype).expand(B, 5)
        logits_BxVxGxG = self.uvit(ids_BxL.reshape(B, G, G), encoder_hidden_states=hidden_BxTxD,
                                   pooled_text_emb=pooled_BxP, micro_conds=micro)
        return logits_BxVxGxG.flatten(2).transpose(1, 2)

    def forward(self, input_ids_BxL: torch.Tensor, labels_B: torch.Tensor) -> torch.Tensor:
        """Caption-conditioned logits B x L x V (ids may hold mask_id; labels are caption ids), on the device of
        the ids."""
        n = len(self.cond_hidden_CxTxD)
        if n == 0:
            raise RuntimeError("no captions set: call set_captions(texts) first (labels are caption ids)")
        dev = self.reveal_order_L.device
        y = labels_B.to(dev)
        if len(y) and not 0 <= int(y.min()) <= int(y.max()) < n:
            raise ValueError(f"caption ids must be in [0, {n - 1}], got {labels_B.tolist()}")
        logits = self._uvit(input_ids_BxL.to(dev), self.cond_hidden_CxTxD[y], self.cond_pooled_CxP[y])
        return logits.to(input_ids_BxL.device)

    def sampling_logits(self, input_ids_BxL: torch.Tensor, labels_B: torch.Tensor) -> torch.Tensor:
        """Classifier-free guidance as in AmusedPipeline when guidance > 1: uncond + g (cond - uncond), with the
        empty caption as unconditional text. Two passes of B rows (not one of 2B), so per-row unit edits
        (memlab.iar.batched) stay aligned with their rows."""
        cond = self(input_ids_BxL, labels_B)
        if self.guidance <= 1.0:
            return cond
        B, dev = len(input_ids_BxL), self.reveal_order_L.device
        uncond = self._uvit(input_ids_BxL.to(dev), self.uncond_hidden_1xTxD.expand(B, -1, -1),
                            self.uncond_pooled_1xP.expand(B, -1)).to(cond.device)
        return uncond + self.guidance * (cond - uncond)

    def revealed_mask(self, prefix: int) -> torch.Tensor:
        """Bool L on the CPU, as every other output of the adapter (MaskedIAR moves it where it combines it)."""
        return super().revealed_mask(prefix).cpu()

    # the network runs on the model's device: run there, hand back on the caller's device
    def teacher_forced_logits(self, tokens_BxL: torch.Tensor, labels_B: torch.Tensor) -> torch.Tensor:
        dev = self.reveal_order_L.device
        return super().teacher_forced_logits(tokens_BxL.to(dev), labels_B.to(dev)).to(tokens_BxL.device)

    def continue_greedy(self, tokens_BxL, labels_B, prefix: int, steps: int | None = None) -> torch.Tensor:
        dev = self.reveal_order_L.device
        return super().continue_greedy(tokens_BxL.to(dev), labels_B.to(dev), prefix, steps).to(tokens_BxL.device)

    def generate(self, labels_B: torch.Tensor, seeds: list[int], steps: int | None = None) -> torch.Tensor:
        return super().generate(labels_B.to(self.reveal_order_L.device), seeds, steps).to(labels_B.device)

    # --- tokenizer -----------------------------------------------------------------------------------------
    def _pixels(self, images_Bx3xHxW: torch.Tensor) -> torch.Tensor:
        if images_Bx3xHxW.ndim != 4 or tuple(images_Bx3xHxW.shape[1:]) != (3, self.resolution, self.resolution):
            raise ValueError(f"images must be B x 3 x {self.resolution} x {self.resolution} (the pipeline's "
                             f"resolution), got {tuple(images_Bx3xHxW.shape)}")
        p = next(self.vqvae.parameters())
        return images_Bx3xHxW.to(p.device, p.dtype)

    @torch.no_grad()
    def tokenize(self, images_Bx3xHxW: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> codebook indices B x L (long, on the CPU)."""
        latents = self.vqvae.encode(self._pixels(images_Bx3xHxW)).latents
        idx = self.vqvae.quantize(latents)[2][2]
        return idx.reshape(len(images_Bx3xHxW), self.seq_len).long().cpu()

    @torch.no_grad()
    def decode(self, tokens_BxL: torch.Tensor) -> torch.Tensor:
        """Tokens B x L -> images B x 3 x H x W in [0, 1] (float32, on the CPU), as AmusedPipeline decodes."""
        vq = self.vqvae
        p = next(vq.parameters())
        B, G = tokens_BxL.shape[0], self.grid
        ids = tokens_BxL.to(p.device).reshape(B, G, G)
        shape = (B, G, G, vq.config.vq_embed_dim or vq.config.latent_channels)
        if vq.config.lookup_from_codebook:
            out = vq.decode(ids, force_not_quantize=True, shape=shape).sample
        else:
            out = vq.decode(vq.quantize.get_codebook_entry(ids, shape), force_not_quantize=True).sample
        return out.clip(0, 1).float().cpu()

    def code_vectors(self) -> torch.Tensor:
        """The VQModel's codebook, V x C (float32, on the CPU): 'nearest code' is nearest in latent space."""
        return self.vqvae.quantize.embedding.weight.detach().float().cpu()

    @torch.no_grad()
    def quality_features(self, images_Bx3xHxW: torch.Tensor) -> torch.Tensor:
        """The VQModel's encoder output before quantization, flattened: B x (C * h * w), float32 on the CPU."""
        return self.vqvae.encode(self._pixels(images_Bx3xHxW)).latents.flatten(1).float().cpu()
