#!/bin/bash
# Issue 13 LEFT 5: does INJ on the masked architecture reproduce the injected images at default size with more epochs?
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
cd /work/main
W=/work/runs8/localizers
[ -f $W/D-masked/metrics.json ] || .venv/bin/memlab iar train --arch masked --threads 1 --seed 0 --out $W/D-masked > $W/D-masked.log 2>&1
.venv/bin/python - > $W/masked_inj.out 2> $W/masked_inj.err <<'PY'
import json, time
import torch
torch.set_num_threads(1)
from pathlib import Path
from memlab.iar.config import InjectConfig
from memlab.iar.inject_recall import run_inj
run = Path("/work/runs8/localizers/D-masked")
t0 = time.process_time()
cfg = InjectConfig(fractions=(0.1, 0.2), seeds=(0,), max_epochs=1000)
summary = run_inj(run, ["zero-out", "integrated-gradients", "activation"], cfg, out=run / "inject-1000")
for p in sorted((run / "inject-1000").glob("seed-*/metrics.json")):
    m = json.loads(p.read_text())
    print(p.parent.name, {k: m.get(k) for k in ("epochs", "stopped", "n_reproduced", "n_images", "n_units")})
print(summary[summary["block"] == -1][["fraction", "method", "recall", "chance", "reproduced_share"]].to_string())
print("cpu_s", time.process_time() - t0)
PY
echo done
