"""IAR figures (training curves, samples, UnitMem, extraction, ablation) from hand-made tables and the fake
model: every labelled line and band in a legend that covers no axes, titles that fit, coinciding curves
drawn apart."""

import numpy as np
import pandas as pd
import torch

from memlab.iar import report
from memlab.iar.fake import FakeIAR
from memlab.iar.figures import curves_figure, plot_samples, samples_figure
from tests.test_figures import check_figure, legend_texts


def _ablation_rows() -> pd.DataFrame:
    rows = [{"condition": "baseline", "pct": 0, "block": -1, "n_extracted": 0, "fd": 0.75, "nll": 2.56}]
    for pct in (5, 10):
        rows += [{"condition": "top", "pct": pct, "block": -1, "n_extracted": 0, "fd": 0.76, "nll": 2.57},
                 {"condition": "bottom", "pct": pct, "block": -1, "n_extracted": 0, "fd": 0.75, "nll": 2.565}]
        rows += [{"condition": "random", "pct": pct, "block": -1, "n_extracted": 0, "fd": 0.74 + d, "nll": 2.566}
                 for d in (0.0, 0.01)]
    rows += [{"condition": "top-block", "pct": 10, "block": b, "n_extracted": 1, "fd": 0.7, "nll": 2.6} for b in (0, 1)]
    return pd.DataFrame(rows)


def test_ablation_figures_list_every_curve_and_band_and_draw_ties_apart():
    fig = report.ablation_figure(_ablation_rows(), 0.5)
    shown = check_figure(fig)
    assert {"top units", "random units", "bottom units", "no edit", "band: mean +- 1 std over draws"} <= shown
    assert "x 0.5" in fig._suptitle.get_text()
    ax = fig.axes[0]  # every condition extracted 0 images: the three curves must not lie on one another
    x_px = [ln.get_transform().transform(ln.get_xydata())[0, 0] for ln in ax.lines if ln.get_label().endswith("units")]
    assert len(x_px) == 3 and min(np.diff(sorted(x_px))) > 2
    check_figure(report.block_ablation_figure(_ablation_rows()))
    assert report.block_ablation_figure(_ablation_rows().query("condition != 'top-block'")) is None


def test_unitmem_and_extraction_figures():
    per_block = pd.DataFrame({"block": [0, 1], "mean_score": [0.3, 0.25], "top_share": [0.6, 0.4]})
    per_sb = pd.DataFrame({"scale": [0, 0, 1, 1], "block": [0, 1, 0, 1], "mean_score": [0.3, 0.2, 0.25, 0.22]})
    for sb in (per_sb, per_sb[per_sb["scale"] == 0]):
        check_figure(report.unitmem_figure(per_block, sb, "UnitMem (raster)"))
    table = pd.DataFrame({"rank": range(6), "image_id": range(6), "pixel_sim": [0.99, 0.97, 0.9, 0.88, 0.87, 0.86]})
    fig = report.extraction_figure(table, np.linspace(0.8, 0.93, 20), 0.94, duplicated_ids={0, 1})
    shown = check_figure(fig)
    assert {"planted duplicate", "candidate", "held-out images", "training candidates", "threshold"} <= shown


def test_training_curves_and_samples(tmp_path):
    metrics = {"tokenizer": [{"epoch": e, "train_mse": 0.1 / e, "heldout_mse": 0.1 / e} for e in (1, 2, 3)],
               "model": [{"epoch": e, "train_nll": 3 - e / 10, "heldout_nll": 3 - e / 10} for e in (1, 2)]}
    fig = curves_figure(metrics)
    assert legend_texts(fig) == {"train", "held-out"}
    check_figure(fig)
    lines = fig.axes[0].lines  # equal train and held-out curves: the held-out one is dashed with open markers
    assert lines[1].get_linestyle() == "--" and lines[1].get_markerfacecolor() == "none"
    model = FakeIAR(arch="next-scale", side=4)
    images = torch.rand(3, 3, 4, 4)
    labels = torch.tensor([0, 1, 0])
    fig = samples_figure(model, images, labels, prefix=1)
    check_figure(fig)
    assert fig.axes[0].get_ylabel() == "training image"
    plot_samples(model, images, labels, 1, tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
