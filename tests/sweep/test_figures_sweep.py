"""Phase figures: the weighting in every title and file name, one agreement-legend entry per N, overlapping
interval bars drawn side by side, and the demo saying when its cells have not converged (stand-in cells)."""

import json

import pytest
from sweep_standin import STANDINS, fake_cell, fake_predict

from memlab.sweep.demo import run_demo_phase
from memlab.sweep.phase import summarize_dir
from memlab.sweep.plot import panel_figures, sweep_figure
from memlab.sweep.runner import run_sweep
from memlab.sweep.spec import parse_spec
from memlab.sweep.table import converged, summary_table
from tests.test_figures import check_figure, legend_texts


def _predict(data_cfg, fields):  # the real prediction reports its weighting; the stand-in learns to
    return dict(fake_predict(data_cfg, fields), weighting=fields.get("weighting"))


def _cells(moved: float):
    """The stand-in cell with two checkpoints whose ratio moved by `moved` (0 for the largest size)."""
    def cell(data_cfg, train, out_dir, resume):
        out = fake_cell(data_cfg, train, out_dir, resume)
        m = 0.0 if train["size"] == data_cfg.n_train else moved
        for s in out["per_seed"]:
            r = s["memorization_ratio"]
            s["checkpoints"] = [{"step": 10, "memorization_ratio": abs(r - m)}, {"step": 100, "memorization_ratio": r}]
        return out
    return cell


SPEC = {"name": "fig", "data": {"dim": 3, "components": 2, "n_train": [40, 80, 160]},
        "model": {"sizes": [0.2, 0.4, 0.5, 0.7, 1.0]}, "seeds": {"count": 2}}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig") / "sweep"
    run_sweep(parse_spec(SPEC), out, workers=1, progress=False, **dict(STANDINS, predict_fn=_predict))
    return summarize_dir(out, n_boot=100)


def test_phase_figures_name_the_weighting_and_every_n(sweep):
    table, predictions, summary = sweep
    figs = {"all": sweep_figure(table, summary, predictions), **panel_figures(table, summary, predictions)}
    for fig in figs.values():
        check_figure(fig)
        assert "eps weighting" in fig._suptitle.get_text()
        assert fig._supxlabel is None  # the stand-in records no checkpoints: nothing known to be moving
    agreement = next(ax for ax in figs["all"].axes if ax.get_title().startswith("predicted vs observed"))
    labels = agreement.get_legend_handles_labels()[1]
    assert sorted(lab for lab in labels if "N=" in lab) == ["gmm d=3 K=2 N=160", "gmm d=3 K=2 N=40", "gmm d=3 K=2 N=80"]
    assert "observed = predicted" in labels
    ratio = legend_texts(figs["ratio"])
    assert {"predicted M*/N, 95% interval", "observed transition, 95% interval",
            "ratio = 0.5 (the transition level)"} <= ratio
    assert sum("N=" in t for t in ratio) == 3


def test_bars_at_the_same_m_over_n_are_drawn_side_by_side(sweep):
    table, predictions, summary = sweep
    fig = panel_figures(table, summary, predictions)["ratio"]
    fig.canvas.draw()
    ax = fig.axes[0]
    data_lines = [c.lines[0] for c in ax.containers]  # one errorbar per configuration, same M/N grid
    assert len(data_lines) == 3
    x_px = [ln.get_transform().transform(ln.get_xydata())[0, 0] for ln in data_lines]
    assert min(abs(a - b) for i, a in enumerate(x_px) for b in x_px[i + 1:]) > 3  # pixels apart
    assert len({ln.get_marker() for ln in data_lines}) == 3


def test_summary_table_is_returned_not_printed(sweep, capsys):
    _, _, summary = sweep
    t = summary_table(summary)
    assert t.row_count == 3 and "eps weighting" in t.title
    assert capsys.readouterr() == ("", "")


def test_demo_writes_one_figure_set_per_weighting_and_says_it_has_not_converged(tmp_path, capsys):
    paths = run_demo_phase(tmp_path, workers=1, progress=False, spec=SPEC,
                           **dict(STANDINS, predict_fn=_predict, cell_fn=_cells(0.2)))
    names = [p.name for p in paths]
    panels = ("ratio", "losses", "phase", "agreement")
    assert names == [f"phase_{w}{s}.png" for w in ("eps", "x0-uniform") for s in ["", *(f"_{p}" for p in panels)]]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
    err = capsys.readouterr().err
    assert err.count("[demo] not converged") == 2 and "in 2 of 3 configurations" not in err
    assert "in 3 of 3 configurations" in err
    for w in ("eps", "x0-uniform"):
        saved = json.loads((tmp_path / "phase_gmm" / f"phase_summary_{w}.json").read_text())
        assert saved["weighting"] == w and saved["converged"] is False and len(saved["not_converged"]) == 3
        assert [c["predicted"]["weighting"] for c in saved["configurations"]] == [w] * 3


def test_demo_is_quiet_about_convergence_when_the_cells_stopped_moving(tmp_path, capsys, sweep):
    run_demo_phase(tmp_path, workers=1, progress=False, spec=SPEC,
                   **dict(STANDINS, predict_fn=_predict, cell_fn=_cells(0.01)))
    assert "not converged" not in capsys.readouterr().err
    saved = json.loads((tmp_path / "phase_gmm" / "phase_summary_eps.json").read_text())
    assert saved["converged"] is True and saved["convergence_note"] is None
    table, predictions, summary = summarize_dir(tmp_path / "phase_gmm", n_boot=50)
    footnote = sweep_figure(table, summary, predictions)._supxlabel.get_text()
    assert footnote.startswith("converged: the memorization ratio moved by at most 0.010")
    assert converged(sweep[2]) is None  # no checkpoints recorded: unknown, not "converged"
