"""The output view of composition against memorization (issue 18), on a run of the `factors` image set.

- Held-out combinations: class-conditional samples of every shape x colour combination, read back by the
  per-factor classifiers (memlab.iar.factor_classifier); per combination the share showing the requested
  shape, colour, both, and the memorization-like failure "recall a neighbour" (a trained combination instead,
  e.g. the right shape in another colour: which one). The same table of real images (and of their tokenizer
  reconstructions) is the ceiling the classifiers allow.
- Arbitrary labels: the yardstick's extraction (memlab.iar.extract: prefix continuation, calibrated
  threshold, nearest-neighbour rule) of training images with an arbitrary label against those with a factor
  label; and, generation side, the share of a label's samples that are near copies of one of that label's
  training images (same distance, threshold and rule).

Intervals: rates pool the samples of a group's units (combinations, labels, images); the interval resamples
the units, then each unit's samples (binomially), so it counts both how few held-out combinations there are and
how few samples each has. Seeds: sample j of class c uses seed + c x SEED_STRIDE + j, whatever else is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from memlab.errors import UsageError, check_float, check_int
from memlab.iar.batching import decode_all, generate_all, tokenize_all
from memlab.iar.data import to_tensor
from memlab.iar.extract import ExtractConfig, extract, nearest_neighbour_ratio, pixel_similarity
from memlab.iar.interface import IARModel

SEED_STRIDE = 100_000
MEASURES = ("shape", "colour", "both", "neighbour", "shape_only", "colour_only", "legible")
LEGIBLE = 0.9  # softmax probability of both the shape and the colour reading that makes a sample legible
GROUPS = ("trained", "held-out")


@dataclass
class Samples:
    """Class-conditional samples: labels_S, seeds_S (int64) and the decoded images S x 3 x H x W in [0, 1]."""

    labels_S: np.ndarray
    seeds_S: np.ndarray
    images_Sx3xHxW: torch.Tensor


def _factor_info(image_set):
    if image_set.factors is None:
        raise UsageError(f"the output view needs the image set 'factors', got {image_set.name!r}")
    return image_set.factors


def draw_samples(model: IARModel, labels, *, samples_per_class: int, seed: int, batch_size: int = 64) -> Samples:
    """`samples_per_class` samples of each class in `labels`, sample j of class c from seed c x SEED_STRIDE + j
    (+ seed), decoded with the model's tokenizer."""
    check_int("samples_per_class", samples_per_class, 1, SEED_STRIDE)
    check_int("seed", seed, 0)
    labels = np.asarray(labels, dtype=np.int64)
    labels_S = np.repeat(labels, samples_per_class)
    seeds_S = seed + labels_S * SEED_STRIDE + np.tile(np.arange(samples_per_class), len(labels))
    model.eval()
    tokens = generate_all(model, torch.from_numpy(labels_S), seeds_S.tolist(), batch_size)
    return Samples(labels_S, seeds_S, decode_all(model, tokens, batch_size))


def _pick(samples: Samples | None, model, labels, samples_per_class, seed, batch_size) -> Samples:
    """The given samples of `labels` (each must be there), or new ones."""
    if samples is None:
        return draw_samples(model, labels, samples_per_class=samples_per_class, seed=seed, batch_size=batch_size)
    missing = sorted(set(map(int, labels)) - set(samples.labels_S.tolist()))
    if missing:
        raise UsageError(f"the given samples have no class {missing[0]}")
    keep = np.isin(samples.labels_S, np.asarray(labels))
    return Samples(samples.labels_S[keep], samples.seeds_S[keep], samples.images_Sx3xHxW[torch.from_numpy(keep)])


