"""Batched evaluation of unit edits: edit conditions per second when E conditions are stacked on the batch
axis (memlab.iar.batched) against one condition at a time (apply the edit, evaluate, restore); target: at
least 5x on CPU at the default sizes.

One condition = what extraction runs per edited model on its candidates: teacher-forced scores of the
ranking positions and the greedy continuation from the default prefix (raster: with its KV cache), over
`--candidates` sequences (32, the extraction default; smaller sets, such as a few planted duplicates, are
listed beside it for context). Models are the project's own next-scale and raster transformers at the default
training size (width 64, depth 3, 16x16 images / a 4x4 token grid; weights untrained: throughput does not
depend on them). Conditions are random-unit edits (10% of every layer's units, factors 0 and 0.5 in turn).
Batched and one-at-a-time runs alternate --repeats times and are timed in CPU seconds of this process (one
thread), the fastest of each compared, so that other processes on a shared machine disturb the ratio as
little as possible. The batched results are checked against the one-at-a-time ones. Writes
benchmarks/results/edits.json.

The same for whole yardstick conditions (extraction on T and C, 256 samples, every quality measure):
memlab.iar.yardstick.score_edit per edit against score_edits of all of them ("yardstick" in the JSON).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/edits.py [--conditions 16] [--candidates 32,8] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from memlab.iar import batched
from memlab.iar.batching import continue_all, teacher_forced_scores
from memlab.iar.config import IARTrainConfig, ImageDataConfig, RunConfig
from memlab.iar.interventions import ScaleUnits
from memlab.iar.train import build_model
from memlab.io import write_json

OUT = Path(__file__).resolve().parent / "results" / "edits.json"


def _time(fn) -> tuple[float, object]:
    """(CPU seconds of this process, result): on a shared machine, wall time mostly measures the neighbours."""
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def _alternate(one, stacked, repeats: int) -> tuple[list[float], list[float], object, object]:
    """Time `one` and `stacked` alternately `repeats` times: (CPU seconds of each, their last results)."""
    times_one, times_stacked = [], []
    for _ in range(repeats):
        t, ref = _time(one)
        times_one.append(t)
        t, out = _time(stacked)
        times_stacked.append(t)
    return times_one, times_stacked, ref, out


def _edits(model, n: int, pct: float, seed: int) -> list[ScaleUnits]:
    rng = np.random.default_rng(seed)
    return [ScaleUnits({name: rng.choice(spec.weight.shape[0], max(1, int(spec.weight.shape[0] * pct / 100)),
                                         replace=False) for name, spec in model.units().items()},
                       0.0 if e % 2 == 0 else 0.5)
            for e in range(n)]


def sgemm_peak(n: int = 1024, repeats: int = 5) -> float:
    """GFLOP per CPU second of a dense float32 n x n torch matmul in this process (fastest of `repeats`):
    the ceiling of any evaluation made of matmuls on this core."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    return 2 * n**3 / min(_time(lambda: a @ b)[0] for _ in range(repeats)) / 1e9


