"""The crossover predictor: Monte Carlo training losses of the reference denoisers and the critical model
size M* where the under-parameterized memorizer's loss falls below the generalizer's. JAX, no torch."""
