"""Check an aMUSEd pipeline directory (what `AmusedPipeline.save_pretrained` writes) from its JSON files alone,
before any weight is read: every component present, of the class aMUSEd needs, with safetensors weights, and
the sizes that must agree between components. No framework import.

Layout: PATH/model_index.json names the components; PATH/vqvae, PATH/transformer (diffusers models:
config.json + diffusion_pytorch_model[.fp16].safetensors), PATH/text_encoder (transformers: config.json +
model[.fp16].safetensors), PATH/tokenizer (tokenizer_config.json + vocab.json/merges.txt or tokenizer.json),
PATH/scheduler (scheduler_config.json).

A work directory derived from a pipeline (an unlearned one: memlab.iar.adapters.derived) keeps its own
`transformer/` and takes every other component from the pipeline: `with_transformer` checks that folder.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from memlab.errors import UsageError
from memlab.io import read_json

# component -> (classes accepted, its config file, weight file stem or None)
COMPONENTS = {
    "vqvae": (("VQModel",), "config.json", "diffusion_pytorch_model"),
    "transformer": (("UVit2DModel",), "config.json", "diffusion_pytorch_model"),
    "text_encoder": (("CLIPTextModelWithProjection",), "config.json", "model"),
    "tokenizer": (("CLIPTokenizer", "CLIPTokenizerFast"), "tokenizer_config.json", None),
    "scheduler": (("AmusedScheduler",), "scheduler_config.json", None),
}
NEEDS = ", ".join(f"{c} ({' or '.join(k)})" for c, (k, _, _) in COMPONENTS.items())


@dataclass(frozen=True)
class PipelineDir:
    """A checked aMUSEd directory: where it is, which weight variant it holds, and its sizes."""

    path: Path
    variants: dict  # component -> None, or "fp16" when only half-precision weights were saved (variant="fp16")
    grid: int  # latent side: seq_len = grid ** 2
    resolution: int  # image side in pixels
    codebook_size: int
    mask_token_id: int
    hidden_size: int
    n_layers: int
    intermediate_size: int
    text_len: int
    transformer_dir: Path | None = None  # the transformer's folder when it is not PATH/transformer

    @property
    def seq_len(self) -> int:
        return self.grid ** 2

    def folder(self, component: str) -> Path:
        """Where a component's files are."""
        if component == "transformer" and self.transformer_dir is not None:
            return self.transformer_dir
        return self.path / component


def _class_of(config: dict, component: str) -> str | None:
    if component == "text_encoder":
        arch = config.get("architectures")
        return arch[0] if isinstance(arch, list) and arch and isinstance(arch[0], str) else None
    if component == "tokenizer":
        name = config.get("tokenizer_class")
        return name if isinstance(name, str) else None
    name = config.get("_class_name")
    return name if isinstance(name, str) else None


def _variant(folder: Path, stem: str) -> str | None:
    if (folder / f"{stem}.safetensors").is_file():
        return None
    if (folder / f"{stem}.fp16.safetensors").is_file():
        return "fp16"
    bins = sorted(p.name for p in folder.glob("*.bin"))
    why = f" ({bins[0]} is a pickle, which memlab never loads)" if bins else ""
    raise UsageError(f"{folder} has no safetensors weights ({stem}.safetensors){why}")


def _int(config: dict, key: str, where: Path) -> int:
    v = config.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise UsageError(f"malformed {where}: {key} must be a positive integer, got {v!r}")
    return v


