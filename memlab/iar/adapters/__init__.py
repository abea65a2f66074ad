"""Models memlab did not train, behind the IARModel interface: `--model SCHEME:PATH` on the IAR commands.

Schemes: `diffusers:PATH`, a directory written by AmusedPipeline.save_pretrained (memlab.iar.adapters.amused).
With --model, the command's RUN is a work directory (kind iar-external) that records the model and the
captioned image set (memlab.iar.adapters.captions), so later commands on RUN need neither flag. No framework
import here: `memlab --help` stays light.
"""

from __future__ import annotations

from pathlib import Path

from memlab.errors import UsageError

SCHEMES = ("diffusers",)
KIND = "iar-external"


def parse_model(spec: str) -> tuple[str, Path]:
    """'diffusers:PATH' -> ('diffusers', absolute PATH)."""
    scheme, sep, path = spec.partition(":")
    if not sep or not path:
        raise UsageError(f"--model must be SCHEME:PATH ({', '.join(s + ':PATH' for s in SCHEMES)}), got {spec!r}")
    if scheme not in SCHEMES:
        raise UsageError(f"unknown --model scheme {scheme!r}; allowed: {', '.join(SCHEMES)}")
    return scheme, Path(path).expanduser().absolute()


def is_external(args) -> bool:
    """Whether a command's RUN is (or, with --model, becomes) a work directory of an external model."""
    from memlab.rundir import kind_of

    if vars(args).get("model") is not None:
        return True
    run = Path(vars(args).get("run") or "")
    return run.is_dir() and kind_of(run) == KIND


def check_model_flags(args) -> None:
    """External-model flags on a memlab run are a mistake, not something to ignore: one line naming the flag."""
    if is_external(args):
        return
    a = vars(args)
    for name in ("images", "captions", "device", "precision", "reveal_seed", "generate_steps", "guidance"):
        if a.get(name) is not None:
            raise UsageError(f"--{name.replace('_', '-')} is an option of external models (--model diffusers:PATH); "
                             f"{a.get('run')} is a memlab run")
