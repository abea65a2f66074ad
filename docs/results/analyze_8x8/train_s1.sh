#!/bin/bash
# Seed 1 of next-scale (late in the session), then its memorized-stage and epoch-8 analyses.
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
M=/work/main/.venv/bin/memlab
cd /work/runs8/analyze
R=G-next-scale-s1-g0
[ -f $R/metrics.json ] || $M iar train --config /work/main/settings/iar_8x8.toml --data shapes --n-train 128 --n-heldout 64 \
    --graded 1,2,4,8,16 --graded-size 8 --graded-start 0 --arch next-scale --lr 5e-3 --epochs 60 --seed 1 --threads 1 --out $R
[ -f $R.mem.json ] || { $M iar analyze $R --stage memorized --threads 1 --json > $R.mem.json.tmp 2> $R.mem.log && mv $R.mem.json.tmp $R.mem.json; }
[ -f $R.e8.json ] || { $M iar analyze $R --checkpoint 8 --what entropy,inference,frequency --threads 1 --json > $R.e8.json.tmp 2> $R.e8.log && mv $R.e8.json.tmp $R.e8.json; }
echo S1 DONE
