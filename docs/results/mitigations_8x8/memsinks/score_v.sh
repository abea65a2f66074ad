#!/bin/bash
# second pass, once each base run's yardstick is finished: the same rows with verdicts at matched cost
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
P=/work/main/.venv/bin/python
while ! grep -q "MEMSINKS SCORE DONE" /work/runs8/memsinks/score.log; do sleep 30; done
for arch in next-scale raster; do for seed in 0 1; do
  B=/work/runs8/B-$arch-s$seed S=/work/runs8/memsinks/S-$arch-s$seed O=/work/runs8/memsinks/verdicts-$arch-s$seed
  [ -f $O/metrics.json ] && continue
  while [ ! -f $B/yardstick/metrics.json ]; do sleep 30; done
  $P /work/main/docs/results/mitigations_8x8/memsinks/score.py $B $S $O > $O.log 2>&1
done; done
echo MEMSINKS VERDICTS DONE
