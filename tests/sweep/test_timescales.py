"""The training-time axis (sweep.timescales, `memlab phase time`): a planted ratio crossing is recovered,
a planted t_mem = c N^a gives back a within its interval, censored cells are reported, and bad input
exits 2 with one line and writes nothing. Sweeps are run by the real runner with a stand-in cell (ms)."""

import json
import math

import numpy as np
import pytest

from memlab.cli import main
from memlab.sweep.runner import run_sweep
from memlab.sweep.spec import parse_spec
from memlab.sweep.timescales import (BEFORE, CROSSED, NEVER, crossing_step, fit_power_law,
                                     fit_series, generalization_step, per_level_generalization, seed_bootstrap)
from sweep_standin import STANDINS
from tests.cli.malformed_fixtures import listing

STEPS = 4000
T_GEN = 30.0
C, A = 5.0, 1.0  # planted t_mem = C * N^A (steps)
LEVEL_GEN = (30, 57, 108, 252)  # planted per-level generalization times (checkpoint steps); a fifth never settles
LEVEL_T = (0.01, 0.1, 0.5, 0.9, 0.999)


def ckpt_steps(steps=STEPS, n=40):
    return [0] + sorted({int(s) for s in np.round(np.geomspace(1, steps, n))})


def logistic_ratio(steps, t_mem, k=3.0):
    s = np.maximum(np.asarray(steps, float), 1e-9)
    return 1.0 / (1.0 + np.exp(-k * (np.log(s) - math.log(t_mem))))


def test_planted_crossing_is_recovered_within_the_interpolation_tolerance():
    steps = np.array(ckpt_steps(), float)
    c = crossing_step(steps, logistic_ratio(steps, 137.0))
    assert c["status"] == CROSSED
    assert c["bracket"][0] < 137.0 < c["bracket"][1]
    assert abs(math.log(c["step"] / 137.0)) < 0.01  # log-step interpolation of a curve symmetric in log step
    # a ratio exactly linear in log(step) is recovered exactly
    s = np.array([1.0, 10.0, 100.0, 1000.0])
    assert crossing_step(s, np.log10(s) / 3)["step"] == pytest.approx(10 ** 1.5, rel=1e-12)


def test_step_zero_nan_and_censored_curves():
    assert crossing_step([0, 10, 100], [0.0, 1.0, 1.0])["step"] == pytest.approx(5.0)  # linear from step 0
    c = crossing_step([0, 10, 100, 1000], [0.0, np.nan, 0.2, 0.8])  # NaN checkpoint skipped
    assert c["bracket"] == [100.0, 1000.0] and c["step"] == pytest.approx(10 ** 2.5)
    never = crossing_step([0, 10, 100], [0.0, 0.2, 0.49])
    assert never == {"step": None, "bracket": [100.0, None], "status": NEVER}
    before = crossing_step([0, 10, 100], [0.9, 1.0, 1.0])
    assert before == {"step": None, "bracket": [None, 0.0], "status": BEFORE}
    with pytest.raises(ValueError):
        crossing_step([0, 10], [np.nan, np.nan])


def test_generalization_step_is_the_minimum_or_the_first_checkpoint_within_tolerance():
    steps = [0, 10, 100, 1000]
    assert generalization_step(steps, [5.0, 2.0, 1.0, 3.0], rtol=0.0) == 100
    assert generalization_step(steps, [5.0, 1.005, 1.0, 3.0], rtol=0.01) == 10
    assert generalization_step(steps, [np.nan] * 4) is None


