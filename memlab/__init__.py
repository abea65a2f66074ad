"""memlab: a laboratory for memorization in generative image models.

The JAX half lives in `memlab.diffusion`, `memlab.crossover`, `memlab.sweep`; the PyTorch half in
`memlab.iar`. Importing `memlab` itself imports neither framework.
"""

__version__ = "0.1.0"
