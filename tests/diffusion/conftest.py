"""Diffusion tests share JAX's persistent compilation cache: compiling (not running) dominates these tiny
training runs, and the same programs recur across tests and test sessions."""

from memlab.diffusion.compile_cache import enable_compilation_cache

enable_compilation_cache()
