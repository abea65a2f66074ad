"""The tokens of every augmentation of every training image (K x A x L) for UnitMem's pass, and their cache.

They depend only on the frozen tokenizer, the augmentation config and the images, never on the transformer,
so one cache file serves every checkpoint of a run (memlab.iar.stages): a pass with a cache hit augments and
tokenizes nothing. The file (`unitmem_tokens_<digest>.npz`: `tokens` int32 K x A x L and `key` JSON) is
written atomically, without pickle, and used only when its key (tokenizer weights and config, augment config,
chunk size, image ids and pixels, shape) is this pass's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin

from memlab.errors import UsageError
from memlab.iar.augment import augment
from memlab.iar.config import AugmentConfig
from memlab.iar.interface import IARModel
from memlab.io import error_reason, normalize_json, read_npz, save_npz, to_json

# augmented images per tokenizer call; on a shared 2-core CPU 100 to 160 were fastest (about 10% over 64),
# larger ones slower. Part of the cache key: another value tokenizes in other chunks.
TOKEN_BATCH = 128


class AugmentedTokens:
    """Tokens of augmentation a of image k, K x A x L, tokenized on first use (or loaded from a cache).

    Images are tokenized in fixed chunks of the image list (max(1, TOKEN_BATCH // A) images, all A
    augmentations in one tokenizer call), never in UnitMem's batches: a convolution's rounding depends on
    its batch, and rounding can move a token, so fixed chunks make the tokens a function of the images,
    ids, augmentations and tokenizer alone, which is what the cache key names."""

    def __init__(self, model: IARModel, images_Kx3xHxW: torch.Tensor, image_ids: np.ndarray, cfg: AugmentConfig):
        self.model, self.images, self.ids, self.cfg = model, images_Kx3xHxW, np.asarray(image_ids), cfg
        K, A = len(images_Kx3xHxW), cfg.n_aug
        self.chunk = max(1, TOKEN_BATCH // A)
        self.tokens_KxAxL = torch.zeros(K, A, model.seq_len, dtype=torch.int32)
        self.done = np.zeros(-(-K // self.chunk), dtype=bool)  # per chunk

    def get(self, lo: int, hi: int) -> torch.Tensor:
        """Tokens B x A x L (long, on the model's device) of images lo..hi-1."""
        for c in range(lo // self.chunk, (hi - 1) // self.chunk + 1):
            if not self.done[c]:
                self._tokenize(c)
        return self.tokens_KxAxL[lo:hi].to(self.model.device, torch.long)

    def _tokenize(self, c: int) -> None:
        lo, hi = c * self.chunk, min((c + 1) * self.chunk, len(self.images))
        x, ids = self.images[lo:hi], self.ids[lo:hi]
        x_AnBx3xHxW = torch.cat([augment(x, ids, a, self.cfg) for a in range(self.cfg.n_aug)])
        with torch.no_grad():
            tokens_AxBxL = self.model.tokenize(x_AnBx3xHxW).reshape(self.cfg.n_aug, hi - lo, -1)
        self.tokens_KxAxL[lo:hi] = tokens_AxBxL.transpose(0, 1).to("cpu", torch.int32)
        self.done[c] = True

    # --- cache -----------------------------------------------------------------------------------------
    @cached_property
    def key(self) -> dict:
        """What the tokens depend on: the tokenizer's weights, the augmentations, the image ids and pixels."""
        ids = to_json([str(i) for i in self.ids], indent=None).encode()
        return normalize_json({"what": "UnitMem augmented tokens", "tokenizer": tokenizer_digest(self.model),
                               "augment": asdict(self.cfg), "token_batch": TOKEN_BATCH,
                               "image_ids": hashlib.sha256(ids).hexdigest(),
                               "pixels": _tensor_digest(self.images), "shape": list(self.tokens_KxAxL.shape)})

    def path(self, directory: Path) -> Path:
        """The cache file of this key in `directory` (one file per key, so caches of several configs coexist)."""
        return Path(directory) / f"unitmem_tokens_{hashlib.sha256(to_json(self.key).encode()).hexdigest()[:20]}.npz"

    def load(self, directory: Path) -> bool:
        """Fill every chunk from `directory`'s file for this key; False when there is none. A damaged file
        is a UsageError naming it."""
        path = self.path(directory)
        if not path.is_file():
            return False
        saved = read_npz(path, what="UnitMem token cache")
        try:
            if json.loads(str(saved["key"])) != self.key:
                return False  # a digest collision or a copied file: not these tokens
            tokens = saved["tokens"]
        except KeyError as e:
            raise UsageError(f"damaged UnitMem token cache {path}: no {e}") from None
        except ValueError as e:
            raise UsageError(f"damaged UnitMem token cache {path}: {error_reason(e)}") from None
        shape = tuple(self.tokens_KxAxL.shape)
        if tokens.shape != shape or tokens.dtype != np.int32 or not (tokens.size == 0 or (
                tokens.min() >= 0 and tokens.max() < self.model.vocab_size)):
            raise UsageError(f"damaged UnitMem token cache {path}: tokens are not int32 {' x '.join(map(str, shape))} "
                             f"in [0, {self.model.vocab_size})")
        self.tokens_KxAxL = torch.from_numpy(tokens)
        self.done[:] = True
        return True

    def save(self, directory: Path) -> None:
        """Tokenize what a resumed pass skipped, then write every token atomically."""
        for c in np.flatnonzero(~self.done):
            self._tokenize(int(c))
        save_npz(self.path(directory), key=np.array(to_json(self.key)), tokens=self.tokens_KxAxL.numpy())


def tokenizer_digest(model: IARModel) -> str:
    """SHA-256 of the attached tokenizer's type, config and weights; of the whole model when it has no
    separate tokenizer module (the fake's tokenizer is a fixed function; a stale hit is never possible)."""
    tok = model.tokenizer_module()
    h = hashlib.sha256(f"{type(tok).__module__}.{type(tok).__qualname__}".encode())
    config = dict(tok.config) if isinstance(tok, ConfigMixin) else {}
    config = {k: v for k, v in config.items() if not k.startswith("_")}  # not diffusers' bookkeeping
    h.update(to_json(config, indent=None).encode())
    for name, t in sorted(tok.state_dict().items()):
        h.update(f"{name} {t.dtype} {tuple(t.shape)}".encode())
        h.update(_tensor_digest(t).encode())
    return h.hexdigest()


def _tensor_digest(t: torch.Tensor) -> str:
    bytes_N = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
    return hashlib.sha256(f"{t.dtype} {tuple(t.shape)} ".encode() + bytes_N.tobytes()).hexdigest()
