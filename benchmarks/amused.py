"""UnitMem per image on an aMUSEd pipeline opened through `--model diffusers:PATH` (issue 17 item 4).

1. The tiny random pipeline (memlab.iar.adapters.tiny: 16 x 16 images, 16 tokens, 2 blocks) saved with
   save_pretrained and loaded through the adapter, on the CPU: UnitMem over N captioned images (A = 10
   augmentations each, every unit of every block captured), seconds per image (wall clock and CPU).
2. amused-256 sizes (256 tokens, 22 blocks of 2816 GEGLU units, hidden 1024, 8192 codes), without any download:
   the parameter count of a UVit2DModel of that config (built on the meta device), the FLOPs of UnitMem per image
   (A teacher-forced passes, ~2 x parameters x tokens each, attention included), and, when a GPU is present,
   the measured seconds per image of A captured fp16 passes of a randomly initialised transformer of that size
   at the batch size the adapter would choose (weights do not change the cost). Without a GPU the JSON says so.

Writes benchmarks/results/amused.json.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/amused.py [--n-images 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from memlab.io import write_json

OUT = Path(__file__).resolve().parent / "results" / "amused.json"

# transformer/config.json of amused-256 (the hub's amused/amused-256), the sizes that decide the cost
AMUSED_256 = dict(hidden_size=1024, use_bias=False, hidden_dropout=0.0, cond_embed_dim=768, micro_cond_encode_dim=256,
                  micro_cond_embed_dim=1280, encoder_hidden_size=768, vocab_size=8256, codebook_size=8192,
                  in_channels=768, block_out_channels=768, num_res_blocks=3, downsample=False, upsample=False,
                  block_num_heads=12, num_hidden_layers=22, num_attention_heads=16, attention_dropout=0.0,
                  intermediate_size=2816, layer_norm_eps=1e-6, ln_elementwise_affine=True, sample_size=16)
TEXT_LEN = 77  # CLIP's model_max_length


def bench_tiny(n_images: int, n_aug: int) -> dict:
    from memlab.iar.adapters.captions import caption_run_data, read_caption_set
    from memlab.iar.adapters.loading import load_amused
    from memlab.iar.adapters.pipeline_dir import check_pipeline_dir
    from memlab.iar.adapters.tiny import caption_folder, save_tiny_pipeline
    from memlab.iar.config import AugmentConfig, UnitMemConfig
    from memlab.iar.unitmem import activation_means

    with tempfile.TemporaryDirectory() as d:
        save_tiny_pipeline(Path(d) / "pipe")
        folder = caption_folder(Path(d) / "images", n_train=n_images, n_heldout=1)
        pdir = check_pipeline_dir(Path(d) / "pipe")
        model = load_amused(pdir)
        data, texts = caption_run_data(read_caption_set(folder), pdir.resolution)
        model.set_captions(texts)
        cfg = UnitMemConfig(augment=AugmentConfig(n_aug=n_aug))
        t0, c0 = time.perf_counter(), time.process_time()
        activation_means(model, data.train_images, data.train_labels, data.train_ids, cfg, progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"setting": "tiny random pipeline, CPU float32", "n_images": n_images, "n_aug": n_aug,
            "seq_len": pdir.seq_len, "n_blocks": pdir.n_layers, "units_per_block": pdir.intermediate_size,
            "wall_s_per_image": wall / n_images, "cpu_s_per_image": cpu / n_images}


def amused_256_estimate(n_aug: int) -> dict:
    from diffusers import UVit2DModel

    with torch.device("meta"):
        n_params = sum(p.numel() for p in UVit2DModel(**AMUSED_256).parameters())
    L, D, layers = AMUSED_256["sample_size"] ** 2, AMUSED_256["hidden_size"], AMUSED_256["num_hidden_layers"]
    attn = layers * 2 * 2 * L * L * D + layers * 2 * 2 * L * TEXT_LEN * D  # self and cross attention scores
    flops_pass = 2 * n_params * L + attn
    return {"n_params": n_params, "seq_len": L, "n_blocks": layers, "units_per_block": AMUSED_256["intermediate_size"],
            "n_units": layers * AMUSED_256["intermediate_size"], "flops_per_pass": flops_pass,
            "unitmem_flops_per_image": n_aug * flops_pass}


def bench_gpu_256(n_aug: int, n_images: int) -> dict:
    """A captured fp16 UnitMem-shaped pass of an amused-256-sized transformer on the GPU (random weights)."""
    from diffusers import UVit2DModel

    from memlab.iar.adapters.loading import FORWARD_CAP
    from memlab.iar.models.masked import uvit_units

    dev = torch.device("cuda")
    uvit = UVit2DModel(**AMUSED_256).to(dev, torch.float16).eval()
    units = uvit_units(uvit, "uvit")
    sums = {}

    def hook(name):
        def fn(_m, _i, out):
            s = out.detach().abs().mean(1).double()
            sums[name] = sums.get(name, 0) + s.sum(0)
        return fn

    handles = [spec.module.register_forward_hook(hook(n)) for n, spec in units.items()]
    free = torch.cuda.mem_get_info()[0]
    B = min(FORWARD_CAP, n_images)
    G = AMUSED_256["sample_size"]
    ids = torch.randint(0, AMUSED_256["codebook_size"], (B, G, G), device=dev)
    hid = torch.randn(B, TEXT_LEN, 768, device=dev, dtype=torch.float16)
    pooled = torch.randn(B, 768, device=dev, dtype=torch.float16)
    micro = torch.tensor([256.0, 256.0, 0.0, 0.0, 6.0], device=dev, dtype=torch.float16).expand(B, 5)
    with torch.no_grad():
        uvit(ids, encoder_hidden_states=hid, pooled_text_emb=pooled, micro_conds=micro)  # warm-up
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n_aug):
            uvit(ids, encoder_hidden_states=hid, pooled_text_emb=pooled, micro_conds=micro)
        torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    for h in handles:
        h.remove()
    return {"device": torch.cuda.get_device_name(dev), "batch": B, "free_bytes_before": free,
            "s_per_image_transformer": wall / B, "note": "transformer passes with hooks only (no VQ encoding)"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-images", type=int, default=16)
    p.add_argument("--n-aug", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tiny = bench_tiny(args.n_images, args.n_aug)
    print(f"tiny pipeline, CPU: UnitMem {tiny['wall_s_per_image'] * 1e3:.1f} ms per image (wall), "
          f"{tiny['cpu_s_per_image'] * 1e3:.1f} ms CPU")
    est = amused_256_estimate(args.n_aug)
    print(f"amused-256: {est['n_params'] / 1e6:.0f} M transformer parameters, {est['n_units']} units, "
          f"UnitMem {est['unitmem_flops_per_image'] / 1e12:.2f} TFLOP per image")
    gpu = bench_gpu_256(args.n_aug, 64) if torch.cuda.is_available() else None
    if gpu:
        print(f"amused-256 on {gpu['device']}: {gpu['s_per_image_transformer'] * 1e3:.1f} ms per image")
    write_json(args.out, {"threads": args.threads, "torch": torch.__version__, "n_aug": args.n_aug,
                          "tiny_cpu": tiny, "amused_256": est,
                          "amused_256_gpu": gpu if gpu else "not measured: no GPU on this machine",
                          "timing": "seconds per training image of one UnitMem pass"})


if __name__ == "__main__":
    main()