def check_pipeline_dir(path: str | Path) -> PipelineDir:
    """-> PipelineDir, or a one-line UsageError naming the first thing missing or of the wrong class."""
    root = Path(path)
    if not root.is_dir():
        raise UsageError(f"--model diffusers:{root}: no such directory (an AmusedPipeline.save_pretrained directory)")
    index_file = root / "model_index.json"
    if not index_file.is_file():
        raise UsageError(f"{root} is not a diffusers pipeline directory: no model_index.json (write one with "
                         "AmusedPipeline.save_pretrained)")
    index = read_json(index_file)
    if not isinstance(index, dict):
        raise UsageError(f"malformed {index_file}: expected a JSON object")
    configs, variants = {}, {}
    for comp, (classes, cfg_name, stem) in COMPONENTS.items():
        entry = index.get(comp)
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], str)):
            raise UsageError(f"{root} has no {comp} component in model_index.json; an aMUSEd pipeline needs {NEEDS}")
        if entry[1] not in classes:
            raise UsageError(f"{root}: {comp} is a {entry[1]} (model_index.json); aMUSEd needs {' or '.join(classes)}")
        folder = root / comp
        if not (folder / cfg_name).is_file():
            raise UsageError(f"{root} has no {comp}/{cfg_name} (the {classes[0]} saved with save_pretrained)")
        cfg = read_json(folder / cfg_name)
        if not isinstance(cfg, dict):
            raise UsageError(f"malformed {folder / cfg_name}: expected a JSON object")
        found = _class_of(cfg, comp)
        if found is not None and found not in classes:
            raise UsageError(f"{folder}: {cfg_name} describes a {found}; aMUSEd needs {' or '.join(classes)}")
        configs[comp] = cfg
        if stem is not None:
            variants[comp] = _variant(folder, stem)
    tok = root / "tokenizer"
    if not ((tok / "tokenizer.json").is_file() or ((tok / "vocab.json").is_file() and (tok / "merges.txt").is_file())):
        raise UsageError(f"{tok} has neither tokenizer.json nor vocab.json + merges.txt")
    return _sizes(root, configs, variants)


def _sizes(root: Path, configs: dict, variants: dict) -> PipelineDir:
    t, vq, sch, text = configs["transformer"], configs["vqvae"], configs["scheduler"], configs["text_encoder"]
    t_file, vq_file = root / "transformer" / "config.json", root / "vqvae" / "config.json"
    codebook = _int(t, "codebook_size", t_file)
    n_codes = _int(vq, "num_vq_embeddings", vq_file)
    if n_codes != codebook:
        raise UsageError(f"{root}: the vqvae has {n_codes} codes but the transformer predicts {codebook}; "
                         "components of different pipelines")
    mask = sch.get("mask_token_id")
    vocab = _int(t, "vocab_size", t_file)
    if not isinstance(mask, int) or isinstance(mask, bool) or not codebook <= mask < vocab:
        raise UsageError(f"malformed {root / 'scheduler' / 'scheduler_config.json'}: mask_token_id must be in "
                         f"[{codebook}, {vocab - 1}] (outside the codebook, inside the transformer's vocabulary), got {mask!r}")
    blocks = vq.get("block_out_channels")
    if not isinstance(blocks, list) or not blocks:
        raise UsageError(f"malformed {vq_file}: block_out_channels must be a non-empty list")
    grid = _int(t, "sample_size", t_file)
    text_hidden = _int(text, "hidden_size", root / "text_encoder" / "config.json")
    if t.get("encoder_hidden_size") != text_hidden:
        raise UsageError(f"{root}: the text encoder's hidden size is {text_hidden} but the transformer attends to "
                         f"{t.get('encoder_hidden_size')}; components of different pipelines")
    return PipelineDir(path=root, variants=variants, grid=grid, resolution=grid * 2 ** (len(blocks) - 1),
                       codebook_size=codebook, mask_token_id=mask, hidden_size=_int(t, "hidden_size", t_file),
                       n_layers=_int(t, "num_hidden_layers", t_file),
                       intermediate_size=_int(t, "intermediate_size", t_file),
                       text_len=_int(text, "max_position_embeddings", root / "text_encoder" / "config.json"))


def with_transformer(pdir: PipelineDir, folder: Path) -> PipelineDir:
    """`pdir` with its transformer read from `folder` instead (a UVit2DModel saved with save_pretrained, of the
    same config as the pipeline's own: the same sizes, only other weights); else a one-line UsageError."""
    folder = Path(folder)
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        raise UsageError(f"{folder} holds no transformer (no config.json of a UVit2DModel saved with save_pretrained)")
    cfg, own = read_json(cfg_file), read_json(pdir.path / "transformer" / "config.json")
    if not isinstance(cfg, dict) or cfg.get("_class_name") != "UVit2DModel":
        raise UsageError(f"{cfg_file} does not describe a UVit2DModel")
    differ = sorted(k for k in set(cfg) | set(own) if not k.startswith("_") and cfg.get(k) != own.get(k))
    if differ:
        raise UsageError(f"{folder}: the transformer's {differ[0]} is {cfg.get(differ[0])!r} but the pipeline "
                         f"{pdir.path} has {own.get(differ[0])!r}; it was not made from this pipeline")
    variant = _variant(folder, COMPONENTS["transformer"][2])
    return replace(pdir, transformer_dir=folder, variants={**pdir.variants, "transformer": variant})
