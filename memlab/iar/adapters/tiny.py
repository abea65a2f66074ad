"""A tiny random aMUSEd pipeline built on the spot, for tests, benchmarks and trying the commands (nothing comes
from a hub): a VQModel with a 16-code book on a 4 x 4 latent grid of 16 x 16 images, a two-layer UVit2DModel, a
two-layer CLIP text encoder and a CLIPTokenizer made from a vocabulary and merges written here.
`save_tiny_pipeline(dir)` writes it with AmusedPipeline.save_pretrained (the layout of a real amused-256
download); `caption_folder(dir)` writes a captioned image set (PNG files and captions.jsonl);
`save_memorizing_pipeline(dir, images)` first trains the transformer on that set's training images until it
reproduces them, so extraction, unlearning and INJ have something to find."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

CODEBOOK = 16
TEXT_LEN = 12
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _clip_tokenizer(where: Path):
    """A CLIPTokenizer over single letters (each also as a word end) plus a few merges."""
    from transformers import CLIPTokenizer

    tokens = ["<|startoftext|>", "<|endoftext|>", *LETTERS, *(c + "</w>" for c in LETTERS), "a</w>"]
    merges = ["#version: 0.2", "r e", "re d</w>", "b l", "bl u", "blu e</w>"]
    tokens += ["re", "red</w>", "bl", "blu", "blue</w>"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    where.mkdir(parents=True, exist_ok=True)
    (where / "vocab.json").write_text(json.dumps(vocab))
    (where / "merges.txt").write_text("\n".join(merges) + "\n")
    return CLIPTokenizer(str(where / "vocab.json"), str(where / "merges.txt"), model_max_length=TEXT_LEN)


def tiny_components(seed: int = 0) -> dict:
    """The five pipeline components, weights drawn from `seed` (moved off their initialisation so that a
    silent re-initialisation on load would show)."""
    import tempfile

    from diffusers import AmusedScheduler, UVit2DModel, VQModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        vqvae = VQModel(block_out_channels=(8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 3,
                        up_block_types=("UpDecoderBlock2D",) * 3, layers_per_block=1, latent_channels=4,
                        num_vq_embeddings=CODEBOOK, norm_num_groups=4, sample_size=16, lookup_from_codebook=True,
                        force_upcast=True)
        with tempfile.TemporaryDirectory() as scratch:  # the tokenizer reads its files when it is built
            tok = _clip_tokenizer(Path(scratch))
        text = CLIPTextModelWithProjection(CLIPTextConfig(
            vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=TEXT_LEN, projection_dim=12, bos_token_id=0, eos_token_id=1, pad_token_id=1))
        transformer = UVit2DModel(
            hidden_size=16, use_bias=False, cond_embed_dim=12, micro_cond_encode_dim=4, micro_cond_embed_dim=20,
            encoder_hidden_size=16, vocab_size=CODEBOOK + 1, codebook_size=CODEBOOK, in_channels=16,
            block_out_channels=16, num_res_blocks=1, downsample=False, upsample=False, block_num_heads=2,
            num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, sample_size=4)
        with torch.no_grad():
            for m in (vqvae, text, transformer):
                for p in m.parameters():
                    p.add_(0.05 * torch.randn_like(p))
            vqvae.quantize.embedding.weight.normal_()  # well-separated codes: tokenizing is not all one code
    return {"vqvae": vqvae.eval(), "tokenizer": tok, "text_encoder": text.eval(), "transformer": transformer.eval(),
            "scheduler": AmusedScheduler(mask_token_id=CODEBOOK)}


def save_tiny_pipeline(out: Path, seed: int = 0) -> dict:
    """AmusedPipeline(...).save_pretrained(out); -> the components (in memory, for comparisons)."""
    from diffusers import AmusedPipeline

    parts = tiny_components(seed)
    AmusedPipeline(**parts).save_pretrained(out)
    return parts


def caption_folder(out: Path, n_train: int = 6, n_heldout: int = 4, side: int = 16, seed: int = 0) -> Path:
    """PNG images (random blocky colour fields) and captions.jsonl with a train / held-out split; -> the folder."""
    from PIL import Image

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    words = ["red", "blue", "a", "cab", "dog", "fig"]
    lines = []
    for i in range(n_train + n_heldout):
        img = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8).repeat(side // 4, 0).repeat(side // 4, 1)
        Image.fromarray(img).save(out / f"img{i}.png")
        caption = " ".join(rng.choice(words, 3))
        lines.append({"file": f"img{i}.png", "caption": caption, "split": "train" if i < n_train else "heldout"})
    (out / "captions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return out


def save_memorizing_pipeline(out: Path, images: Path, steps: int = 120, lr: float = 1e-2, seed: int = 0) -> dict:
    """The tiny pipeline after `steps` Adam steps of aMUSEd's own objective (MaskedIAR.training_loss) on the
    training images of the caption folder `images`, each with its caption (about 100 steps reproduce all six
    default images from a quarter of their tokens), saved with AmusedPipeline.save_pretrained."""
    from diffusers import AmusedPipeline

    from memlab.iar.adapters.amused import AmusedIAR
    from memlab.iar.adapters.captions import caption_run_data, read_caption_set

    parts = tiny_components(seed)
    data, texts = caption_run_data(read_caption_set(images), 16, progress=False)
    model = AmusedIAR(parts["vqvae"], parts["text_encoder"], parts["tokenizer"], parts["transformer"],
                      parts["scheduler"])
    model.set_captions(texts)
    tokens_NxL = model.tokenize(data.train_images)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        loss = model.training_loss(tokens_NxL, data.train_labels, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    parts["transformer"].eval()
    AmusedPipeline(**parts).save_pretrained(out)
    return parts
