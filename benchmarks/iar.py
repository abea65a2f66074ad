"""IAR throughput: training tokens/s of each memlab IAR model against a plain torch.nn.TransformerEncoder of
the same width, depth, heads and MLP width on the same sequence length (ratio = ours / plain), and generation
images/s (tokens, without decoding) of seeded sampling and of greedy continuation with and without the cache
(raster: keys and values; next-scale: the coarse scales) at 16 and at 64 tokens (the default and the 8x8
setting), with the batch size of highest cached throughput. Models run on CUDA when present (the device is
recorded). Writes benchmarks/results/iar.json.

    .venv/bin/python benchmarks/iar.py [--threads 1] [--batch 32] [--steps 20] [--skip-train] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
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


def _cpu_time(fn, repeats: int) -> float:
    """Fastest of `repeats` calls in CPU seconds, after one warm-up call."""
    from machine import fastest_cpu_seconds

    return fastest_cpu_seconds(fn, repeats, warmup=True)


def generation(model, batch: int, repeats: int, batch_sizes: list[int]) -> dict:
    """Images/s (tokens only, no decoding) of seeded sampling and of greedy continuation from the default
    prefix, with and without the cache (raster: keys and values; next-scale: the coarse scales), checked to
    give identical tokens; and cached sampling at several batch sizes (the best is the throughput choice)."""
    import torch

    dev = model.device
    labels = torch.arange(batch, device=dev) % model.config.num_classes
    seeds = list(range(batch))
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, model.vocab_size, (batch, model.seq_len), generator=g).to(dev)
    prefix = model.default_prefix()
    out = {"seq_len": model.seq_len, "batch": batch, "prefix": prefix}
    if model.arch == "masked":  # no cache: every step re-reads the whole (partly masked) grid
        out["steps"] = model.config.generate_steps
        out["images_per_s"] = batch / _cpu_time(lambda: model.generate(labels, seeds), repeats)
        return out
    greedy = lambda c: model._fill(tokens, labels, prefix, lambda lg: lg.argmax(-1), use_cache=c)  # noqa: E731
    for name, fn in (("sample", lambda c: model.generate(labels, seeds, use_cache=c)), ("greedy", greedy)):
        with torch.no_grad():
            same = bool(torch.equal(fn(True), fn(False)))
            cached = batch / _cpu_time(lambda: fn(True), repeats)
            uncached = batch / _cpu_time(lambda: fn(False), max(1, repeats // 2))
        out[name] = {"images_per_s_cache": cached, "images_per_s_no_cache": uncached,
                     "cache_speedup": cached / uncached, "identical_tokens": same}
    by_batch = {}
    for b in batch_sizes:
        y = torch.arange(b, device=dev) % model.config.num_classes
        with torch.no_grad():
            by_batch[str(b)] = b / _cpu_time(lambda: model.generate(y, list(range(b))), max(1, repeats // 2))
    out["sample_images_per_s_by_batch"] = by_batch
    out["best_batch"] = int(max(by_batch, key=by_batch.get))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats of each generation (fastest kept)")
    ap.add_argument("--batch-sizes", default="16,32,64,128,256", help="batch sizes of cached sampling")
    ap.add_argument("--skip-train", action="store_true", help="generation only")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "iar.json"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from machine import load_average, machine, torch_device

    from memlab.iar.config import IARTrainConfig, ImageDataConfig, RunConfig
    from memlab.iar.train import build_model
    from memlab.io import write_json

    torch.set_num_threads(args.threads)
    num_classes = 10
    load_before = load_average()
    dev = torch_device()
    results = {"timing": "CPU seconds of this process, fastest of --repeats (wall on CUDA is not measured)",
               "batch": args.batch, "train": {}, "generate": {}}
    # 16 tokens: the default 16x16 images (4x4 grid; next-scale 1,2,3,4: 30 tokens); 64 tokens: the 8x8
    # setting (32x32 images; next-scale 1,2,4,8: 85 tokens).
    settings = {"16": (ImageDataConfig(), (1, 2, 3, 4)), "64": (ImageDataConfig(size=32), (1, 2, 4, 8))}
    for arch in ("raster", "next-scale", "masked"):
        if not args.skip_train:
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
            print(arch, "train", {k: round(v, 3) for k, v in results["train"][arch].items()}, flush=True)
        results["generate"][arch] = {}
        for name, (data, scales) in settings.items():
            torch.manual_seed(0)
            model = build_model(RunConfig(data, IARTrainConfig(arch=arch, scales=scales)), num_classes).to(dev).eval()
            sizes = [int(b) for b in args.batch_sizes.split(",")] if arch != "masked" else []
            gen = generation(model, args.batch, args.repeats, sizes)
            results["generate"][arch][name + "_tokens_setting"] = gen
            print(arch, name, "tokens:", {k: v for k, v in gen.items() if k != "sample_images_per_s_by_batch"},
                  flush=True)
    results["machine"] = {**machine("torch"), "threads": args.threads, "load_average_before": load_before}
    write_json(Path(args.out), results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
