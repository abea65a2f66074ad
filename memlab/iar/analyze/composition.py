"""`--what composition` (issue 18): does a model trained on the `factors` image set compose the factors of a
combination it never saw, and does it recall the training images of labels that no factor determines?

Both views are measured at every selected checkpoint of the run (`--epochs`, default: every saved one and the
final model), so the point where composition appears, or memorization takes over, is visible:
- output view (memlab.iar.analyze.factor_output): class-conditional samples of every shape x colour
  combination read by per-factor classifiers trained on fresh images (stored in RUN/factor_classifiers/),
  trained against held-out combinations; and for arbitrary labels the yardstick's extraction of their training
  images and the share of their samples that are near copies, against factor-determined labels;
- internal view (memlab.iar.analyze.probes): cross-validated linear probes of every block's MLP units for
  every factor, beside a shuffled-factor control, and the transfer of a probe from trained to held-out
  combinations.
One set of class-conditional samples per checkpoint serves every output measure. The samples, the probes'
folds and the bootstrap use the analysis seed, so a checkpoint's numbers do not depend on which others ran.

Tables: composition_rates (per combination and epoch), composition_output (trained vs held-out, per epoch),
composition_arbitrary (arbitrary vs factor labels, per epoch), composition_probes (per block, factor, probe,
label pass, split and epoch), composition_ceiling (the same rates of real and reconstructed images)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from memlab.errors import UsageError
from memlab.iar.analyze.context import Context, Result

OUTPUT_MEASURES = ("shape", "colour", "both")


def factor_run(ctx_or_run) -> tuple[Path, object, object]:
    """(run directory, its ImageDataConfig, its ImageSet with factors) of a memlab run of --data factors; a
    one-line UsageError otherwise (checked before anything is written)."""
    from memlab.iar.data import load_images
    from memlab.iar.load import read_run_config

    run = ctx_or_run.run if isinstance(ctx_or_run, Context) else ctx_or_run
    if run is None:
        raise UsageError("the composition analysis needs the run directory (its checkpoints and image set)")
    cfg = read_run_config(run).data
    if cfg.data != "factors":
        raise UsageError(f"--what composition needs a run trained on --data factors, got --data {cfg.data} "
                         f"({run})")
    return Path(run), cfg, load_images(cfg)


def selected_epochs(run: Path, epochs: tuple[int, ...]) -> list[int]:
    """The epochs to measure: `epochs` (each a saved checkpoint or the final epoch), else all of them."""
    from memlab.iar.load import read_run_config
    from memlab.iar.stages import resolve_stage, saved_epochs

    final = resolve_stage(run, read_run_config(run).train.codebook_size).epoch
    every = sorted(set(saved_epochs(run)) | {final})
    for e in epochs:
        if e not in every:
            raise UsageError(f"--epochs {e}: no checkpoint of that epoch in {run}; saved: "
                             f"{', '.join(map(str, every))}")
    return sorted(set(epochs)) if epochs else every


def _model_at(run: Path, epoch: int):
    from memlab.iar.load import load_run, run_stage

    stage = run_stage(run, checkpoint=epoch)
    return load_run(run, stage if stage.name != "final" else None), stage


def measure_epoch(model, image_set, classifiers, cfg, epoch: int) -> dict[str, pd.DataFrame]:
    """Both views of one model: the tables of one epoch (each with an `epoch` column)."""
    from memlab.iar.analyze import factor_output as fo
    from memlab.iar.analyze.probes import internal_view
    from memlab.iar.extract import ExtractConfig
    from synthetic.factors import N_COMBOS

    info = image_set.factors
    labels = np.unique(np.concatenate([np.arange(N_COMBOS), image_set.train_labels]))
    samples = fo.draw_samples(model, labels, samples_per_class=cfg.samples_per_class, seed=cfg.seed,
                              batch_size=cfg.batch_size)
    rates = fo.output_rates(model, image_set, classifiers, samples_per_class=cfg.samples_per_class, seed=cfg.seed,
                            batch_size=cfg.batch_size, samples=samples)
    boot = dict(n_boot=cfg.n_boot, level=cfg.level, seed=cfg.seed)
    out = {"composition_output": fo.aggregate_rates(rates, **boot), "composition_rates": rates}
    ext = fo.arbitrary_extraction(model, image_set, ExtractConfig(prefix=cfg.prefix, batch_size=cfg.batch_size),
                                  seed=cfg.seed)
    copies = fo.generation_copies(model, image_set, threshold=ext.threshold, nn_ratio=ext.nn_ratio,
                                  samples_per_class=cfg.samples_per_class, seed=cfg.seed, batch_size=cfg.batch_size,
                                  samples=samples)
    contrast = ("arbitrary", "factor") if info.train_arbitrary.any() else None
    arb = [fo.pooled_rates(ext.table, "kind", ["extracted"], contrast=contrast, **boot),
           fo.pooled_rates(copies, "kind", ["copy"], contrast=contrast, **boot)]
    out["composition_arbitrary"] = pd.concat(arb, ignore_index=True).assign(threshold=ext.threshold)
    out["composition_copies"] = copies
    out["composition_probes"] = internal_view(model, image_set, batch_size=cfg.batch_size, folds=cfg.probe_folds,
                                              seed=cfg.seed, pool=cfg.probe_pool)
    return {k: v.assign(epoch=epoch) for k, v in out.items()}


def _row(t: pd.DataFrame, group: str, measure: str) -> dict:
    r = t[(t["group"] == group) & (t["measure"] == measure)]
    if not len(r):
        return {"rate": None, "lo": None, "hi": None}
    r = r.iloc[0]
    return {"rate": float(r["rate"]), "lo": float(r["lo"]), "hi": float(r["hi"])}


def epoch_summary(tables: dict[str, pd.DataFrame], epoch: int) -> dict:
    """The headline numbers of one epoch: requested factors shown, trained vs held-out; arbitrary vs factor
    extraction and near copies; per factor the best block's probe (constant labels, train split and
    train->novel transfer) and its control."""
    from memlab.iar.analyze.probe_report import probe_summary

    o = tables["composition_output"]
    o = o[o["epoch"] == epoch]
    a = tables["composition_arbitrary"]
    a = a[a["epoch"] == epoch]
    p = tables["composition_probes"]
    probes = [s for s in probe_summary(p[p["epoch"] == epoch])
              if s["labels"] == "constant" and s["split"] in ("train", "train->novel", "train->heldout")]
    return {"epoch": epoch,
            "output": {g: {m: _row(o, g, m) for m in OUTPUT_MEASURES}
                       for g in ("trained", "held-out", "held-out - trained")},
            "arbitrary": {m: {g: _row(a[a["measure"] == m], g, m) for g in
                              ("arbitrary", "factor", "arbitrary - factor")} for m in ("extracted", "copy")},
            "probes": probes}


def course_figure(tables: dict[str, pd.DataFrame], train_rows: list[dict], title: str = ""):
    """Over training: (1) share of samples showing both requested factors, trained vs held-out combinations,
    with the run's teacher-forced training accuracy; (2) extraction and near-copy rates, arbitrary vs factor
    labels; (3) each factor's probe accuracy at its best block (constant labels; solid: cross-validated on
    training images; dashed: transferred to held-out combinations), controls dotted."""
    from memlab.io import new_figure

    fig, axes = new_figure((13.5, 3.6), 1, 3, squeeze=False)
    ax = axes[0, 0]
    o = tables["composition_output"]
    for g, colour in (("trained", "tab:blue"), ("held-out", "tab:orange")):
        r = o[(o["group"] == g) & (o["measure"] == "both")].sort_values("epoch")
        if len(r):
            ax.plot(r["epoch"], r["rate"], "o-", color=colour, label=f"{g} combinations")
            ax.fill_between(r["epoch"], r["lo"], r["hi"], color=colour, alpha=0.2)
    if train_rows:
        ax.plot([r["epoch"] for r in train_rows], [r.get("train_acc") for r in train_rows], "k:", lw=1,
                label="train token accuracy")
    ax.set_title("samples showing the requested shape and colour", fontsize=9)
    ax = axes[0, 1]
    a = tables["composition_arbitrary"]
    for (m, g), (colour, style) in {("extracted", "arbitrary"): ("tab:red", "o-"),
                                    ("extracted", "factor"): ("tab:green", "o-"),
                                    ("copy", "arbitrary"): ("tab:red", "s--"),
                                    ("copy", "factor"): ("tab:green", "s--")}.items():
        r = a[(a["measure"] == m) & (a["group"] == g)].sort_values("epoch")
        if len(r):
            ax.plot(r["epoch"], r["rate"], style, color=colour, label=f"{g} labels, {m}")
            ax.fill_between(r["epoch"], r["lo"], r["hi"], color=colour, alpha=0.15)
    ax.set_title("training images extracted (o) / samples that copy one (s)", fontsize=9)
    ax = axes[0, 2]
    p = tables["composition_probes"]
    p = p[(p["labels"] == "constant") & (p["site"] == "units")]
    colours = dict(zip(("shape", "colour", "position", "size"), ("tab:blue", "tab:orange", "tab:green", "tab:purple")))
    for factor, colour in colours.items():
        for split, style in (("train", "-"), ("train->novel", "--")):
            rows = p[(p["factor"] == factor) & (p["split"] == split)]
            if not len(rows):
                continue
            real = rows[rows["probe"] == "real"].groupby("epoch")["accuracy"].max()
            ax.plot(real.index, real.values, style, color=colour, marker="o", ms=3,
                    label=factor if split == "train" else None)
            if split == "train":
                ctl = rows[rows["probe"] == "control"].groupby("epoch")["accuracy"].max()
                ax.plot(ctl.index, ctl.values, ":", color=colour, lw=1)
    ax.set_title("probe accuracy, best block (-- held-out combos, : control)", fontsize=9)
    for ax in axes[0]:
        ax.set_xscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylim(-0.02, 1.05)
        ax.legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def analyze(ctx: Context) -> Result:
    from memlab.iar.analyze import factor_output as fo
    from memlab.iar.analyze.probe_report import probe_figure
    from memlab.iar.factor_classifier import DEFAULT_CONFIG, ensure_factor_classifiers
    from memlab.iar.stages import _history

    run, data_cfg, image_set = factor_run(ctx)
    epochs = selected_epochs(run, ctx.cfg.epochs)
    clf_cfg = dataclasses.replace(DEFAULT_CONFIG, steps=ctx.cfg.classifier_steps, n_fresh=ctx.cfg.classifier_images)
    final_model, _ = _model_at(run, epochs[-1])
    classifiers = ensure_factor_classifiers(run, data_cfg, clf_cfg, image_set=image_set,
                                            reconstruct_with=final_model if ctx.cfg.classifier_reconstructions else None)
    parts: dict[str, list[pd.DataFrame]] = {}
    for epoch in tqdm(epochs, desc="composition: checkpoints", file=sys.stderr):
        model, _ = _model_at(run, epoch)
        for name, t in measure_epoch(model, image_set, classifiers, ctx.cfg, epoch).items():
            parts.setdefault(name, []).append(t)
    tables = {name: pd.concat(ts, ignore_index=True) for name, ts in parts.items()}
    ceiling = pd.concat([fo.real_rates(image_set, classifiers), fo.real_rates(image_set, classifiers,
                                                                              model=final_model)])
    tables["composition_ceiling"] = ceiling
    last = epochs[-1]
    at_last = {k: v[v["epoch"] == last] for k, v in tables.items() if "epoch" in v}
    ceiling_agg = fo.aggregate_rates(ceiling[ceiling["source"] == "reconstructed"], n_boot=ctx.cfg.n_boot,
                                     level=ctx.cfg.level, seed=ctx.cfg.seed)
    arb = at_last["composition_arbitrary"]
    figures = {
        "composition": fo.output_figure(at_last["composition_output"], arb[arb["measure"] == "extracted"],
                                        arb[arb["measure"] == "copy"], ceiling_agg, title=f"epoch {last}"),
        "composition_probes": probe_figure(at_last["composition_probes"], title=f"epoch {last}"),
        "composition_training": course_figure(tables, _history(run)[0], title=str(run.name)),
    }
    info = image_set.factors
    from synthetic.factors import combo_text

    summary = {"epochs": epochs, "heldout_combos": [combo_text(c) for c in info.heldout_combos],
               "arbitrary_share": float(info.train_arbitrary.mean()), "arbitrary_classes": info.arbitrary_classes,
               "classifiers": {k: classifiers.info.get(k) for k in ("accuracy", "status", "trained_on")
                               if k in classifiers.info},
               "by_epoch": [epoch_summary(tables, e) for e in epochs]}
    return Result(tables=tables, figures=figures, summary=summary)
