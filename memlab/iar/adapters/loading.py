"""Load a checked aMUSEd directory onto a device, at a precision, and choose batch sizes from the memory left.

Precision: the transformer and the text encoder run in half precision (fp16) on a GPU by default, as the
hub's fp16 variant of amused-256/512 is meant to; the VQModel stays in float32 (the pipeline upcasts it for
decoding too: `force_upcast`), so tokens and decoded pixels do not depend on the precision. On a CPU every
component is float32 unless --precision bf16.
"""

from __future__ import annotations

import os
from pathlib import Path

from memlab.errors import UsageError
from memlab.iar.adapters.pipeline_dir import PipelineDir
from memlab.io import error_reason

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
FORWARD_CAP = 256  # rows per forward pass at most, whatever the memory


def resolve_device(device: str) -> str:
    """auto -> cuda when a GPU is present, else cpu; cuda[:N] must exist."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    head, _, idx = device.partition(":")
    if head != "cuda" or (idx and not idx.isdigit()):
        raise UsageError(f"unknown --device {device!r}; allowed: auto, cpu, cuda, cuda:N")
    if not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA device is available here; use --device cpu")
    if idx and int(idx) >= torch.cuda.device_count():
        raise UsageError(f"--device {device}: only {torch.cuda.device_count()} CUDA devices (cuda:0..)")
    return device


def resolve_dtype(precision: str, device: str):
    import torch

    if precision not in PRECISIONS:
        raise UsageError(f"unknown --precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
    if precision == "fp16" and device == "cpu":
        raise UsageError("--precision fp16 needs a GPU (not every CPU kernel has half precision); use bf16 or fp32")
    if precision == "auto":
        precision = "fp32" if device == "cpu" else "fp16"
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def _load(cls, folder: Path, what: str, **kw):
    from safetensors import SafetensorError

    try:
        out = cls.from_pretrained(folder, output_loading_info=True, **kw)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as e:
        raise UsageError(f"cannot load the {what} in {folder}: {error_reason(e)}") from None
    module, info = out
    missing = info.get("missing_keys") or []
    if missing:
        raise UsageError(f"cannot load the {what} in {folder}: it lacks {len(missing)} parameters of "
                         f"{cls.__name__} (e.g. {sorted(missing)[0]}): weights of another model")
    return module


def load_amused(pdir: PipelineDir, *, device: str = "cpu", dtype=None, reveal_seed: int = 0,
                generate_steps: int = 12, guidance: float = 1.0):
    """-> AmusedIAR in eval mode on `device` (transformer and text encoder in `dtype`, VQModel in float32)."""
    import torch
    from diffusers import AmusedScheduler, UVit2DModel, VQModel
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer
    from transformers.utils import logging as hf_logging

    from memlab.iar.adapters.amused import AmusedIAR

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # memlab never loads anything from a hub
    dtype = dtype or torch.float32
    root, var = pdir.path, pdir.variants
    quiet = {"low_cpu_mem_usage": False}  # without accelerate diffusers falls back to this anyway, with a warning
    vq = _load(VQModel, root / "vqvae", "VQModel", variant=var["vqvae"], torch_dtype=torch.float32, **quiet)
    tr = _load(UVit2DModel, pdir.folder("transformer"), "UVit2DModel", variant=var["transformer"], torch_dtype=dtype, **quiet)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # transformers reports the unused vision keys of a full CLIP checkpoint
    hf_logging.disable_progress_bar()
    try:
        te = _load(CLIPTextModelWithProjection, root / "text_encoder", "CLIPTextModelWithProjection",
                   variant=var["text_encoder"], dtype=dtype)
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    try:
        tok = CLIPTokenizer.from_pretrained(root / "tokenizer")
        sched = AmusedScheduler.from_pretrained(root / "scheduler")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"cannot load the tokenizer or scheduler in {root}: {error_reason(e)}") from None
    model = AmusedIAR(vq.to(device).eval(), te.to(device).eval(), tok, tr, sched, reveal_seed=reveal_seed,
                      generate_steps=generate_steps, guidance=guidance)
    return model.to(device).eval()


def weight_bytes(pdir: PipelineDir, dtype_bytes: int) -> int:
    """Bytes the loaded weights take: the safetensors files, rescaled from the bytes per value they hold."""
    total = 0
    for comp in ("vqvae", "transformer", "text_encoder"):
        folder = pdir.folder(comp)
        for f in folder.glob("*.safetensors"):
            stored = 2 if ".fp16." in f.name else 4
            per = 4 if comp == "vqvae" else dtype_bytes
            total += f.stat().st_size * per // stored
            break
    return total


def row_bytes(pdir: PipelineDir, dtype_bytes: int) -> int:
    """Activation bytes of one sequence in a forward pass that keeps what a backward pass needs (gradient
    localizers), with float32 logits for the scores: per layer about 16 hidden-size and 4 MLP-size vectors per
    token plus the attention maps (assumed 16 heads), and the logits three times over."""
    L, D, U = pdir.seq_len, pdir.hidden_size, pdir.intermediate_size
    per_layer = L * (16 * D + 4 * U) * dtype_bytes + 16 * L * L * dtype_bytes
    return pdir.n_layers * per_layer + 3 * L * pdir.codebook_size * 4


def free_bytes(device: str) -> int:
    import torch

    if device.startswith("cuda"):
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 8 << 30


def auto_batch_size(pdir: PipelineDir, device: str, dtype, default: int) -> int:
    """Rows per forward pass that fit in half of the memory left once the weights are loaded; on a CPU never
    more than `default` (the configs' own), on a GPU at most FORWARD_CAP."""
    import torch

    nbytes = torch.tensor([], dtype=dtype).element_size()
    room = (free_bytes(device) - (weight_bytes(pdir, nbytes) if device.startswith("cuda") else 0)) // 2
    fits = max(1, int(room // row_bytes(pdir, nbytes)))
    return min(fits, default if device == "cpu" else FORWARD_CAP)
