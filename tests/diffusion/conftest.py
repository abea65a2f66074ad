"""Shared by the diffusion tests: a persistent XLA compilation cache, because compiling (not running)
dominates these tiny training runs, and the same programs recur across tests and test sessions."""

import os
import tempfile

import jax

jax.config.update("jax_compilation_cache_dir", os.environ.get(
    "MEMLAB_JAX_CACHE", os.path.join(tempfile.gettempdir(), "memlab-jax-cache")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
