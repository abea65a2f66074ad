"""train_and_evaluate: train one configuration on several seeds, evaluate it at log-spaced checkpoints,
sample, measure memorization, and (with out_dir) write a resumable run directory:

  config.json     {"kind": "train", "data": DataConfig, "model", "optim", "eval": TrainConfig's parts}
                  (memlab.rundir; a run from before the split has one flat "train" table, still read)
  state/progress.json   checkpoint entries so far (what --resume continues from)
  ckpt/           orbax checkpoints of the stacked training state (all seeds)
  metrics.json    the returned dict
  samples.npy     final samples, n_ok_seeds x samples x D (allow_pickle=False)
  curve.png, per_t.png
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from memlab.config import DataConfig, from_dict, load_dataset, to_dict
from memlab.diffusion import networks
from memlab.diffusion.model_config import ModelConfig  # noqa: F401  (re-exported API)
from memlab.diffusion.train_config import TRAIN_DEFAULTS, EvalConfig, OptimConfig, TrainConfig  # noqa: F401
from memlab.errors import UsageError
from memlab.io import normalize_json, read_json, save_npy, write_json

__all__ = ["TrainConfig", "ModelConfig", "OptimConfig", "EvalConfig", "TRAIN_DEFAULTS", "train_and_evaluate",
           "run_config", "saved_run_config"]


def run_config(data_cfg: DataConfig, train_cfg: TrainConfig) -> dict:
    """The resolved config as written to config.json (JSON-normalised: tuples become lists)."""
    return normalize_json({"data": to_dict(data_cfg), **train_cfg.tables()})


def saved_run_config(rd) -> dict:
    """A train run's config.json (without its kind) in the current layout. A config from before the split
    (a flat "train" table) is rebuilt, so fields added since take their defaults and it compares equal to
    the config that the same settings give today."""
    saved = rd.saved_config()
    if "train" not in saved:
        return saved
    where = rd.config_file
    data = from_dict(DataConfig, saved.get("data", {}), f"{where} [data]", qualify=True)
    return run_config(data, TrainConfig.from_flat(saved["train"], f"{where} [train]", qualify=True))


def _open_out(out_dir: Path | None, config: dict, resume: bool):
    """-> (RunDir or None, 'none' | 'fresh' | 'resume' | 'done'). Reads only: bad directories fail before
    anything is written."""
    from memlab.rundir import RunDir

    if out_dir is None:
        return None, "none"
    rd, mode = RunDir.open(out_dir, "train", resume=resume)
    if mode != "fresh":
        rd.require_config(config, saved=saved_run_config(rd))
    return rd, mode


def train_and_evaluate(data_cfg: DataConfig, train_cfg: TrainConfig, out_dir: Path | None = None,
                       resume: bool = False, progress: bool = True) -> dict:
    """Train `train_cfg` on the dataset `data_cfg` names; return the metrics.json content (x0-unit losses)."""
    config = run_config(data_cfg, train_cfg)
    rd, mode = _open_out(out_dir, config, resume)
    if mode == "done":
        return read_json(rd.metrics_file)
    dataset = load_dataset(data_cfg)
    if dataset.n_train < 2:
        raise UsageError(f"n_train must be >= 2 (memorization compares nearest and second-nearest), got {dataset.n_train}")
    batch = train_cfg.optim.batch
    if batch is not None and batch > dataset.n_train:
        raise UsageError(f"batch must be <= n_train ({dataset.n_train}) or None (full batch), got {batch}")
    networks.spec(train_cfg.model.family).check_data(train_cfg.model, tuple(dataset.shape))
    return _Run(dataset, train_cfg, config, rd, progress).go(mode)


class _Run:
    def __init__(self, dataset, cfg: TrainConfig, config: dict, rd, progress: bool):
        # framework imports stay inside: `memlab --help` imports this module's CLI, not JAX
        from memlab.diffusion.evaluate import Evaluator
        from memlab.diffusion.rng import TAG_TRAIN, key_data, seed_key
        from memlab.diffusion.models import build, init_params, param_count
        from memlab.diffusion.process import default_grid
        from memlab.diffusion.train import Trainer, chunk_length, stack

        self.dataset, self.cfg, self.config, self.rd, self.progress = dataset, cfg, config, rd, progress
        self.out = None if rd is None else rd.path
        self.seeds = cfg.optim.seed_list(int(config["data"]["seed"]))
        self.grid_T = default_grid(cfg.optim.grid_points)
        self.family = networks.load(cfg.model.family)
        self.den = build(cfg.model, dataset)
        self.trainer = Trainer(self.den, cfg.optim, dataset.train_NxD, self.grid_T, len(self.seeds),
                               chunk_length(cfg.optim.steps, cfg.eval.n_checkpoints))
        self.evaluator = Evaluator(self.den, dataset, cfg.eval, self.grid_T)
        inits = [init_params(self.den, cfg.model.init, dataset, s) for s in self.seeds]
        self.param_count = param_count(inits[0])
        self.state = stack([self.trainer.init_state(p, key_data(seed_key(s, TAG_TRAIN))) for p, s in zip(inits, self.seeds)])
        self.history = {"per_seed": [[] for _ in self.seeds], "aggregate": []}
        self.ckpts = None

    # -- resumable loop -------------------------------------------------------------------------
    def _restore(self) -> None:
        from memlab.diffusion.checkpoint import Checkpoints

        self.ckpts = Checkpoints(self.out / "ckpt")
        latest = self.ckpts.latest_step()
        if latest is None:
            return
        self.state = self.ckpts.restore(latest, self.state)
        path = self._progress_file
        if not path.is_file():  # progress is written before each checkpoint, so this is damage
            raise UsageError(f"{self.out} has an orbax checkpoint at step {latest} but no {path}; it cannot be "
                             "resumed (start a new run)")
        saved = read_json(path)
        ok = (isinstance(saved, dict) and isinstance(saved.get("per_seed"), list)
              and len(saved["per_seed"]) == len(self.seeds) and isinstance(saved.get("aggregate"), list)
              and all(isinstance(e, dict) and isinstance(e.get("step"), int)
                      for rows in (*saved["per_seed"], saved["aggregate"]) for e in rows))
        if not ok:
            raise UsageError(f"damaged progress file {path}: expected per_seed ({len(self.seeds)} lists) and "
                             "aggregate lists of checkpoint entries with an integer step")
        keep = lambda entries: [e for e in entries if e["step"] <= latest]
        # entries past the last complete orbax checkpoint are recomputed, identically
        self.history = {"per_seed": [keep(e) for e in saved["per_seed"]], "aggregate": keep(saved["aggregate"])}

    def go(self, mode: str) -> dict:
        from tqdm import tqdm

        if self.rd is not None:
            if mode == "fresh":
                self.rd.start(self.config)
            self._restore()
        from memlab.diffusion.train import checkpoint_steps

        n_seeds, steps = len(self.seeds), self.cfg.optim.steps
        done = {e["step"] for e in self.history["aggregate"]}
        t0 = time.perf_counter()
        with tqdm(total=steps * n_seeds, initial=self._step() * n_seeds, disable=not self.progress,
                  file=sys.stderr, desc="train", unit="step") as bar:
            for target in checkpoint_steps(steps, self.cfg.eval.n_checkpoints):
                if target in done:
                    continue
                self.state = self.trainer.advance(self.state, target - self._step(), bar.update)
                self._checkpoint(target)
        train_s = time.perf_counter() - t0
        metrics = self._final()
        metrics["timing"] = {"seconds": train_s, "seed_mode": self.trainer.mode}
        if self.out is not None:
            self._write(metrics)
        return metrics

    @property
    def _progress_file(self) -> Path:
        """state/progress.json; a run from before run kinds kept it at the top level, and is read there."""
        legacy = self.rd.path / "progress.json"
        return legacy if legacy.is_file() and not (self.rd.state / "progress.json").is_file() \
            else self.rd.state / "progress.json"

    def _step(self) -> int:
        return int(np.asarray(self.state["step"])[0])

    def _seed_params(self, i: int):
        from memlab.diffusion.train import unstack

        return unstack(self.state, i)["params"]

    def _checkpoint(self, step: int) -> None:
        from memlab.diffusion.evaluate import aggregate_entries

        ok = np.asarray(self.state["ok"])
        entries, flags = [], []
        for i, s in enumerate(self.seeds):
            if ok[i]:
                entry, _, f, _ = self.evaluator(self._seed_params(i), s, step)
                entry["status"] = "ok"
                if entry["memorization_ratio"] is not None:  # None: non-finite samples, nothing to pool
                    entries.append(entry)
                    flags.append(f)
            else:
                entry = {"step": step, "status": "diverged", "memorization_ratio": None, "interval": None}
            objective = float(np.asarray(self.state["loss"])[i])  # last training-step loss; none before step 1
            entry["objective"] = objective if np.isfinite(objective) else None
            self.history["per_seed"][i].append(entry)
        agg = aggregate_entries(entries, flags, self.cfg.eval.n_boot, self.seeds[0])
        self.history["aggregate"].append({**agg, "step": step})
        if self.out is not None:  # progress first: an entry past the last orbax step is simply recomputed
            write_json(self._progress_file, self.history)
            self.ckpts.save(step, self.state)

    # -- final metrics --------------------------------------------------------------------------
    def _final(self) -> dict:
        from memlab.metrics.memorization import pooled_ratio

        ok = np.asarray(self.state["ok"])
        diverged_at = np.asarray(self.state["diverged_at"])
        per_seed, flags, per_t_rows, self.samples = [], [], [], []
        for i, s in enumerate(self.seeds):
            rec = {"seed": s, "status": "ok" if ok[i] else "diverged", "checkpoints": self.history["per_seed"][i]}
            if not ok[i]:
                rec.update(memorization_ratio=None, interval=None, per_t=[], diverged_at_step=int(diverged_at[i]))
                per_seed.append(rec)
                continue
            params = self._seed_params(i)
            entry, samples, f, nearest = self.evaluator(params, s, self._step())
            rec.update(memorization_ratio=entry["memorization_ratio"], interval=entry["interval"],
                       per_t=self.evaluator.per_t(entry), nearest_index=nearest.tolist())
            rec.update(self.family.diagnostics(params, self.dataset))
            per_seed.append(rec)
            per_t_rows.append(rec["per_t"])
            if entry["memorization_ratio"] is not None:
                flags.append(f)
                self.samples.append(samples)
        status = "ok" if ok.all() else "diverged"
        model = self.cfg.model
        m_eff = networks.spec(model.family).effective_size(model.size, self.param_count, self.dataset.dim)
        out = {"status": status, "memorization_ratio": None, "interval": None, "per_t": [],
               "checkpoints": self.history["aggregate"], "param_count": self.param_count, "effective_size": m_eff,
               "seeds": list(self.seeds), "n_seeds_ok": int(ok.sum()), "model": model.family,
               "size": model.size, "steps": self.cfg.optim.steps, "n_train": self.dataset.n_train,
               "dim": self.dataset.dim, "per_seed": per_seed}
        if flags:
            out["memorization_ratio"], out["interval"] = pooled_ratio(np.stack(flags), self.cfg.eval.n_boot,
                                                                      self.seeds[0])
        if per_t_rows:  # mean over the seeds that finished
            out["per_t"] = [{k: float(np.mean([rows[j][k] for rows in per_t_rows])) for k in per_t_rows[0][j]}
                            for j in range(len(per_t_rows[0]))]
        return out

    def _write(self, metrics: dict) -> None:
        from memlab.diffusion.report import plot_run

        if self.samples:
            save_npy(self.out / "samples.npy", np.stack(self.samples))
        plot_run(metrics, self.out)
        self.rd.finish(metrics)  # last: its presence marks the run complete
        self.ckpts.close()
