#!/bin/bash
# after train.sh: score each MemSinks run on its base run's numbers (sinks off and on), one at a time
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
P=/work/main/.venv/bin/python
while ! grep -q "MEMSINKS TRAIN DONE" /work/runs8/memsinks/train.log; do sleep 30; done
for arch in next-scale raster; do for seed in 0 1; do
  S=/work/runs8/memsinks/S-$arch-s$seed O=/work/runs8/memsinks/score-$arch-s$seed
  [ -f $O/metrics.json ] && continue
  $P /work/main/docs/results/mitigations_8x8/memsinks/score.py /work/runs8/B-$arch-s$seed $S $O > $O.log 2>&1
done; done
echo MEMSINKS SCORE DONE
