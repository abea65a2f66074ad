#!/bin/bash
# Issue 18 acceptance, one run: train (if not trained) then the composition analysis at 9 checkpoints.
# 128 training images and lr 5e-3 as the 8x8 runs of issues 11-15 (docs/iar_yardstick.md), 100 epochs.
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
cd /work/main
kind=$1; arch=$2
if [ $kind = heldout ]; then extra="--heldout-share 0.25"; else extra="--arbitrary-labels 0.3"; fi
run=/work/runs8/comp/$kind-$arch-s0
if [ ! -f $run/metrics.json ]; then
  echo "$(date +%T) train $run"
  .venv/bin/memlab iar train --config settings/iar_8x8.toml --data factors $extra --arch $arch \
    --n-train 128 --n-heldout 64 --lr 5e-3 --epochs 100 --seed 0 --threads 1 --out $run 2>&1 | tail -4
fi
mem=$(python3 -c "import json;print(json.load(open('$run/metrics.json'))['memorized_epoch'])")
echo "$(date +%T) analyze $run (memorized $mem)"
.venv/bin/memlab iar analyze $run --what composition --epochs 1,2,4,8,16,32,$mem,64,100 --threads 1 --json \
  > $run.composition.json 2> $run.composition.log
echo "$(date +%T) done $run rc=$?"
