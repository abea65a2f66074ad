#!/bin/bash
# Issue 15 acceptance trainings: the 8x8 setting with graded duplication (groups of 8 images at 1, 2, 4, 8, 16 copies).
# One tokenizer per (arch, data seed): the g0 run trains it, the g40 run reuses it (--tokenizer-from).
set -e
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
M=/work/main/.venv/bin/memlab
for spec in next-scale:0:40 raster:0:0 next-scale:1:0 raster:0:40 raster:1:0; do
  IFS=: read arch seed start <<< "$spec"; R=/work/runs8/analyze/G-$arch-s$seed-g$start
  [ -f $R/metrics.json ] && continue
  TOK=/work/runs8/analyze/G-$arch-s$seed-g0; EXTRA=""
  [ "$R" != "$TOK" ] && EXTRA="--tokenizer-from $TOK"
  $M iar train --config /work/main/settings/iar_8x8.toml --data shapes --n-train 128 --n-heldout 64 \
      --graded 1,2,4,8,16 --graded-size 8 --graded-start $start $EXTRA \
      --arch $arch --lr 5e-3 --epochs 60 --seed $seed --threads 1 --out $R
done
echo TRAIN DONE
