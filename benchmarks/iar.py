"""IAR throughput: training tokens/s of each memlab IAR model against a plain torch.nn.TransformerEncoder of
the same width, depth, heads and MLP width on the same sequence length (ratio = ours / plain), and generation
images/s (token sampling, without decoding) with and without the key/value cache. Writes
benchmarks/results/iar.json.

    .venv/bin/python benchmarks/iar.py [--threads 1] [--batch 32] [--steps 20] [--out benchmarks/results/iar.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path


def _time(fn, steps: int, warmup: int = 2) -> float:
    """Seconds per call (median-free mean over `steps` after `warmup` calls)."""
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def _plain_encoder(width, depth, heads, mlp_ratio, vocab, seq_len, num_classes):
    import torch
    from torch import nn

    class Plain(nn.Module):
        """Embedding + nn.TransformerEncoder (pre-norm, GELU) + head: the reference implementation."""

        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(vocab, width)
            self.cls = nn.Embedding(num_classes, width)
            self.pos = nn.Parameter(torch.zeros(seq_len, width))
            layer = nn.TransformerEncoderLayer(width, heads, mlp_ratio * width, dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.enc = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
            self.head = nn.Linear(width, vocab)
            self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(seq_len))

        def training_loss(self, tokens, labels, generator=None):
            h = self.emb(tokens) + self.pos + self.cls(labels)[:, None]
            logits = self.head(self.enc(h, mask=self.mask, is_causal=True))
            return nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten())

    return Plain()


def train_tokens_per_s(model, seq_len, batch, steps, vocab, num_classes) -> float:
    import torch

    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, vocab, (batch, seq_len), generator=g)
    labels = torch.randint(0, num_classes, (batch,), generator=g)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()

    def step():
        loss = model.training_loss(tokens, labels, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return batch * seq_len / _time(step, steps)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "iar.json"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from memlab.iar.config import IARTrainConfig, ImageDataConfig, RunConfig
    from memlab.iar.train import build_model
    from memlab.io import write_json

    torch.set_num_threads(args.threads)
    num_classes = 10
    results = {"machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": args.threads,
                           "cpu_count": os.cpu_count()},
               "batch": args.batch, "train": {}, "generate": {}}
    for arch in ("raster", "next-scale", "masked"):
        cfg = RunConfig(ImageDataConfig(), IARTrainConfig(arch=arch))
        t = cfg.train
        torch.manual_seed(0)
        model = build_model(cfg, num_classes)
        L = model.seq_len
        ours = train_tokens_per_s(model, L, args.batch, args.steps, t.codebook_size, num_classes)
        plain = _plain_encoder(t.width, t.depth, t.heads, t.mlp_ratio, t.codebook_size, L, num_classes)
        ref = train_tokens_per_s(plain, L, args.batch, args.steps, t.codebook_size, num_classes)
        results["train"][arch] = {
            "seq_len": L, "width": t.width, "depth": t.depth, "params": sum(p.numel() for p in model.parameters()),
            "plain_params": sum(p.numel() for p in plain.parameters()),
            "tokens_per_s": ours, "plain_encoder_tokens_per_s": ref, "ratio": ours / ref}
        model.eval()
        labels = torch.arange(args.batch) % num_classes
        seeds = list(range(args.batch))
        gen = {}
        if arch == "masked":  # no cache: every step re-reads the whole (partly masked) grid
            gen["steps"] = model.config.generate_steps
            gen["images_per_s"] = args.batch / _time(lambda: model.generate(labels, seeds), max(2, args.steps // 5), 1)
        else:
            for use_cache in (True, False):
                sec = _time(lambda: model.generate(labels, seeds, use_cache=use_cache), max(2, args.steps // 5), 1)
                gen["images_per_s_" + ("kv_cache" if use_cache else "no_cache")] = args.batch / sec
            gen["cache_speedup"] = gen["images_per_s_kv_cache"] / gen["images_per_s_no_cache"]
        results["generate"][arch] = gen
        print(arch, {k: round(v, 3) if isinstance(v, float) else v for k, v in {**results["train"][arch], **gen}.items()},
              flush=True)
    write_json(Path(args.out), results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
