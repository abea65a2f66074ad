"""Training throughput: steps/s and achieved GFLOP/s of the mixture estimator at d=50, K=12, N=200, M=160,
R=100, full batch (20,000 rows per step), and of an MLP denoiser with a comparable parameter count, next
to the dense float32 matmul GFLOP/s measured right before each round of steps (the ratio is the model
FLOP utilization, MFU; the median round is reported). Also times several seeds trained under vmap against
one after another, for both models (what seed_mode 'auto' picks on this backend is recorded next to it).
Writes benchmarks/results/train.json.

Model FLOPs per step are counted analytically from the matmuls (forward and backward, as MFU is usually
defined); XLA's own count of the compiled step is reported next to them. XLA counts a loop body once, so,
as every loss runs as a scan over row blocks, its count is scaled by the number of blocks (the few
non-blocked operations, the noise draw and Adam, get scaled too: a slight overcount).

    .venv/bin/python benchmarks/train.py [--steps 10] [--rounds 5] [--out benchmarks/results/train.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path


def dense_matmul(n: int = 2048):
    """measure(repeats) -> dense float32 n x n matmul GFLOP/s (best of `repeats`)."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ a)
    f(a).block_until_ready()

    def measure(repeats: int = 3) -> float:
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            f(a).block_until_ready()
            best = min(best, time.perf_counter() - t0)
        return 2 * n**3 / best / 1e9

    return measure


def mixture_matmul_flops(rows: int, m: int, d: int) -> float:
    """Forward: logits x M^T and weights M (2 B M d each); backward: three more of the same size (the
    gradient of the weights, and the two contributions to the gradient of the means)."""
    return 5 * 2 * rows * m * d


def mlp_matmul_flops(rows: int, den, params) -> float:
    """2 flops per weight per row forward, twice that backward (input and weight gradients)."""
    import jax

    weights = sum(a.size for a in jax.tree_util.tree_leaves(params) if a.ndim == 2)
    return 6 * rows * weights


def prepare(data_cfg, train_cfg, n_seeds: int = 1) -> dict:
    """A compiled trainer past its pmem start: {'run': run(steps) -> seed-steps/s, 'trainer', 'state',
    'den', 'params', 'dataset'}."""
    import jax

    from memlab.config import load_dataset
    from memlab.diffusion.models import build, init_params
    from memlab.diffusion.process import default_grid
    from memlab.diffusion.rng import TAG_TRAIN, key_data, seed_key
    from memlab.diffusion.train import Trainer, chunk_length, stack

    ds = load_dataset(data_cfg)
    den = build(train_cfg.model, ds)
    trainer = Trainer(den, train_cfg.optim, ds.train_NxD, default_grid(), n_seeds,
                      chunk_length(train_cfg.optim.steps, train_cfg.eval.n_checkpoints))
    params = [init_params(den, train_cfg.model.init, ds, s) for s in range(n_seeds)]
    state = stack([trainer.init_state(p, key_data(seed_key(s, TAG_TRAIN))) for s, p in enumerate(params)])
    out = {"trainer": trainer, "den": den, "params": params[0], "dataset": ds}
    out["state"] = jax.block_until_ready(trainer.advance(state, trainer.length))  # compile, leave the start

    def run(steps: int) -> float:
        t0 = time.perf_counter()
        out["state"] = jax.block_until_ready(trainer.advance(out["state"], steps))
        return steps * n_seeds / (time.perf_counter() - t0)

    out["run"] = run
    return out


def xla_step_flops(prep: dict, train_cfg) -> float | None:
    """XLA's flop count of one training step (sequential mode only)."""
    import jax
    import numpy as np

    trainer, ds = prep["trainer"], prep["dataset"]
    if trainer.mode != "sequential":
        return None
    one = jax.tree_util.tree_map(lambda a: a[0], prep["state"])
    cost = trainer._chunk.lower(one, np.int32(1), trainer.train_NxD).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    # the chunk is a scan of `length` gated steps; XLA counts the loop body once
    flops = float(cost.get("flops", float("nan"))) if cost else None
    if flops:  # the loss is a scan over row blocks too: count every block
        flops *= prep["den"].loss_blocks(prep["params"], ds.n_train * train_cfg.optim.draws, ds.dim)
    return flops


