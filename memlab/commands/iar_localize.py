"""`memlab iar localize|extract|ablate RUN`: UnitMem per unit and layer, the extraction attack, and the
top-k% unit edit beside random and bottom controls. Arguments only here (no torch at import); each
command validates everything before it loads the run or creates its output directory
(RUN/localize, RUN/extract, RUN/ablate[-TAG])."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memlab.errors import UsageError, check_tag
from memlab.iar.config import (AblateConfig, AugmentConfig, ExtractConfig, LocalizerConfig, QualityConfig,
                               UnitMemConfig, YardstickConfig)
from memlab.options import Section, add_config_flag, add_section, load_config_file, resolve

LOCALIZE = [Section("augment", AugmentConfig, title="augmentations"),
            Section("unitmem", UnitMemConfig, follow={"augment": ("augment", None)}, title="UnitMem")]
EXTRACT = [Section("extract", ExtractConfig, title="extraction")]
ABLATE = [*EXTRACT, Section("ablate", AblateConfig, title="equal-k ablation (without --localizer)"),
          Section("quality", QualityConfig, follow={"seed": ("ablate", "seed"), "batch_size": ("extract", "batch_size")},
                  title="quality")]
YARDSTICK = Section("yardstick", YardstickConfig, follow={"seed": ("ablate", "seed"), "pca_dim": ("quality", "pca_dim")},
                    title="yardstick (with --localizer): top-k edits against a random-edit cloud at matched cost")
LOCALIZER = Section("localizer", LocalizerConfig, follow={"seed": ("ablate", "seed"),
                                                          "batch_size": ("extract", "batch_size")},
                    skip=("per_image",), title="localizer (with --localizer other than unitmem; its table goes in "
                                               "RUN/localizers/NAME)")
WITH_LOCALIZER = (YARDSTICK, LOCALIZER)  # sections whose flags need --localizer
LEGACY_ONLY = ("top_pct", "factor", "controls", "n_random", "sweep", "rank", "by_block", "n_generate")


def _common(p: argparse.ArgumentParser, sections: list[Section]) -> None:
    from memlab.iar.adapters.cli import add_model_flags

    p.add_argument("run", metavar="RUN", help="IAR run directory (from `memlab iar train --out RUN`), or with --model "
                                              "a work directory for an external model (created on first use)")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object on stdout")
    g = p.add_argument_group("training stage (default: the final weights)")
    g.add_argument("--checkpoint", type=int, metavar="EPOCH", default=None,
                   help="load the model saved after this epoch (RUN/checkpoints; outputs go beside it)")
    g.add_argument("--stage", default=None, metavar="{memorized,final}",
                   help="memorized: the first epoch whose target accuracy reached the run's threshold; final")
    p.add_argument("--sinks", choices=("off", "on"), default="off",
                   help="MemSinks runs: off (default) evaluates the model as deployed, sinks dropped; on (diagnosis) "
                        "switches every sink on at its expected training gate and writes to RUN/sinks-on/...")
    add_model_flags(p)
    add_config_flag(p, [s.name for s in sections])
    for section in sections:
        add_section(p, section)


def register(iar_sub) -> None:
    """Add the three commands to the `memlab iar` sub-parsers."""
    p = iar_sub.add_parser("localize", help="UnitMem per unit, block and scale; heat-maps",
                           description="Score every MLP unit by how selectively it fires for one training image. "
                                       "Writes RUN/localize.")
    _common(p, LOCALIZE)
    p.set_defaults(func=run_localize)

    p = iar_sub.add_parser("extract", help="which training images the model regurgitates",
                           description="Teacher-forced ranking, greedy continuation from a prefix, threshold "
                                       "calibrated on held-out images. Writes RUN/extract.")
    _common(p, EXTRACT)
    p.set_defaults(func=run_extract)

    p = iar_sub.add_parser("ablate", help="edit the top-k%% UnitMem units; re-extract and re-measure quality",
                           description="With --localizer NAME: the yardstick. The localizer's top-k%% edits "
                                       "and a random-edit cloud, each scored on fixed target and control sets "
                                       "(RUN/evalsets.json) with quality costs, and verdicts at matched cost; "
                                       "writes RUN/yardstick[-TAG]. Without it: the equal-k ablation of the "
                                       "top-k%% units beside random and bottom units (RUN/ablate[-TAG]). Both "
                                       "use RUN/localize (computed if missing) and resume finished edits.")
    _common(p, [*ABLATE, *WITH_LOCALIZER])
    p.add_argument("--tag", default="", help="write to RUN/ablate-TAG instead of RUN/ablate (keep several edits)")
    p.set_defaults(func=run_ablate)


def _configs(args, sections: list[Section]) -> dict:
    from memlab.iar.adapters import check_model_flags, is_external

    check_model_flags(args)
    toml = load_config_file(args)
    if is_external(args):  # rows per forward pass fitted to the device's memory where not set
        from memlab.iar.adapters.external import batch_defaults

        toml = batch_defaults(args, sections, toml)
    return resolve(args, sections, toml=toml)


def _open(args, sub: str, kind: str):
    """Check RUN, its stage and the output directory (RUN/sub, or sub beside the stage's checkpoint), load
    model and data; -> (model, data, RunDir, Stage). Nothing is written before this returns. With --model (or a
    RUN set up with it): the external model on its captioned image set (memlab.iar.adapters.external)."""
    from memlab.iar.adapters import is_external

    if is_external(args):
        if getattr(args, "sinks", "off") == "on":
            raise UsageError("--sinks on needs a MemSinks run (memlab iar train --memsinks), not an external --model")
        from memlab.iar.adapters.external import open_external

        return open_external(args, sub, kind)
    from memlab.iar.load import load_run, load_run_data, model_run, run_stage
    from memlab.iar.pipeline import fold_duplicates
    from memlab.rundir import RunDir

    model_run(args.run)  # a trained run, or one derived from it (an unlearned run)
    stage = run_stage(args.run, args.checkpoint, args.stage)
    sinks_on = getattr(args, "sinks", "off") == "on"
    if sinks_on:  # a diagnosis of another model than the deployed one: its outputs (and evaluation sets) apart
        from dataclasses import replace

        stage = replace(stage, work_dir=stage.work_dir / "sinks-on")
    rd, _ = RunDir.open(stage.work_dir / sub, kind, flag="output directory", continue_same=True)
    model = load_run(args.run, stage if stage.name != "final" else None)
    if sinks_on:  # refused (one line, nothing written yet) for a model without sinks
        from memlab.iar.mitigate.memsinks import set_sinks

        set_sinks(model, "on")
    data = fold_duplicates(*load_run_data(args.run))
    return model, data, rd, stage


def print_table(title: str, df) -> None:
    """A pandas table on stderr (the pipeline hands its tables here; it prints nothing itself)."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for c in df.columns:
        t.add_column(str(c))
    for row in df.itertuples(index=False):
        t.add_row(*[f"{v:.3g}" if isinstance(v, float) else str(v) for v in row])
    Console(stderr=True, width=160).print(t)  # wide even when stderr is not a terminal


def _emit(args, metrics: dict) -> int:
    if args.json:
        from memlab.io import to_json

        sys.stdout.write(to_json(metrics, indent=None) + "\n")
    return 0


def _token_cache(args) -> Path:
    """UnitMem's augmented tokens, kept once per run: every checkpoint shares the frozen tokenizer."""
    return Path(args.run) / "cache"


def run_localize(args) -> int:
    cfg = _configs(args, LOCALIZE)["unitmem"]
    from memlab.iar.pipeline import localize

    model, data, rd, _ = _open(args, "localize", "iar-localize")
    return _emit(args, localize(model, data, cfg, rd, show=print_table, token_cache=_token_cache(args)))


def run_extract(args) -> int:
    cfg = _configs(args, EXTRACT)["extract"]
    from memlab.iar.pipeline import extraction

    model, data, rd, _ = _open(args, "extract", "iar-extract")
    return _emit(args, extraction(model, data, cfg, rd, show=print_table))


def run_ablate(args) -> int:
    yardstick = getattr(args, YARDSTICK.dest("localizer")) is not None
    given = {s.flag(f): s for s in (*ABLATE, *WITH_LOCALIZER) for f, _ in s.fields()
             if getattr(args, s.dest(f.name)) is not None and (f.name in LEGACY_ONLY or s in WITH_LOCALIZER)}
    wrong = [flag for flag, s in given.items() if (s in WITH_LOCALIZER) != yardstick]
    if wrong and yardstick:
        raise UsageError(f"{wrong[0]} belongs to the equal-k ablation; with --localizer the edits are set by "
                         "--ks, --factors and --cloud-ks")
    if wrong:
        raise UsageError(f"{wrong[0]} is a yardstick option: it needs --localizer NAME")
    cfgs = _configs(args, [*ABLATE, *WITH_LOCALIZER] if yardstick else ABLATE)
    check_tag("--tag", args.tag)
    from memlab.iar.extract import attack_prefix
    from memlab.iar.pipeline import ablation, load_units

    sub, kind = ("yardstick", "iar-yardstick") if yardstick else ("ablate", "iar-ablate")
    model, data, rd, stage = _open(args, f"{sub}-{args.tag}" if args.tag else sub, kind)
    attack_prefix(model, cfgs["extract"].prefix)  # before the implicit localize writes anything
    if yardstick:
        return _emit(args, _yardstick(args, model, data, cfgs, rd, stage))
    units = load_units(model, data, rd.path.parent / "localize", show=print_table, token_cache=_token_cache(args))
    return _emit(args, ablation(model, data, units, cfgs["ablate"], cfgs["extract"], cfgs["quality"], rd,
                                show=print_table))


def _yardstick(args, model, data, cfgs, rd, stage) -> dict:
    from memlab.iar.classifier import ensure_classifier
    from memlab.iar.compare import run_comparison
    from memlab.iar.load import read_run_config
    from memlab.iar.pipeline import units_digest

    run, here = Path(args.run), stage.work_dir  # the classifier belongs to the image set, the sets to the stage

    def classifier():
        model, info = ensure_classifier(run, read_run_config(run).data)
        print(f"class-consistency classifier: {info['status']}, held-out accuracy {info['heldout_accuracy']:.3f}",
              file=sys.stderr)
        return model

    units, seconds = _localizer_units(model, data, cfgs, here, _token_cache(args))
    return run_comparison(model, data, units, cfgs["yardstick"], cfgs["extract"], rd, run_dir=here,
                          classifier=None if _captioned(args) else classifier, localizer_seconds=seconds,
                          units_digest=units_digest(units), show=print_table, stage=stage.columns())


def _captioned(args) -> bool:
    """An external model on a captioned set: labels are caption ids, so there is no class to be consistent with."""
    from memlab.iar.adapters import is_external

    return is_external(args)


def _localizer_units(model, data, cfgs, here: Path, token_cache: Path):
    """(units ranked by score, the localizer's seconds): UnitMem from RUN/localize (computed if missing); any
    other localizer from RUN/localizers/NAME (computed if missing or of another config) on the run's
    evaluation sets, which are fixed first."""
    from memlab.io import read_json

    name, ycfg = cfgs["yardstick"].localizer, cfgs["yardstick"]
    if name == "unitmem":
        from memlab.iar.pipeline import load_units

        units = load_units(model, data, here / "localize", show=print_table, token_cache=token_cache)
        return units, float(read_json(here / "localize" / "metrics.json").get("seconds", 0.0))
    from memlab.iar.compare import choose_sets
    from memlab.iar.localizers import localize_into

    sets = choose_sets(model, data, here, cfgs["extract"], ycfg.targets, ycfg.seed)
    units, metrics = localize_into(here / "localizers" / name, name, model, data, sets, cfgs["localizer"])
    return units, float(metrics.get("seconds", 0.0))
