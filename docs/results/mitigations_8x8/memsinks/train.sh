#!/bin/bash
# MemSinks runs of the 8x8 acceptance: the base runs' command plus --memsinks 0.5 --sink-active 0.25, tokenizer reused
set -e
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
M=/work/main/.venv/bin/memlab
for arch in next-scale raster; do for seed in 0 1; do B=/work/runs8/B-$arch-s$seed R=/work/runs8/memsinks/S-$arch-s$seed
  [ -f $R/metrics.json ] && continue
  while [ ! -f $B/tokenizer/config.json ]; do sleep 30; done
  resume=""; [ -d $R ] && resume="--resume"
  $M iar train --config /work/main/settings/iar_8x8.toml --data shapes --n-train 128 --n-heldout 64 --duplicates 10 \
      --n-duplicated 8 --arch $arch --lr 5e-3 --epochs 60 --seed $seed --threads 1 \
      --memsinks 0.5 --sink-active 0.25 --tokenizer-from $B --out $R $resume
done; done
echo MEMSINKS TRAIN DONE
