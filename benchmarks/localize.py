"""UnitMem throughput (images x augmentations per second) against a bare teacher-forced forward pass over
the same token batches; targets: hooks + statistics cost at most 25% over the bare pass, and the full pass
(augmentation, tokenizer, hooked pass) at most 1.5x the bare pass.

The full pass is timed three ways: without a token cache; with a cache miss (a first pass over a run:
it tokenizes and writes the cache); with a cache hit (a later pass over the same run: it tokenizes nothing).
Models are the project's own next-scale and raster transformers at their default training size
(weights untrained: throughput does not depend on them). All runs alternate --repeats times and are timed
in CPU seconds of this process (one thread), the fastest of each compared, so that other processes on a
shared machine disturb the ratio as little as possible; rates are per CPU second.
Writes benchmarks/results/localize.json.

    .venv/bin/python benchmarks/localize.py [--n-images 128] [--n-aug 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from memlab.iar.augment import AugmentConfig, augment
from memlab.iar.config import IARTrainConfig, ImageDataConfig, RunConfig
from memlab.iar.hooks import capture
from memlab.iar.train import build_model, build_tokenizer
from memlab.iar.unitmem import UnitMemConfig, UnitStats, activation_means
from memlab.io import write_json

OUT = Path(__file__).resolve().parent / "results" / "localize.json"


def _time(fn) -> float:
    """CPU seconds of this process: on a shared machine, wall time mostly measures the neighbours."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def _interleaved(fns, repeats: int) -> list[list[float]]:
    """Times of each fn, alternating between them so that load from other processes hits all alike."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for t, fn in zip(times, fns):
            t.append(_time(fn))
    return times


def bench_arch(arch: str, n_images: int, n_aug: int, batch_size: int, repeats: int) -> dict:
    cfg = RunConfig(data=ImageDataConfig(), train=IARTrainConfig(arch=arch))
    model = build_model(cfg, num_classes=4).eval()
    model.attach_tokenizer(build_tokenizer(cfg).eval())
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n_images, 3, cfg.data.size, cfg.data.size, generator=g)
    labels = torch.randint(0, 4, (n_images,), generator=g)
    ids = np.arange(n_images)
    aug_cfg = AugmentConfig(n_aug=n_aug)
    with torch.no_grad():  # the same token batches for both timings
        batches = [(torch.arange(s, min(s + batch_size, n_images)), a) for s in range(0, n_images, batch_size)
                   for a in range(n_aug)]
        tokens = [model.tokenize(augment(images[i], ids[i.numpy()], a, aug_cfg)) for i, a in batches]

    def bare():
        with torch.no_grad():
            for (i, _), t in zip(batches, tokens):
                model.teacher_forced_logits(t, labels[i])

    def hooked():
        stats = UnitStats(model, n_images)
        with torch.no_grad(), capture(model, on_activation=stats, keep=False):
            for (i, _), t in zip(batches, tokens):
                stats.index = i
                model.teacher_forced_logits(t, labels[i])

    um_cfg = UnitMemConfig(augment=aug_cfg, batch_size=batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        hit_dir, misses = Path(tmp) / "hit", iter(range(10 ** 6))

        def full(cache=None):
            return activation_means(model, images, labels, ids, um_cfg, progress=False, token_cache=cache)

        def full_miss():  # a fresh directory each time: the pass tokenizes and writes the cache
            return full(Path(tmp) / f"miss-{next(misses)}")

        bare(), hooked(), full(hit_dir)  # warm-up; fills the cache the hits read
        times = _interleaved([bare, hooked, full, full_miss, lambda: full(hit_dir)], repeats)
    times_bare, times_hooked, times_full, times_miss, times_hit = times
    # CPU time, and the minimum over repeats: the run least disturbed by other processes (median beside it)
    t_bare, t_hooked, t_full, t_miss, t_hit = (min(t) for t in times)
    n = n_images * n_aug
    return {"arch": arch, "seq_len": model.seq_len, "n_units": sum(s.weight.shape[0] for s in model.units().values()),
            "bare_forward_per_s": n / t_bare, "hooks_and_stats_per_s": n / t_hooked,
            "overhead": t_hooked / t_bare - 1.0, "meets_25pct_target": t_hooked / t_bare - 1.0 <= 0.25,
            "overhead_of_medians": statistics.median(times_hooked) / statistics.median(times_bare) - 1.0,
            "full_no_cache_per_s": n / t_full, "full_no_cache_over_bare": t_full / t_bare,
            "full_no_cache_meets_1.5x": t_full / t_bare <= 1.5,
            "full_cache_miss_per_s": n / t_miss, "full_cache_miss_over_bare": t_miss / t_bare,
            "full_cache_miss_meets_1.5x": t_miss / t_bare <= 1.5,
            "full_cache_hit_per_s": n / t_hit, "full_cache_hit_over_bare": t_hit / t_bare,
            "full_cache_hit_meets_1.5x": t_hit / t_bare <= 1.5,
            "full_over_bare_of_medians": {
                "no_cache": statistics.median(times_full) / statistics.median(times_bare),
                "cache_miss": statistics.median(times_miss) / statistics.median(times_bare),
                "cache_hit": statistics.median(times_hit) / statistics.median(times_bare)}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-images", type=int, default=128)
    p.add_argument("--n-aug", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads; timings are CPU seconds, so with more than 1 the rates are per CPU-second, not throughput")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from machine import load_average, machine

    load_before = load_average()
    rows = [bench_arch(a, args.n_images, args.n_aug, args.batch_size, args.repeats) for a in ("next-scale", "raster")]
    result = {"n_images": args.n_images, "n_aug": args.n_aug, "batch_size": args.batch_size, "threads": args.threads,
              "repeats": args.repeats, "torch": torch.__version__, "results": rows,
              "machine": {**machine("torch"), "load_average_before": load_before}}
    write_json(args.out, result)
    for r in rows:
        print(f"{r['arch']:>10}: bare {r['bare_forward_per_s']:6.0f} img*aug/s, hooks+stats "
              f"{r['hooks_and_stats_per_s']:6.0f} ({100 * r['overhead']:+.1f}%); full UnitMem (x bare, target 1.5): "
              f"no cache {r['full_no_cache_over_bare']:.2f}, cache miss {r['full_cache_miss_over_bare']:.2f}, "
              f"cache hit {r['full_cache_hit_over_bare']:.2f}")


if __name__ == "__main__":
    main()