def time_training(data_cfg, train_cfg, steps: int, rounds: int = 1, matmul=None) -> dict:
    """Steps/s of Trainer.advance (compiled once beforehand) and XLA's flop count of one step. With
    `matmul`, each of `rounds` rounds times the dense matmul right before its steps, so that each
    utilization ratio compares two measurements under the same machine load (this machine is shared)."""
    from memlab.diffusion.models import param_count

    prep = prepare(data_cfg, train_cfg)
    per_round, peaks = [], []
    for _ in range(rounds):
        if matmul is not None:
            peaks.append(matmul())
        per_round.append(prep["run"](steps))
    return {"rounds": per_round, "peaks": peaks, "param_count": param_count(prep["params"]),
            "rows_per_step": prep["dataset"].n_train * train_cfg.optim.draws,
            "xla_flops_per_step": xla_step_flops(prep, train_cfg), "den": prep["den"], "params": prep["params"]}


def time_seed_modes(data_cfg, train_cfg, steps: int, n_seeds: int, rounds: int) -> dict:
    """Median seed-steps/s of 'sequential' and 'vmap', timed in alternating rounds (shared machine)."""
    import numpy as np

    preps = {mode: prepare(data_cfg, train_cfg.replace(seeds=n_seeds, seed_mode=mode), n_seeds)
             for mode in ("sequential", "vmap")}
    per_round = {mode: [] for mode in preps}
    for _ in range(rounds):
        for mode, prep in preps.items():
            per_round[mode].append(prep["run"](steps))
    return {mode: float(np.median(r)) for mode, r in per_round.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of (matmul, steps) timings")
    ap.add_argument("--mlp-width", type=int, default=16, help="MLP width (16 x depth 2 ~ the mixture's 8,001)")
    ap.add_argument("--seeds", type=int, default=4, help="seeds for the vmap-vs-sequential timing")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "train.json"))
    args = ap.parse_args()

    import jax
    import numpy as np

    from memlab.config import DataConfig
    from memlab.diffusion.run import TrainConfig
    from memlab.io import write_json

    data = DataConfig(dim=50, components=12, n_train=200, n_test=200)
    base = TrainConfig.from_flat(dict(model="mixture", size=160, draws=100, steps=10 * args.steps, n_checkpoints=10))
    matmul = dense_matmul()
    report = {"benchmark": "train", "backend": jax.default_backend(), "cpu_count": os.cpu_count(),
              "load_average_1min": os.getloadavg()[0], "machine": platform.processor() or platform.machine(),
              "setting": {"dim": 50, "components": 12, "n_train": 200, "draws": 100, "batch": "full"}}
    for name, cfg in [("mixture", base),
                      ("mlp", base.replace(model="mlp", size=args.mlp_width, depth=2))]:
        r = time_training(data, cfg, args.steps, rounds=args.rounds, matmul=matmul)
        rows = r["rows_per_step"]
        flops = mixture_matmul_flops(rows, 160, 50) if name == "mixture" else mlp_matmul_flops(rows, r["den"], r["params"])
        mfu = [flops * sps / 1e9 / peak for sps, peak in zip(r["rounds"], r["peaks"])]
        i = int(np.argsort(mfu)[len(mfu) // 2])  # the median round
        achieved, peak = flops * r["rounds"][i] / 1e9, r["peaks"][i]
        report[name] = {"size": cfg.model.size, "depth": cfg.model.depth, "param_count": r["param_count"],
                        "steps_per_second": r["rounds"][i], "model_flops_per_step": flops,
                        "xla_flops_per_step": r["xla_flops_per_step"], "achieved_gflops": achieved,
                        "dense_matmul_gflops": peak, "mfu": mfu[i], "mfu_per_round": mfu}
        print(f"{name:8s} params {r['param_count']:6d}  {r['rounds'][i]:7.2f} steps/s  "
              f"{achieved:7.1f} GFLOP/s  MFU {mfu[i]:.0%} of {peak:.0f} GFLOP/s matmul (median of {len(mfu)} rounds)")

    report["seed_modes"] = []
    from memlab.diffusion.train import resolve_seed_mode

    for model, size, draws in [("mixture", 40, 25), ("mixture", 80, 50), ("mixture", 160, 100), ("mlp", 16, 100),
                               ("mlp", 64, 100)]:
        cfg = base.replace(model=model, size=size, depth=2, draws=draws)
        modes = time_seed_modes(data, cfg, args.steps, args.seeds, args.rounds)
        report["seed_modes"].append({"model": model, "size": size, "draws": draws, "seeds": args.seeds,
                                     "seed_steps_per_second": modes, "faster": max(modes, key=modes.get),
                                     "auto_picks": resolve_seed_mode("auto", args.seeds, 200 * draws, size + 50)})
        print(f"{model} size={size} R={draws}, {args.seeds} seeds: sequential {modes['sequential']:.2f}, "
              f"vmap {modes['vmap']:.2f} seed-steps/s")
    write_json(Path(args.out), report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
