"""What the IAR commands do with `--model diffusers:PATH`: resolve the model and image set (from the flags, or
from the work directory RUN that a first command set up), check everything, load, and hand back what
`memlab.commands.iar_localize._open` returns for a trained run: (model, RunData, output RunDir, Stage).

RUN/config.json   {"kind": "iar-external", "external": {model, images, captions, reveal_seed, generate_steps,
                   guidance}}: what decides the numbers; --device and --precision may change between commands
RUN/metrics.json  the pipeline's sizes, written when RUN is set up
RUN/<sub>/        what each command writes (localize, extract, yardstick, leaderboard, ...), as for a run

A derived work directory (`memlab iar unlearn RUN --out DIR`) is one more of the same kind: its "external"
table also says "transformer": "transformer", i.e. DIR/transformer holds its own (unlearned) UVit2DModel,
and every other component (VQModel, text encoder, tokenizer, scheduler) is read from the pipeline named in
"model", which is never written to. It opens once it is finished (metrics.json), like any other.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

from memlab.errors import UsageError, check_float, check_int
from memlab.iar.adapters import KIND, parse_model
from memlab.iar.adapters.cli import DEFAULTS, SAVED
from memlab.rundir import RunDir, kind_of

OWN_WEIGHTS = "transformer"  # spec key (and folder) of a derived work directory's own transformer
FORWARD_SECTIONS = ("unitmem", "extract")  # sections whose batch_size is rows per forward pass (others follow)


def _given(args) -> dict:
    a = vars(args)
    out = {k: a.get(k) for k in SAVED if a.get(k) is not None}
    if "model" in out:
        scheme, path = parse_model(out["model"])
        out["model"] = f"{scheme}:{path}"
    for k in ("images", "captions"):
        if k in out:
            out[k] = str(Path(out[k]).expanduser().absolute())
    return out


def external_spec(args) -> dict:
    """The work directory's saved spec, or the one the flags set up; flags that contradict a saved spec are
    refused (a work directory holds one model on one image set)."""
    a = vars(args)
    if a.get("checkpoint") is not None or a.get("stage") not in (None, "final"):
        raise UsageError("--checkpoint/--stage choose a training stage of a memlab run; an external model has only "
                         "its saved weights (drop them)")
    if a.get("sinks", "off") != "off":
        raise UsageError("--sinks on needs a MemSinks run trained by memlab, not an external model")
    given, run = _given(args), Path(args.run)
    if run.is_dir() and kind_of(run) == KIND:
        rd = RunDir(run, KIND)
        raw = rd.saved_config()
        saved = raw.get("external")
        if not isinstance(saved, dict) or set(saved) - {OWN_WEIGHTS} != set(SAVED) \
                or saved.get(OWN_WEIGHTS, OWN_WEIGHTS) != OWN_WEIGHTS:
            raise UsageError(f"malformed {run / 'config.json'}: expected an 'external' table with {', '.join(SAVED)} "
                             f"(and \"{OWN_WEIGHTS}\": \"{OWN_WEIGHTS}\" in a derived one)")
        if OWN_WEIGHTS in saved and not rd.is_done():
            base = (raw.get("derived") or {}).get("base_run", "RUN") if isinstance(raw.get("derived"), dict) else "RUN"
            raise UsageError(f"{run} is an unfinished unlearning (no metrics.json yet); continue it with "
                             f"`memlab iar unlearn {base} --out {run} --resume`")
        for k, v in given.items():
            if v != saved[k]:
                raise UsageError(f"{run} was set up with --{k.replace('_', '-')} {saved[k]}, not {v}; leave the "
                                 "flag out, or choose another RUN for another model or image set")
        spec = saved
    else:
        if "model" not in given:
            raise UsageError(f"{run} is not an external-model work directory; give --model diffusers:PATH to set one up")
        if "images" not in given:
            raise UsageError("--model needs --images DIR (a folder of images with a captions file)")
        spec = {**DEFAULTS, **given}
    check_int("--reveal-seed", spec["reveal_seed"], 0)
    check_int("--generate-steps", spec["generate_steps"], 1)
    check_float("--guidance", spec["guidance"], 1.0)
    return spec


def _pipeline(spec: dict, run: Path):
    """The checked pipeline of RUN's spec (a derived RUN: with its own transformer). A pipeline recorded in an
    existing RUN that is gone or damaged is a one-line error naming RUN."""
    from memlab.iar.adapters.pipeline_dir import check_pipeline_dir, with_transformer

    try:
        pdir = check_pipeline_dir(parse_model(spec["model"])[1])
        return with_transformer(pdir, run / spec[OWN_WEIGHTS]) if OWN_WEIGHTS in spec else pdir
    except UsageError as e:
        if not (run / "config.json").is_file():
            raise
        raise UsageError(f"{run}: the pipeline it was set up with ({spec['model']}, in {run / 'config.json'}) cannot "
                         f"be used: {e}") from None


def _runtime(args):
    """(device, dtype) of this command."""
    from memlab.iar.adapters.loading import resolve_device, resolve_dtype

    device = resolve_device(vars(args).get("device") or "auto")
    return device, resolve_dtype(vars(args).get("precision") or "auto", device)


def batch_defaults(args, sections, toml: dict) -> dict:
    """`toml` with rows per forward pass chosen from the memory left (memlab.iar.adapters.loading) where
    neither a flag nor the TOML file sets them; resolve() applies flags over it as usual."""
    from memlab.iar.adapters.loading import auto_batch_size

    spec = external_spec(args)
    pdir = _pipeline(spec, Path(args.run))
    device, dtype = _runtime(args)
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in toml.items()}
    for sec in sections:
        names = {f.name: f for f, _ in sec.fields()}
        if sec.name not in FORWARD_SECTIONS or "batch_size" not in names:
            continue
        table = out.setdefault(sec.name, {})
        if isinstance(table, dict) and "batch_size" not in table:
            table["batch_size"] = auto_batch_size(pdir, device, dtype, names["batch_size"].default)
    return out


def _load(spec: dict, pdir, cs, device: str, dtype):
    from memlab.iar.adapters.captions import caption_run_data
    from memlab.iar.adapters.loading import load_amused

    data, texts = caption_run_data(cs, pdir.resolution)
    model = load_amused(pdir, device=device, dtype=dtype, reveal_seed=spec["reveal_seed"],
                        generate_steps=spec["generate_steps"], guidance=spec["guidance"])
    model.set_captions(texts)
    print(f"loaded {spec['model']} ({pdir.resolution} px, {pdir.seq_len} tokens, {pdir.n_layers} blocks) on "
          f"{device} ({str(dtype).removeprefix('torch.')}); {len(cs.rows)} captioned images", file=sys.stderr)
    return model, data


def load_work_dir(path, device: str = "auto", precision: str = "auto"):
    """(AmusedIAR with its captions set, RunData) of a work directory set up by a command with --model."""
    from types import SimpleNamespace

    from memlab.iar.adapters.captions import read_caption_set

    args = SimpleNamespace(run=str(path), device=device, precision=precision)
    spec = external_spec(args)
    pdir = _pipeline(spec, Path(path))
    return _load(spec, pdir, read_caption_set(spec["images"], spec["captions"]), *_runtime(args))


def work_dir_data(path):
    """The RunData (captions included) of a work directory, without loading the model."""
    from types import SimpleNamespace

    from memlab.iar.adapters.captions import caption_run_data, read_caption_set

    spec = external_spec(SimpleNamespace(run=str(path)))
    side = _pipeline(spec, Path(path)).resolution
    return caption_run_data(read_caption_set(spec["images"], spec["captions"]), side)[0]


def work_dir_spec(path) -> dict:
    """The saved "external" table of a finished or set-up work directory (checked as every command checks it)."""
    from types import SimpleNamespace

    return external_spec(SimpleNamespace(run=str(path)))


@dataclass(frozen=True)
class Prepared:
    """RUN and everything its model needs, checked; nothing loaded or written yet."""

    spec: dict
    pdir: object  # PipelineDir
    captions: object  # CaptionSet
    device: str
    dtype: object
    run: RunDir
    mode: str


def check_external(args) -> Prepared:
    from memlab.iar.adapters.captions import read_caption_set

    spec = external_spec(args)
    pdir = _pipeline(spec, Path(args.run))
    cs = read_caption_set(spec["images"], spec["captions"])
    device, dtype = _runtime(args)
    run_rd, mode = RunDir.open(args.run, KIND, flag="RUN", continue_same=True)
    return Prepared(spec, pdir, cs, device, dtype, run_rd, mode)


def load_external(prep: Prepared):
    """-> (AmusedIAR with the image set's captions, RunData, Stage); RUN is set up (config.json, metrics.json)
    when it was new."""
    from memlab.iar.stages import Stage

    pdir, run_rd = prep.pdir, prep.run
    model, data = _load(prep.spec, pdir, prep.captions, prep.device, prep.dtype)
    if prep.mode == "fresh":
        run_rd.start({"external": prep.spec})
        run_rd.finish({"arch": model.arch, "resolution": pdir.resolution, "seq_len": pdir.seq_len,
                       "codebook_size": pdir.codebook_size, "n_blocks": pdir.n_layers,
                       "units_per_block": pdir.intermediate_size, "n_train": len(data.train_ids),
                       "n_heldout": len(data.heldout_images)})
    stage = Stage(epoch=0, name="final", model_dir=pdir.folder("transformer"), work_dir=run_rd.path, train_acc=None,
                  heldout_nll=None, target_acc=None, log_v=math.log(pdir.codebook_size))
    return model, data, stage


def open_external(args, sub: str, kind: str):
    """-> (AmusedIAR with the image set's captions, RunData, RunDir of RUN/sub, Stage); everything is checked
    and loaded before RUN (or anything in it) is written."""
    prep = check_external(args)
    out_rd, _ = RunDir.open(prep.run.path / sub, kind, flag="output directory", continue_same=True)
    model, data, stage = load_external(prep)
    return model, data, out_rd, stage
