"""JAX's persistent compilation cache. On a few CPU cores, compiling the small training, evaluation and
sampling programs takes longer than running them; the cache makes every later run (or test) with the same
shapes load them instead. MEMLAB_JAX_CACHE names the directory; 'off' disables it."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT = Path.home() / ".cache" / "memlab" / "jax"


def enable_compilation_cache(path: str | Path | None = None) -> Path | None:
    import jax

    where = path or os.environ.get("MEMLAB_JAX_CACHE") or DEFAULT
    if str(where) == "off":
        return None
    jax.config.update("jax_compilation_cache_dir", str(where))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    return Path(where)