def test_per_level_generalization_censors_levels_still_falling():
    steps = np.array([0, 10, 100, 1000], float)
    loss_CxT = np.array([[5.0, 5.0, 5.0], [1.0, 4.0, 4.0], [2.0, 3.0, 3.0], [3.0, 2.0, 1.0]])
    levels, med = per_level_generalization(steps, loss_CxT, [0.1, 0.5, 0.9], rtol=0.0)
    assert [(lv["t"], lv["t_gen"], lv["censored"]) for lv in levels] == [(0.1, 10, False), (0.5, 1000, True),
                                                                          (0.9, 1000, True)]
    assert med is None  # two of three levels censored: the median is beyond the last checkpoint
    levels, med = per_level_generalization(steps, loss_CxT[:, :2], None, rtol=0.0)
    assert med is None and levels[0]["t"] is None
    _, med = per_level_generalization(steps, np.stack([loss_CxT[:, 0]] * 2 + [loss_CxT[:, 2]], 1), None, 0.0)
    assert med == 10.0
    flat = np.ones((4, 3))  # every level at its minimum from step 0: median 0, which the fit leaves out
    assert per_level_generalization(steps, flat, None)[1] == 0.0
    cells = [{"series": "s", "n_train": n, "status": CROSSED, "t_mem": 10.0 * n, "t_mem_bracket": [0, 1],
              "cell_id": str(n), "t_gen_median_t": g} for n, g in ((10, 0.0), (20, 30.0), (40, 30.0))]
    (fit,) = fit_series(cells)
    assert fit["t_gen_median_t_fit"]["n_points"] == 2 and fit["t_gen_median_t_fit"]["exponent"] == pytest.approx(0.0)


def test_seed_bootstrap_covers_the_seed_spread_and_opens_when_seeds_do_not_cross():
    steps = np.array(ckpt_steps(), float)
    ratio_RxC = np.stack([logistic_ratio(steps, t) for t in (80.0, 100.0, 125.0)])
    iv = seed_bootstrap(steps, ratio_RxC, n_boot=300)["interval"]
    assert 70 < iv[0] <= 100 <= iv[1] < 140
    never = np.stack([logistic_ratio(steps, 100.0), np.zeros(len(steps))])
    b = seed_bootstrap(steps, never, n_boot=300)
    assert b["interval"][1] is None and b["censored_fraction"] > 0.1


def test_fit_returns_the_planted_exponent_within_its_interval():
    rng = np.random.default_rng(0)
    n_P = np.array([20, 40, 80, 160, 320, 640], float)
    covered = 0
    for rep in range(20):
        t_P = 3.0 * n_P ** 1.3 * np.exp(0.1 * rng.standard_normal(len(n_P)))
        fit = fit_power_law(n_P, t_P)
        covered += fit["interval"][0] <= 1.3 <= fit["interval"][1]
    assert covered >= 17  # 95% intervals
    exact = fit_power_law(n_P, 3.0 * n_P ** 0.7)
    assert exact["exponent"] == pytest.approx(0.7) and exact["prefactor"] == pytest.approx(3.0)
    assert fit_power_law([10, 20], [1.0, 2.0])["interval"] is None  # two points: no interval


def time_cell(data_cfg, train, out_dir, resume):
    """Stand-in run with checkpoints: per seed, a ratio logistic in log(step) crossing 0.5 at C N^A (times a
    seed jitter) and a test loss whose minimum sits at T_GEN for every N."""
    steps = ckpt_steps()
    t_mem = C * data_cfg.n_train ** A
    per_seed = []
    for seed in range(data_cfg.seed, data_cfg.seed + train["seeds"]):
        jitter = math.exp(0.05 * np.random.default_rng([data_cfg.n_train, seed]).standard_normal())
        ratio = logistic_ratio(steps, t_mem * jitter)
        loss = [1.0 + (math.log(max(s, 1)) - math.log(T_GEN)) ** 2 for s in steps]
        # per noise level: minima at LEVEL_GEN (the same for every N), the largest t still falling at the end
        loss_t = [[1.0 + (math.log(max(s, 1)) - math.log(g)) ** 2 for g in LEVEL_GEN] + [1.0 / (1 + s)]
                  for s in steps]
        ck = [{"step": s, "memorization_ratio": float(r), "interval": None, "train_loss": 0.0, "test_loss": lo,
               "test_loss_t": lt} for s, r, lo, lt in zip(steps, ratio, loss, loss_t)]
        per_seed.append({"seed": seed, "memorization_ratio": float(ratio[-1]), "interval": [0.0, 1.0],
                         "per_t": [{"t": t, "train_loss": 0.0, "test_loss": 0.0} for t in LEVEL_T],
                         "checkpoints": ck, "status": "ok", "param_count": train["size"] * 3})
    return {**per_seed[0], "per_seed": per_seed}