def counted_flops(fn) -> int:
    """Matmul, convolution and attention FLOPs of fn() as torch's FlopCounterMode counts them (elementwise
    work is not counted, so rates from this are lower bounds of the work done)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def bench_arch(arch: str, n_conditions: int, n_candidates: int, batch_size: int, repeats: int,
               peak_gflops: float) -> dict:
    cfg = RunConfig(data=ImageDataConfig(), train=IARTrainConfig(arch=arch))
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=4).eval()
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, model.vocab_size, (n_candidates, model.seq_len), generator=g)
    labels = torch.randint(0, 4, (n_candidates,), generator=g)
    prefix = model.default_prefix()
    positions = model.ranking_positions(prefix)
    edits = _edits(model, n_conditions, 10.0, seed=1)

    def one_at_a_time():
        acc, gen = [], []
        for edit in edits:
            with torch.no_grad(), edit.applied(model):
                acc.append(teacher_forced_scores(model, tokens, labels, positions)[0])
                gen.append(continue_all(model, tokens, labels, prefix))
        return np.stack(acc), torch.stack(gen)

    def stacked():
        acc_ExB, _ = batched.teacher_forced_scores_E(model, edits, tokens, labels, positions, batch_size)
        return acc_ExB, batched.continue_greedy_E(model, edits, tokens, labels, prefix, batch_size)

    one_at_a_time(), stacked()  # warm-up
    times_one, times_batched, ref, out = _alternate(one_at_a_time, stacked, repeats)
    t_one, t_batched = min(times_one), min(times_batched)
    flops = counted_flops(one_at_a_time)  # all E conditions; the batched path does the same matmuls
    return {"arch": arch, "candidates": n_candidates, "seq_len": model.seq_len, "prefix": prefix,
            "n_units": sum(s.weight.shape[0] for s in model.units().values()),
            "one_at_a_time_conditions_per_s": n_conditions / t_one,
            "batched_conditions_per_s": n_conditions / t_batched,
            "speedup": t_one / t_batched, "meets_5x_target": t_one / t_batched >= 5.0,
            "speedup_of_medians": statistics.median(times_one) / statistics.median(times_batched),
            **_ceiling(flops / n_conditions, t_one / n_conditions, t_batched / n_conditions, peak_gflops),
            "tf_accuracy_equal": bool(np.array_equal(out[0], ref[0])),
            "continuation_tokens_equal_fraction": float((out[1] == ref[1]).float().mean())}


def _ceiling(flops: float, s_one: float, s_batched: float, peak_gflops: float) -> dict:
    """Counted GFLOP per CPU second of one condition each way, and the largest speed-up any batching could
    give: the one-at-a-time time over the time of the same matmuls at the core's dense matmul peak (an upper
    bound, since the count leaves out elementwise work)."""
    return {"counted_gflop_per_condition": flops / 1e9, "one_at_a_time_gflops": flops / s_one / 1e9,
            "batched_gflops": flops / s_batched / 1e9, "speedup_ceiling_at_sgemm_peak": s_one / (flops / (peak_gflops * 1e9))}


def bench_yardstick(arch: str, n_conditions: int, batch_size: int, repeats: int, n_samples: int) -> dict:
    """Whole yardstick conditions (memlab.iar.yardstick): score_edit per edit against score_edits of all E,
    on a default-size run (untrained tokenizer and model; the evaluation sets are the planted duplicates)."""
    from iar_setting import default_setting

    from memlab.iar.yardstick import score_edit, score_edits

    model, _, sets, base = default_setting(arch, n_samples)
    edits = _edits(model, n_conditions, 10.0, seed=1)
    one = lambda: [score_edit(model, e, base) for e in edits]
    stacked = lambda: score_edits(model, edits, base, batch_size=batch_size)
    times_one, times_stacked, ref, out = _alternate(one, stacked, repeats)
    same = all(a[k] == b[k] for a, b in zip(ref, out) for k in a if k != "eval_seconds" and a[k] == a[k])
    t_one, t_stacked = min(times_one), min(times_stacked)
    return {"arch": arch, "conditions": n_conditions, "n_samples": n_samples,
            "targets": len(sets.target_ids), "controls": len(sets.control_ids),
            "one_at_a_time_conditions_per_s": n_conditions / t_one, "stacked_conditions_per_s": n_conditions / t_stacked,
            "speedup": t_one / t_stacked, "meets_5x_target": t_one / t_stacked >= 5.0, "numbers_equal": bool(same)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--conditions", type=int, default=16, help="edit conditions E")
    p.add_argument("--candidates", default="32,8", help="sequences scored and continued per condition (a list: "
                   "one row per value; the first is the headline)")
    p.add_argument("--batch-size", type=int, default=256, help="rows per batched forward pass (E x candidates "
                   "are cut into chunks of this many); one at a time uses the extraction default, 64")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads; timings are CPU seconds, so with more than 1 the rates are per CPU-second")
    p.add_argument("--yardstick-conditions", type=int, default=8,
                   help="whole yardstick conditions (extraction, samples, quality) timed too; 0: skip")
    p.add_argument("--n-samples", type=int, default=256, help="samples per yardstick condition")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    candidates = [int(c) for c in args.candidates.split(",")]
    from machine import load_average, machine

    load_before = load_average()
    peak = sgemm_peak()
    rows = [bench_arch(a, args.conditions, c, args.batch_size, args.repeats, peak)
            for c in candidates for a in ("next-scale", "raster")]
    yard = [bench_yardstick(a, args.yardstick_conditions, args.batch_size, max(1, args.repeats // 2), args.n_samples)
            for a in ("next-scale", "raster")] if args.yardstick_conditions else []
    result = {"conditions": args.conditions, "candidates": candidates, "batch_size": args.batch_size,
              "threads": args.threads, "repeats": args.repeats, "torch": torch.__version__,
              "sgemm_peak_gflops_per_cpu_s": peak, "results": rows,
              "yardstick": yard, "machine": {**machine("torch"), "load_average_before": load_before}}
    write_json(args.out, result)
    for r in rows:
        print(f"{r['arch']:>10}, {r['candidates']:3d} candidates: one at a time "
              f"{r['one_at_a_time_conditions_per_s']:7.1f} conditions/s, batched "
              f"{r['batched_conditions_per_s']:7.1f} conditions/s: {r['speedup']:.1f}x "
              f"(tf accuracy equal: {r['tf_accuracy_equal']}, continuation tokens equal: "
              f"{100 * r['continuation_tokens_equal_fraction']:.1f}%); counted {r['one_at_a_time_gflops']:.1f} "
              f"GFLOP/s one at a time against a {peak:.0f} GFLOP/s matmul peak: no batching can exceed "
              f"{r['speedup_ceiling_at_sgemm_peak']:.1f}x")
    for r in yard:
        print(f"{r['arch']:>10}, whole yardstick conditions ({r['n_samples']} samples): one at a time "
              f"{r['one_at_a_time_conditions_per_s']:.2f}/s, stacked {r['stacked_conditions_per_s']:.2f}/s: "
              f"{r['speedup']:.2f}x (numbers equal: {r['numbers_equal']})")


if __name__ == "__main__":
    main()
