"""Trained toy mixture estimators landing where theory says, resume, determinism, divergence.
One small dataset and few shapes, so compiled programs are shared (see conftest's compilation cache)."""

import math

import optax
import pytest

from memlab.config import DataConfig
from memlab.diffusion import checkpoint as ckpt_mod
from memlab.diffusion.run import TRAIN_DEFAULTS, TrainConfig, train_and_evaluate
from memlab.diffusion.train import checkpoint_steps, lr_schedule
from memlab.errors import UsageError
from memlab.io import load_npy, read_json

DATA = DataConfig(dim=10, components=2, n_train=50, n_test=200, seed=0)
BASE = TrainConfig.from_flat(dict(model="mixture", size=2, steps=600, lr=1e-2, draws=8, samples=128, n_checkpoints=5,
                                   n_boot=200))


def _strip(m):
    """metrics without wall-clock timing (the only field allowed to differ between identical runs)."""
    return {k: v for k, v in m.items() if k != "timing"}


@pytest.fixture(scope="module")
def generalizer():
    return train_and_evaluate(DATA, BASE, progress=False)


def test_mixture_with_m_equal_n_stays_a_memorizer():
    m = train_and_evaluate(DATA, BASE.replace(size=50), progress=False)
    assert m["status"] == "ok" and m["memorization_ratio"] >= 0.9
    diag = m["per_seed"][0]["mixture"]
    assert diag["near_training_point"] >= 45 and diag["learned_variance"] < 1e-2
    # a memorizer fits the training set much better than the test set at low noise
    low = m["per_t"][-1]
    assert low["train_loss"] < 0.1 * low["test_loss"]


def test_small_mixture_becomes_a_generalizer(generalizer):
    m = generalizer
    assert m["status"] == "ok" and m["memorization_ratio"] <= 0.1
    first, last = m["checkpoints"][0], m["checkpoints"][-1]
    assert first["step"] == 0 and first["memorization_ratio"] == 1.0  # pmem start: samples are training points
    assert last["memorization_ratio"] <= 0.1 and last["test_loss"] < 0.5 * first["test_loss"]
    diag = m["per_seed"][0]["mixture"]
    assert diag["near_true_mean"] == 2
    assert 0.5 < diag["learned_variance"] < 1.5  # true s2 = 1
    lo, hi = m["interval"]
    assert lo <= m["memorization_ratio"] <= hi
    assert [c["step"] for c in m["checkpoints"]] == checkpoint_steps(600, 5)
    assert len(m["per_t"]) == 26 and m["param_count"] == 2 * 10 + 1
    row = m["per_t"][5]
    assert math.isclose(row["train_loss_eps"], row["psi"] * row["train_loss"], rel_tol=1e-6)


def test_same_seed_gives_identical_metrics(generalizer):
    again = train_and_evaluate(DATA, BASE, progress=False)
    assert _strip(again) == _strip(generalizer)
    other = train_and_evaluate(DATA, BASE.replace(seeds=(7,)), progress=False)
    assert other["per_t"] != generalizer["per_t"]


class _Interrupt(Exception):
    pass


def test_interrupt_and_resume_equals_uninterrupted(tmp_path, monkeypatch, generalizer):
    saves = []
    real_save = ckpt_mod.Checkpoints.save

    def flaky_save(self, step, state):
        real_save(self, step, state)
        saves.append(step)
        if len(saves) == 3:
            raise _Interrupt  # after the third checkpoint: progress.json and orbax both at that step

    monkeypatch.setattr(ckpt_mod.Checkpoints, "save", flaky_save)
    out = tmp_path / "run"
    with pytest.raises(_Interrupt):
        train_and_evaluate(DATA, BASE, out, progress=False)
    assert not (out / "metrics.json").exists() and (out / "state" / "progress.json").exists()
    with pytest.raises(UsageError, match="--resume"):
        train_and_evaluate(DATA, BASE, out, progress=False)
    resumed = train_and_evaluate(DATA, BASE, out, resume=True, progress=False)
    assert saves[:3] == checkpoint_steps(600, 5)[:3] and saves[3:] == checkpoint_steps(600, 5)[3:]
    assert _strip(resumed) == _strip(generalizer)
    assert _strip(read_json(out / "metrics.json")) == _strip(generalizer)
    samples = load_npy(out / "samples.npy")
    assert samples.shape == (1, 128, 10)
    assert (out / "curve.png").stat().st_size > 1000 and (out / "per_t.png").exists()
    # a finished run resumes to the same numbers without training again
    assert _strip(train_and_evaluate(DATA, BASE, out, resume=True, progress=False)) == _strip(generalizer)
    with pytest.raises(UsageError, match="different config.*optim.steps"):
        train_and_evaluate(DATA, BASE.replace(steps=601), out, resume=True, progress=False)


