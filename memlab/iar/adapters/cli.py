"""Command-line flags of external models (argparse only, no framework import)."""

from __future__ import annotations

import argparse

from memlab.iar.adapters.loading import PRECISIONS

# flags whose values decide the numbers: saved in RUN/config.json, fixed for the work directory
SAVED = ("model", "images", "captions", "reveal_seed", "generate_steps", "guidance")
DEFAULTS = {"captions": None, "reveal_seed": 0, "generate_steps": 12, "guidance": 1.0}


def add_model_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("external model (--model; RUN is then a work directory that records it)")
    g.add_argument("--model", default=None, metavar="diffusers:PATH",
                   help="an aMUSEd pipeline directory written by AmusedPipeline.save_pretrained (amused-256/512 "
                        "downloaded beforehand); nothing is ever fetched from a hub")
    g.add_argument("--images", default=None, metavar="DIR", help="folder of the captioned image set (with --model)")
    g.add_argument("--captions", default=None, metavar="FILE.jsonl",
                   help='one JSON line per image: {"file", "caption", "split": train|heldout, "copies"} '
                        "(default DIR/captions.jsonl)")
    g.add_argument("--device", default=None, metavar="{auto,cpu,cuda,cuda:N}",
                   help="where the pipeline runs (default auto: CUDA when present)")
    g.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="transformer and text encoder precision (default auto: fp16 on a GPU, fp32 on a CPU)")
    g.add_argument("--reveal-seed", dest="reveal_seed", type=int, default=None,
                   help="seed of the fixed reveal order that prefixes follow (default 0)")
    g.add_argument("--generate-steps", dest="generate_steps", type=int, default=None,
                   help="scheduler steps of greedy continuation and sampling (default 12, the pipeline's)")
    g.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale of continuation and sampling (default 1: none; the "
                        "pipeline's own default is 10)")
