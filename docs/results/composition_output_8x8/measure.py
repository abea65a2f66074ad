"""Issue 18 output view on a finished run (final weights): python run_output.py SRC_RUN OUT [SAMPLES_PER_CLASS]."""
import json, shutil, sys, time
from pathlib import Path

import torch

from memlab.iar.analyze import factor_output as fo
from memlab.iar.data import load_images
from memlab.iar.extract import ExtractConfig
from memlab.iar.factor_classifier import ensure_factor_classifiers
from memlab.iar.load import load_run, read_run_config
from memlab.io import save_figure, write_json

torch.set_num_threads(1)
src, out = Path(sys.argv[1]), Path(sys.argv[2])
spc = int(sys.argv[3]) if len(sys.argv) > 3 else 32
run = out / "run"  # a copy (weights and config only), so the classifiers are not written into the source run
if not run.exists():
    run.mkdir(parents=True)
    for p in ("config.json", "metrics.json"):
        shutil.copy(src / p, run / p)
    for p in ("model", "tokenizer"):
        shutil.copytree(src / p, run / p)
t0 = time.time()
cfg = read_run_config(run)
s = load_images(cfg.data)
model = load_run(run)
clfs = ensure_factor_classifiers(run, cfg.data, image_set=s, reconstruct_with=model)
print(f"{time.time() - t0:.0f}s classifiers {clfs.info['status']}", flush=True)
write_json(out / "classifiers.json", {k: clfs.info[k] for k in ("accuracy", "trained_on", "config", "train_seconds",
                                                                 "status")})
labels = sorted(set(range(20)) | set(s.train_labels.tolist()))
samples = fo.draw_samples(model, labels, samples_per_class=spc, seed=0, batch_size=64)
print(f"{time.time() - t0:.0f}s {len(samples.labels_S)} samples", flush=True)
rates = fo.output_rates(model, s, clfs, samples_per_class=spc, seed=0, samples=samples)
agg = fo.aggregate_rates(rates)
real = fo.real_rates(s, clfs)
recon = fo.real_rates(s, clfs, model=model)
recon_agg = fo.aggregate_rates(recon)
split = fo.arbitrary_extraction(model, s, ExtractConfig())
ext_agg = fo.pooled_rates(split.table, "kind", ["extracted"], contrast=("arbitrary", "factor"))
copies = fo.generation_copies(model, s, threshold=split.threshold, samples_per_class=spc, seed=0, samples=samples)
copies_agg = fo.pooled_rates(copies, "kind", ["copy", "nn"], contrast=("arbitrary", "factor"))
print(f"{time.time() - t0:.0f}s measured", flush=True)
for name, t in (("rates", rates), ("rates_agg", agg), ("real_rates", real), ("recon_rates", recon),
                ("recon_agg", recon_agg), ("extraction", split.table), ("extraction_agg", ext_agg),
                ("copies", copies), ("copies_agg", copies_agg)):
    t.to_csv(out / f"{name}.csv", index=False)
write_json(out / "summary.json", {"source": str(src), "samples_per_class": spc, "threshold": split.threshold,
                                  "prefix": split.prefix, "seconds": time.time() - t0})
save_figure(fo.output_figure(agg, ext_agg, copies_agg, ceiling_agg=recon_agg, title=src.name), out / "output.png")
print(agg.to_string(), ext_agg.to_string(), copies_agg.to_string(), sep="\n")
