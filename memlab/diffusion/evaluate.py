"""Checkpoint evaluation: per-t train and test x0 losses, samples, memorization; and the aggregate over
seeds. Every random draw comes from the training seed (not the step), so the curve over training time
compares the same noise and the same sampler starts at every checkpoint."""

from __future__ import annotations

import jax
import numpy as np

from memlab.diffusion.objective import per_t_x0_loss, stack_sets
from memlab.diffusion.process import psi_np
from memlab.diffusion.rng import TAG_EVAL, TAG_SAMPLE, seed_key
from memlab.diffusion.sample import make_sampler, sample_keys
from memlab.metrics.memorization import memorized, pooled_ratio

class Evaluator:
    def __init__(self, den, dataset, cfg, grid_T):
        self.cfg, self.grid_T = cfg, np.asarray(grid_T)
        self.train_NxD = np.asarray(dataset.train_NxD)
        self._sets = stack_sets([self.train_NxD, dataset.test_TxD[: cfg.eval_test]], cfg.eval_draws)
        self._losses_t = jax.jit(per_t_x0_loss(den.x0, grid_T, 2))
        self._sampler = make_sampler(den.x0, dataset.dim, grid_T, cfg.sampler)

    def samples(self, params, seed: int) -> np.ndarray:
        return np.asarray(self._sampler(params, sample_keys(seed_key(seed, TAG_SAMPLE), self.cfg.samples)))

    def __call__(self, params, seed: int, step: int) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
        """(checkpoint entry, samples_SxD, memorized flags_S, nearest training point_S) of one seed."""
        loss_Tx2 = np.asarray(self._losses_t(params, seed_key(seed, TAG_EVAL), *self._sets), float)
        train_t, test_t = loss_Tx2[:, 0], loss_Tx2[:, 1]
        samples = self.samples(params, seed)
        if not np.all(np.isfinite(samples)):
            flags, nearest = np.zeros(len(samples), bool), np.full(len(samples), -1)
            ratio, interval = None, None
        else:
            flags, nearest = memorized(samples, self.train_NxD, self.cfg.threshold)
            ratio, interval = pooled_ratio(flags, self.cfg.n_boot, seed)
        entry = {"step": int(step), "train_loss": float(train_t.mean()), "test_loss": float(test_t.mean()),
                 "memorization_ratio": ratio, "interval": interval,
                 "train_loss_t": train_t.tolist(), "test_loss_t": test_t.tolist()}
        return entry, samples, flags, nearest

    def per_t(self, entry: dict) -> list[dict]:
        """The per-t table of one checkpoint entry: x0 losses and their epsilon-unit equivalents."""
        rows = []
        for t, p, tr, te in zip(self.grid_T, psi_np(self.grid_T), entry["train_loss_t"], entry["test_loss_t"]):
            rows.append({"t": float(t), "psi": float(p), "train_loss": tr, "test_loss": te,
                         "train_loss_eps": float(p * tr), "test_loss_eps": float(p * te)})
        return rows


def aggregate_entries(entries: list[dict], flags: list[np.ndarray], n_boot: int, seed: int) -> dict:
    """One checkpoint over the seeds that are still ok: mean losses, pooled memorization ratio with a
    seeds-then-samples bootstrap interval."""
    if not entries:
        return {"memorization_ratio": None, "interval": None, "train_loss": None, "test_loss": None, "n_seeds": 0}
    ratio, interval = pooled_ratio(np.stack(flags), n_boot, seed)
    return {"step": entries[0]["step"], "memorization_ratio": ratio, "interval": interval,
            "train_loss": float(np.mean([e["train_loss"] for e in entries])),
            "test_loss": float(np.mean([e["test_loss"] for e in entries])), "n_seeds": len(entries)}