def rates_table(requested_S: np.ndarray, pred_SxF: np.ndarray, heldout_combos,
                conf_SxF: np.ndarray | None = None) -> pd.DataFrame:
    """One row per combination label present in `requested_S` (0..19): its factors, held-out flag, n and the
    share of rows whose predicted factors (pred_SxF, FACTOR_NAMES columns) show each MEASURE:
    shape / colour / both as requested; neighbour: a trained combination other than the requested one;
    shape_only: right shape, wrong colour (wrong_colour: the commonest such colour, wrong_colour_share its share
    of them); colour_only likewise (wrong_shape); legible: shape and colour both read with probability >= LEGIBLE
    (conf_SxF; NaN without it). A garbled sample still gets a reading: `legible` says how many were clear."""
    from synthetic.factors import COLOURS, SHAPES, combo_text

    held = {tuple(map(int, c)) for c in heldout_combos}
    requested_S, pred_SxF = np.asarray(requested_S), np.asarray(pred_SxF)
    rows = []
    for label in np.unique(requested_S):
        s, c = divmod(int(label), len(COLOURS))
        p = pred_SxF[requested_S == label]
        legible = float("nan") if conf_SxF is None else (np.asarray(conf_SxF)[requested_S == label, :2]
                                                         >= LEGIBLE).all(1).mean()
        ok_s, ok_c = p[:, 0] == s, p[:, 1] == c
        trained_pred = np.array([(int(a), int(b)) not in held for a, b in p[:, :2]])
        row = {"label": int(label), "combo": combo_text((s, c)), "shape": SHAPES[s], "colour": COLOURS[c],
               "heldout": (s, c) in held, "n": len(p), "shape_rate": ok_s.mean(), "colour_rate": ok_c.mean(),
               "both_rate": (ok_s & ok_c).mean(), "neighbour_rate": (trained_pred & ~(ok_s & ok_c)).mean(),
               "shape_only_rate": (ok_s & ~ok_c).mean(), "colour_only_rate": (ok_c & ~ok_s).mean(),
               "legible_rate": legible}
        for name, wrong, col, values in (("wrong_colour", ok_s & ~ok_c, 1, COLOURS),
                                         ("wrong_shape", ok_c & ~ok_s, 0, SHAPES)):
            counts = np.bincount(p[wrong, col], minlength=len(values))
            row[name] = values[int(counts.argmax())] if wrong.any() else ""
            row[f"{name}_share"] = counts.max() / wrong.sum() if wrong.any() else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def output_rates(model: IARModel, image_set, classifiers, *, samples_per_class: int, seed: int,
                 batch_size: int = 64, samples: Samples | None = None) -> pd.DataFrame:
    """`rates_table` of class-conditional samples of all 20 combinations (trained and held out; `samples`: ones
    drawn before with draw_samples, else drawn now), read by `classifiers` (FactorClassifiers)."""
    from synthetic.factors import N_COMBOS

    info = _factor_info(image_set)
    s = _pick(samples, model, np.arange(N_COMBOS), samples_per_class, seed, batch_size)
    return rates_table(s.labels_S, *_read(classifiers, s.images_Sx3xHxW, info.heldout_combos))


def _read(classifiers, images_Sx3xHxW, heldout_combos):
    pred_SxF, conf_SxF = classifiers.read(images_Sx3xHxW)
    return pred_SxF, heldout_combos, conf_SxF


def real_rates(image_set, classifiers, *, model: IARModel | None = None, batch_size: int = 64) -> pd.DataFrame:
    """`rates_table` of the run's real images of each combination (held-out split: trained combinations; novel
    split: held-out ones), or of their reconstructions by `model`'s tokenizer: what samples could reach if they
    were real images (column `source`: real | reconstructed)."""
    from synthetic.factors import combo_label

    info = _factor_info(image_set)
    x = to_tensor(np.concatenate([image_set.heldout_NxHxWx3, info.novel_NxHxWx3]))
    f_NxF = np.concatenate([info.heldout_NxF, info.novel_NxF])
    if model is not None:
        x = decode_all(model, tokenize_all(model, x, batch_size), batch_size)
    table = rates_table(combo_label(f_NxF[:, 0], f_NxF[:, 1]), *_read(classifiers, x, info.heldout_combos))
    return table.assign(source="real" if model is None else "reconstructed")


