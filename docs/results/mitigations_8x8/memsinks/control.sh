#!/bin/bash
# control: standard training at the deployed width of the MemSinks runs (MLP ratio 2 = 128 units, the shared half)
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
M=/work/main/.venv/bin/memlab
for arch in next-scale raster; do seed=0; B=/work/runs8/B-$arch-s$seed R=/work/runs8/memsinks/H-$arch-s$seed
  [ -f $R/metrics.json ] || $M iar train --config /work/main/settings/iar_8x8.toml --data shapes --n-train 128 --n-heldout 64 \
      --duplicates 10 --n-duplicated 8 --arch $arch --lr 5e-3 --epochs 60 --seed $seed --threads 1 --mlp-ratio 2 \
      --tokenizer-from $B --out $R
done
for arch in next-scale raster; do seed=0; B=/work/runs8/B-$arch-s$seed R=/work/runs8/memsinks/H-$arch-s$seed
  while [ ! -f $B/yardstick/metrics.json ] || pgrep -f "memsinks/score.py" > /dev/null; do sleep 20; done
  $M iar mitigations $B --method half-width=$R --tag halfwidth > /work/runs8/memsinks/control-$arch-s$seed.log 2>&1
done
echo CONTROL DONE