def _sweep(out, cell_fn, n_train=(20, 40, 80, 160, 320, 1000), seeds=3):
    spec = parse_spec({"name": "time", "data": {"dim": 3, "components": 2, "n_train": list(n_train)},
                       "model": {"sizes": [0.5]}, "seeds": {"count": seeds}})
    run_sweep(spec, out, workers=1, progress=False, **dict(STANDINS, cell_fn=cell_fn))
    return out


@pytest.fixture(scope="module")
def time_sweep(tmp_path_factory):
    return _sweep(tmp_path_factory.mktemp("time") / "s", time_cell)


def test_phase_time_recovers_the_planted_exponent_and_reports_the_censored_cell(time_sweep, tmp_path, capsys):
    fig = tmp_path / "fig" / "time.png"
    capsys.readouterr()
    assert main(["phase", "time", str(time_sweep), "--json", "--out", str(fig), "--boot", "200"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert fig.is_file() and json.loads(fig.with_suffix(".json").read_text()) == out
    (fit,) = out["fits"]
    assert fit["n_points"] == 5 and fit["interval"][0] <= A <= fit["interval"][1]
    assert fit["exponent"] == pytest.approx(A, abs=0.05)
    # N = 1000 would cross at 5000 > 4000 steps: right-censored, named, not in the fit
    assert [(c["n_train"], c["status"]) for c in fit["censored"]] == [(1000, NEVER)]
    cells = {c["n_train"]: c for c in out["cells"]}
    assert cells[1000]["t_mem"] is None and cells[1000]["t_mem_bracket"] == [STEPS, None]
    # the test loss's minimum is at T_GEN for every N: within gen_rtol = 0.01 of it means |log(s / T_GEN)| <= 0.1
    assert len({c["t_gen"] for c in cells.values()}) == 1 and abs(math.log(cells[20]["t_gen"] / T_GEN)) <= 0.1
    # per level: the planted times, the still-falling largest t censored; median over the 5 levels = 108
    for c in cells.values():
        levels = c["t_gen_per_t"]
        assert [lv["t"] for lv in levels] == pytest.approx(LEVEL_T)
        assert [lv["censored"] for lv in levels] == [False] * 4 + [True] and levels[-1]["t_gen"] == STEPS
        assert [lv["t_gen"] for lv in levels[:4]] == list(LEVEL_GEN)
        assert c["t_gen_median_t"] == 108.0
    assert fit["t_gen_median_t_fit"]["exponent"] == pytest.approx(0.0, abs=1e-9)  # the same at every N
    for n, c in cells.items():
        if n < 1000:
            lo, hi = c["t_mem_bracket"]
            assert lo <= c["t_mem"] <= hi and abs(math.log(c["t_mem"] / (C * n))) < 0.15
            assert c["t_mem_seed_interval"]["interval"][0] <= c["t_mem"] <= c["t_mem_seed_interval"]["interval"][1]


@pytest.fixture(scope="module")
def flat_sweep(tmp_path_factory):
    """A sweep whose runs recorded no checkpoints (the stand-in of the other sweep tests)."""
    return _sweep(tmp_path_factory.mktemp("flat") / "s", STANDINS["cell_fn"], n_train=(20,), seeds=1)


@pytest.mark.parametrize("case", ["missing", "not-a-sweep", "no-checkpoints", "bad-out", "nan-rtol", "bad-conf"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, time_sweep, flat_sweep, tmp_path, capsys):
    plain = tmp_path / "plain"
    plain.mkdir()
    fig = tmp_path / "f.png"
    argv = {"missing": [str(tmp_path / "nope"), "--out", str(fig)],
            "not-a-sweep": [str(plain), "--out", str(fig)],
            "no-checkpoints": [str(flat_sweep), "--out", str(fig)],
            "bad-out": [str(time_sweep), "--out", str(tmp_path / "f.pdf")],
            "nan-rtol": [str(time_sweep), "--gen-rtol", "nan", "--out", str(fig)],
            "bad-conf": [str(time_sweep), "--conf", "1.5", "--out", str(fig)]}[case]
    before = listing(tmp_path), listing(time_sweep), listing(flat_sweep)
    capsys.readouterr()
    assert main(["phase", "time", *argv, "--json"]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and len(cap.err.strip().splitlines()) == 1 and cap.err.startswith("memlab: error:"), cap.err
    assert (listing(tmp_path), listing(time_sweep), listing(flat_sweep)) == before
