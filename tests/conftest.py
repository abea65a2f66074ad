import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# pytest runs two workers on two cores: one torch/BLAS thread each avoids oversubscription, which made tiny
# torch ops ~20x slower on the shared CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