def test_overflowing_learning_rate_ends_diverged(tmp_path):
    # a NaN learning rate is refused by TrainConfig; an lr near float32's largest value overflows the means
    out = tmp_path / "huge"
    m = train_and_evaluate(DATA, BASE.replace(lr=3e38, warmup_frac=0.0), out, progress=False)
    assert m["status"] == "diverged" and m["memorization_ratio"] is None and m["interval"] is None
    seed = m["per_seed"][0]
    assert seed["status"] == "diverged" and 0 <= seed["diverged_at_step"] <= 2
    assert read_json(out / "metrics.json")["status"] == "diverged"
    assert not (out / "samples.npy").exists()  # no garbage samples


def test_schedule_warmup_then_linear_decay():
    s = lr_schedule(1e-3, 1000, 0.1, 1e-6)
    assert float(s(0)) == 0.0 and math.isclose(float(s(50)), 5e-4, rel_tol=1e-5)
    assert math.isclose(float(s(100)), 1e-3, rel_tol=1e-5) and math.isclose(float(s(1000)), 1e-6, rel_tol=1e-3)
    assert math.isclose(float(s(550)), (1e-3 + 1e-6) / 2, rel_tol=1e-3)
    assert isinstance(optax.adam(s), optax.GradientTransformation)


def test_checkpoint_steps_log_spaced():
    steps = checkpoint_steps(10_000, 6)
    assert steps == [0, 1, 10, 100, 1000, 10_000]
    assert checkpoint_steps(0, 5) == [0]


@pytest.mark.parametrize("field,value,match", [
    ("model", "cnn", "model"), ("size", 0, "size"), ("steps", -5, "steps"), ("lr", -1.0, "lr"),
    ("lr", math.inf, "lr"), ("lr", math.nan, "lr"), ("clip", math.nan, "clip"), ("final_lr", math.inf, "final_lr"),
    ("threshold", math.nan, "threshold"), ("warmup_frac", 1.0, "warmup_frac"), ("draws", 0, "draws"), ("batch", 0, "batch"),
    ("weighting", "snr", "weighting"), ("predict", "v", "predict"), ("init", "zeros", "init"),
    ("seeds", (), "seeds"), ("seeds", (1, 1), "seeds"), ("seed_mode", "pmap", "seed_mode"),
    ("n_checkpoints", 1, "n_checkpoints"), ("size", 2.5, "size"), ("threshold", 1.0, "threshold"),
])
def test_train_config_rejects_bad_values(field, value, match):
    with pytest.raises(UsageError, match=match):
        TrainConfig.from_flat({field: value})


def test_train_defaults_round_trip():
    from memlab.config import from_dict

    assert TrainConfig.from_flat(dict(TRAIN_DEFAULTS)) == TrainConfig()
    assert from_dict(TrainConfig, TrainConfig().tables()) == TrainConfig()  # the config.json layout
    assert TrainConfig.from_flat({"seeds": [3, 4]}).optim.seed_list(0) == (3, 4)
    assert TrainConfig.from_flat({"seeds": 3}).optim.seed_list(10) == (10, 11, 12)
    with pytest.raises(UsageError, match="batch must be <= n_train"):
        train_and_evaluate(DATA, BASE.replace(batch=51), progress=False)



def test_checkpoint_steps_always_end_at_the_final_step():
    from memlab.diffusion.train import checkpoint_steps

    for n in (2, 3, 6):
        steps = checkpoint_steps(1000, n)
        assert steps[0] == 0 and steps[-1] == 1000 and len(steps) <= n
