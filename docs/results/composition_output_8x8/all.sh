#!/bin/bash
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
cd /work/main
for r in heldout-next-scale-s0 arbitrary-next-scale-s0 heldout-raster-s0 arbitrary-raster-s0; do
  [ -f /work/runs8/comp/$r/metrics.json ] || { echo "skip $r (not finished)"; continue; }
  echo "$(date +%T) $r"
  .venv/bin/python docs/results/composition_output_8x8/measure.py /work/runs8/comp/$r /work/runs8/factor-output/$r 32 > /work/runs8/factor-output/$r.log 2>&1
done
echo "$(date +%T) done"
