"""Figures a reader can read: every labelled line and band is in a legend, no legend covers an axes, titles
fit and do not overlap; plotting leaves the process's matplotlib backend alone. The figure checks here are
imported by the other test_figures_* files."""

import matplotlib
import numpy as np
import pytest

from memlab.crossover.plot import plot_prediction, prediction_figure
from memlab.diffusion.report import plot_run, run_figures


def _area(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(w, 0.0) * max(h, 0.0)


def _titles(fig) -> list:
    texts = [t for t in (fig._suptitle, fig._supxlabel) if t is not None and t.get_text()]
    return texts + [ax.title for ax in fig.axes if ax.get_title()]


def legend_texts(fig) -> set[str]:
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
    return {t.get_text() for leg in legends for t in leg.get_texts()}


def check_figure(fig) -> set[str]:
    """Draw `fig` and check it; returns its legend texts."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    shown = legend_texts(fig)
    for ax in fig.axes:  # every artist with a public label is in some legend of the figure
        missing = set(ax.get_legend_handles_labels()[1]) - shown
        assert not missing, f"not in a legend: {missing}"
    boxes = [ax.get_window_extent(r) for ax in fig.axes]
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
    for leg in legends:  # no legend on any data area (colour bars included)
        lb = leg.get_window_extent(r)
        first = [t.get_text() for t in leg.get_texts()][:2]
        assert all(_area(lb, b) < 1.0 for b in boxes), f"legend {first} covers an axes"
    titles = _titles(fig)
    fb = fig.bbox
    for i, t in enumerate(titles):
        tb = t.get_window_extent(r)
        assert fb.x0 - 1 <= tb.x0 and tb.x1 <= fb.x1 + 1 and fb.y0 - 1 <= tb.y0 and tb.y1 <= fb.y1 + 1, \
            f"title clipped: {t.get_text()!r}"
        assert all(_area(tb, b) < 1.0 for b in boxes), f"title on an axes: {t.get_text()!r}"
        for u in titles[i + 1:]:
            assert _area(tb, u.get_window_extent(r)) < 1.0, f"titles overlap: {t.get_text()!r}, {u.get_text()!r}"
    return shown


def fake_prediction(ratio_range: float, dataset: str = "gmm") -> dict:
    """A prediction result as crossover.predict returns it; theta_pmem falls over `ratio_range` decades of loss."""
    m = np.linspace(0.01, 1.0, 12)
    loss = 5.0 * 10 ** (ratio_range * (1 - m))
    return {"weighting": "x0-uniform", "n_train": 100, "dim": 30,
            "config": {"data": {"dataset": dataset, "components": 4}},
            "curve": [{"m_over_n": float(x), "loss_pmem": float(v), "loss_pmem_lo": float(v * 0.9),
                       "loss_pmem_hi": float(v * 1.1)} for x, v in zip(m, loss)],
            "loss_star_weighted": 12.0, "loss_mem_weighted": 5.0, "m_star_over_n": 0.78, "interval": [0.74, 0.83],
            "approximations": {"linear": {"m_star_over_n": 0.66}, "linear-2x": {"m_star_over_n": 0.78},
                               "nearest-neighbour": {"m_star_over_n": float("nan")},
                               "_generalizing_closed_form_per_t": [1.0]},
            "per_t": [{"psi": p, "m_star_over_n": v} for p, v in ((0.01, 0.4), (1.0, 0.7), (100.0, None))]}


def test_plotting_leaves_the_backend_and_pyplot_alone(tmp_path):
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        figs = plt.get_fignums()
        plot_prediction(fake_prediction(1.0), tmp_path / "x.png")
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == figs  # nothing registered with pyplot: nothing to close
        assert (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"
    finally:
        matplotlib.use(before)


@pytest.mark.parametrize("decades, dataset", [(1.0, "gmm"), (2.5, "templates")])
def test_crossover_figure_legends_titles_and_one_y_scale(decades, dataset):
    fig = prediction_figure(fake_prediction(decades, dataset))
    shown = check_figure(fig)
    loss_ax = fig.axes[0]
    assert loss_ax.get_yscale() == "log"  # the same rule for the GMM and the templates
    assert {r"$\theta_{pmem}(M)$ 95% bootstrap band", "M*/N 95% interval", "weighted M*/N"} <= shown
    assert "M*/N by linear-2x approximation: 0.780" in shown  # on the Monte Carlo M*/N, still listed
    assert not any("nearest-neighbour" in s for s in shown)  # NaN: not drawn, not listed
    # the approximation on the M*/N line differs from it in dash pattern and marker
    approx = [ln for ln in loss_ax.lines if ln.get_label().startswith("M*/N by")]
    assert len({(str(ln.get_linestyle()), ln.get_marker()) for ln in approx}) == len(approx)
    assert all(ln.get_linestyle() != "-" for ln in approx)
    assert dataset in fig._suptitle.get_text() and "x0-uniform weighting" in fig._suptitle.get_text()


def _metrics(seeds=(0, 1)) -> dict:
    ck = [{"step": s, "memorization_ratio": r, "interval": [r - 0.1, r + 0.1], "train_loss": 40 - s / 100,
           "test_loss": 45 - s / 200} for s, r in ((0, 0.1), (100, 0.4), (1000, 0.8))]
    return {"model": "mlp", "size": 256, "n_train": 100, "steps": 1000, "seeds": list(seeds), "status": "ok",
            "checkpoints": ck, "per_t": [{"t": t, "train_loss": t * 40, "test_loss": t * 45} for t in (0.01, 0.1, 0.9)]}


def test_run_figures_name_the_run_and_list_every_line(tmp_path):
    figs = run_figures(_metrics())
    assert set(figs) == {"curve.png", "per_t.png"}
    for fig in figs.values():
        check_figure(fig)
    title = figs["per_t.png"].axes[0].get_title()
    for part in ("mlp", "size 256", "N = 100", "step 1000", "seeds 0-1"):
        assert part in title, (part, title)
    assert "95% interval" in legend_texts(figs["curve.png"])
    assert "seed 3" in run_figures(_metrics(seeds=(3,)))["per_t.png"].axes[0].get_title()
    plot_run(_metrics(), tmp_path)
    assert (tmp_path / "per_t.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "curve.png").is_file()