def _boot_pooled(n_U: np.ndarray, k_UxM: np.ndarray, n_boot: int, rng) -> np.ndarray:
    """R x M pooled rates of units resampled with replacement, then their successes binomially."""
    idx_RxU = rng.integers(0, len(n_U), (n_boot, len(n_U)))
    n_RxU = n_U[idx_RxU]
    p_RxUxM = k_UxM[idx_RxU] / np.maximum(n_RxU, 1)[..., None]
    k_RxUxM = rng.binomial(n_RxU[..., None], p_RxUxM)
    return k_RxUxM.sum(1) / np.maximum(n_RxU.sum(1), 1)[:, None]


def pooled_rates(table: pd.DataFrame, group: str, measures, *, contrast=None, n_boot: int = 1000,
                 level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per value of column `group` and per measure m (column f"{m}_rate", with `n` per unit row): the pooled
    rate with its interval (`_boot_pooled`); `contrast` (a, b) adds rows "a - b" of the difference, whose
    interval comes from the two groups resampled independently. Columns: group, measure, n_units, n, rate, lo,
    hi."""
    check_int("n_boot", n_boot, 1)
    check_float("level", level, 0.0, 1.0, lo_open=True, hi_open=True)
    rng, a = np.random.default_rng([seed, 1804]), (1 - level) / 2
    measures = list(measures)
    rows, draws = [], {}
    for g in pd.unique(table[group]):
        t = table[table[group] == g]
        n_U = t["n"].to_numpy(np.int64)
        k_UxM = np.rint(t[[f"{m}_rate" for m in measures]].to_numpy(float) * n_U[:, None]).astype(np.int64)
        draws[g] = _boot_pooled(n_U, k_UxM, n_boot, rng)
        rate_M = k_UxM.sum(0) / max(n_U.sum(), 1)
        for j, m in enumerate(measures):
            rows.append({"group": g, "measure": m, "n_units": len(t), "n": int(n_U.sum()), "rate": rate_M[j],
                         "lo": np.quantile(draws[g][:, j], a), "hi": np.quantile(draws[g][:, j], 1 - a)})
    if contrast is not None and all(g in draws for g in contrast):
        ga, gb = contrast
        point = {(r["group"], r["measure"]): r["rate"] for r in rows}
        for j, m in enumerate(measures):
            d = draws[ga][:, j] - draws[gb][:, j]
            rows.append({"group": f"{ga} - {gb}", "measure": m, "n_units": None, "n": None,
                         "rate": point[ga, m] - point[gb, m], "lo": np.quantile(d, a), "hi": np.quantile(d, 1 - a)})
    return pd.DataFrame(rows, columns=["group", "measure", "n_units", "n", "rate", "lo", "hi"])


def aggregate_rates(rates: pd.DataFrame, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """`pooled_rates` of an output_rates (or real_rates) table, trained against held-out combinations."""
    t = rates.assign(group=np.where(rates["heldout"], GROUPS[1], GROUPS[0]))
    measures = [m for m in MEASURES if t[f"{m}_rate"].notna().all()]
    return pooled_rates(t, "group", measures, contrast=(GROUPS[1], GROUPS[0]), n_boot=n_boot, level=level, seed=seed)


@dataclass
class ExtractionSplit:
    """The extraction of training images by label kind: `table` one row per attacked image (extract's columns,
    `row` the folded training row, label, arbitrary, kind, copies); the calibrated threshold and rule it used."""

    table: pd.DataFrame
    threshold: float
    prefix: int
    nn_ratio: float


def _folded(image_set):
    """(RunData with planted copies folded, arbitrary flag per folded row)."""
    from memlab.iar.pipeline import fold_duplicates

    info = _factor_info(image_set)
    data = fold_duplicates(to_tensor(image_set.train_NxHxWx3), torch.from_numpy(image_set.train_labels),
                           to_tensor(image_set.heldout_NxHxWx3), torch.from_numpy(image_set.heldout_labels),
                           image_set.train_ids)
    arb = dict(zip(image_set.train_ids, info.train_arbitrary.tolist()))
    return data, np.array([arb[str(i)] for i in data.train_ids], dtype=bool)


def arbitrary_extraction(model: IARModel, image_set, cfg: ExtractConfig = ExtractConfig(), *,
                         n_per_group: int | None = None, seed: int = 0) -> ExtractionSplit:
    """The yardstick's extraction (memlab.iar.extract.extract, threshold calibrated on the held-out split) of
    training images with arbitrary labels and with factor labels: every one, or a seeded draw of up to
    `n_per_group` of each kind. Rates: `pooled_rates(split.table, "kind", ["extracted"])`."""
    if n_per_group is not None:
        check_int("n_per_group", n_per_group, 1)
    data, arb_N = _folded(image_set)
    rng = np.random.default_rng([seed, 1803])
    rows = []
    for kind in (True, False):
        r = np.flatnonzero(arb_N == kind)
        if n_per_group is not None and len(r) > n_per_group:
            r = np.sort(rng.choice(r, n_per_group, replace=False))
        rows.append(r)
    cand = np.concatenate(rows)
    bs = cfg.batch_size
    res = extract(model, tokenize_all(model, data.train_images, bs), data.train_labels, data.train_ids,
                  tokenize_all(model, data.heldout_images, bs), data.heldout_labels, cfg, candidates=cand)
    t = res.table.rename(columns={"index": "row"})
    t = t.assign(label=data.train_labels.numpy()[cand], arbitrary=arb_N[cand],
                 kind=np.where(arb_N[cand], "arbitrary", "factor"), copies=data.copies[cand],
                 n=1, extracted_rate=t["extracted"].astype(float))
    return ExtractionSplit(t, res.threshold, res.prefix, cfg.nn_ratio)


def generation_copies(model: IARModel, image_set, *, threshold: float, nn_ratio: float = 1.0 / 3.0,
                      samples_per_class: int, seed: int, batch_size: int = 64,
                      samples: Samples | None = None) -> pd.DataFrame:
    """Per label with training images (each arbitrary class; each trained combination's factor-labelled
    images): the share `copy_rate` of its samples that are near copies of one of that label's training
    images: the nearest such reconstruction has pixel similarity (1 - RMSE) above `threshold` (take
    ExtractionSplit.threshold) and the extraction's nearest-neighbour rule holds (d(it) < nn_ratio x d(nearest
    other training image)); `nn_rate`: the share passing the nearest-neighbour rule alone (the project's
    memorization rule for samples; the threshold, calibrated on prefix continuations, is the stricter bar).
    Rates: `pooled_rates(table, "kind", ["copy", "nn"])`."""
    data, _ = _folded(image_set)
    labels_N = data.train_labels.numpy()
    present = np.unique(labels_N)
    s = _pick(samples, model, present, samples_per_class, seed, batch_size)
    recon = decode_all(model, tokenize_all(model, data.train_images, batch_size), batch_size)
    if recon.shape[1:] != s.images_Sx3xHxW.shape[1:]:
        raise UsageError(f"samples are {tuple(s.images_Sx3xHxW.shape[1:])} images, reconstructions "
                         f"{tuple(recon.shape[1:])}")
    d_SxN = torch.cdist(s.images_Sx3xHxW.flatten(1).double(), recon.flatten(1).double())
    same_SxN = torch.from_numpy(s.labels_S[:, None] == labels_N[None, :])
    nearest_S = d_SxN.masked_fill(~same_SxN, float("inf")).argmin(1).numpy()
    sim_S = pixel_similarity(s.images_Sx3xHxW, recon[torch.from_numpy(nearest_S)])
    nn_S = nearest_neighbour_ratio(s.images_Sx3xHxW, recon, nearest_S, np.asarray(data.train_ids))
    close_S = nn_S < nn_ratio
    copy_S = (sim_S > threshold) & close_S
    from synthetic.factors import N_COMBOS

    names = image_set.class_names
    rows = [{"label": int(c), "name": names[c] if c < len(names) else str(c),
             "kind": "arbitrary" if c >= N_COMBOS else "factor", "n_train_images": int((labels_N == c).sum()),
             "n": int((s.labels_S == c).sum()), "copy_rate": float(copy_S[s.labels_S == c].mean()),
             "nn_rate": float(close_S[s.labels_S == c].mean()), "sim_mean": float(sim_S[s.labels_S == c].mean())}
            for c in present]
    return pd.DataFrame(rows)


def output_figure(rates_agg: pd.DataFrame, extraction_agg: pd.DataFrame | None = None,
                  copies_agg: pd.DataFrame | None = None, ceiling_agg: pd.DataFrame | None = None, title: str = "",
                  ceiling_label: str = "real images, reconstructed"):
    """Figure: (left) trained against held-out combinations, share of samples showing the requested shape,
    colour, both (aggregate_rates tables; `ceiling_agg`: the same of real or reconstructed images, as ticks);
    (right) arbitrary against factor labels: prefix extraction and generation near copies (pooled_rates of
    ExtractionSplit.table and of generation_copies, grouped by "kind"; the first measure of each is drawn).
    Returns the matplotlib Figure."""
    from memlab.io import new_figure

    right = [(name, t) for name, t in (("prefix extraction", extraction_agg), ("generation near copy", copies_agg))
             if t is not None and len(t)]
    fig, axes = new_figure((9.5 if right else 5.0, 3.6), 1, 2 if right else 1, squeeze=False)
    ax = axes[0, 0]
    measures = ["shape", "colour", "both"]

    def bars(ax, x0, rows, width, label, colour):
        rate, lo, hi = (rows[k].to_numpy(float) for k in ("rate", "lo", "hi"))
        ax.bar(x0, rate, width, yerr=np.vstack([rate - lo, hi - rate]), label=label, color=colour, capsize=3)

    x = np.arange(len(measures))
    for i, (g, colour) in enumerate(zip(GROUPS, ("tab:blue", "tab:orange"))):
        rows = rates_agg[rates_agg["group"] == g].set_index("measure").reindex(measures)
        if rows["rate"].notna().any():
            bars(ax, x + (i - 0.5) * 0.38, rows, 0.38, f"{g} combinations", colour)
        if ceiling_agg is not None:
            c = ceiling_agg[ceiling_agg["group"] == g].set_index("measure").reindex(measures)
            ax.scatter(x + (i - 0.5) * 0.38, c["rate"], marker="_", s=300, color="k", zorder=3,
                       label=ceiling_label if i == 0 else None)
    ax.set_xticks(x, [f"requested {m}" for m in measures], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of samples")
    ax.set_title("held-out combinations", fontsize=9)
    ax.legend(fontsize=7)
    if right:
        ax = axes[0, 1]
        for j, (name, t) in enumerate(right):
            for i, (k, colour) in enumerate(zip(("factor", "arbitrary"), ("tab:green", "tab:red"))):
                rows = t[(t["group"] == k) & (t["measure"] == t["measure"].iloc[0])]
                if len(rows):
                    bars(ax, np.array([j + (i - 0.5) * 0.38]), rows.iloc[:1], 0.38,
                         f"{k} labels" if j == 0 else None, colour)
        ax.set_xticks(np.arange(len(right)), [n for n, _ in right], fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("share extracted / copied")
        ax.set_title("by label kind", fontsize=9)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
