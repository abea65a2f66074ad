"""Which images get memorized: per-image memorization scores and the analyses built on them (entropy law,
dataset inference, prefix perturbation, duplication frequency), registered by name for `memlab iar analyze`."""
