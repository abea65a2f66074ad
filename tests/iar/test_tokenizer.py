"""Tokenizer: VQModel plumbing, round trip after a short training on shapes, multi-scale residual coding."""

import pytest
import torch
import torch.nn.functional as F

from memlab.iar.config import ImageDataConfig
from memlab.iar.data import image_set_tensors
from memlab.iar.tokenizer import ImageTokenizer

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained():
    """A multi-scale tokenizer trained ~60 steps on 64 shapes (a few seconds on one core)."""
    torch.manual_seed(0)
    x, *_ = image_set_tensors(ImageDataConfig(n_train=64, n_heldout=8))
    tok = ImageTokenizer(sample_size=16, scales=(1, 2, 3, 4), codebook_size=64, latent_channels=8,
                         block_out_channels=(16, 32, 32))
    opt = torch.optim.AdamW(tok.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    tok.init_codebook(x, g)
    for epoch in range(15):
        used = torch.zeros(64, dtype=torch.bool)
        for idx in torch.randperm(64, generator=g).split(16):
            recon, q_loss, tokens, residuals = tok(x[idx])
            loss = F.mse_loss(recon, x[idx]) + q_loss
            opt.zero_grad(); loss.backward(); opt.step()
            used[tokens.flatten()] = True
        tok.restart_dead_codes(used, residuals, g)
    return tok.eval(), x


def test_round_trip_close_after_short_training(trained):
    tok, x = trained
    tokens = tok.tokenize(x)
    assert tokens.shape == (64, 1 + 4 + 9 + 16) and tokens.dtype == torch.long and tokens.max() < 64
    recon = tok.decode(tokens)
    assert recon.shape == x.shape and 0 <= recon.min() and recon.max() <= 1
    mse = F.mse_loss(recon, x).item()
    baseline = F.mse_loss(x.mean(0, keepdim=True).expand_as(x), x).item()  # best constant image
    assert mse < 0.6 * baseline, (mse, baseline)
    assert torch.equal(tok.tokenize(x), tokens)  # deterministic


def test_reconstruction_improves_as_scales_are_added(trained):
    tok, x = trained
    tokens = tok.tokenize(x)
    latent = tok.encode_latent(x)
    lat_err = [F.mse_loss(tok.latent_from_tokens(tokens, k), latent).item() for k in range(1, 5)]
    img_err = [F.mse_loss(tok.decode(tokens, n_scales=k), x).item() for k in range(1, 5)]
    assert all(a > b for a, b in zip(lat_err, lat_err[1:])), lat_err  # each scale codes the residual
    assert img_err[-1] < img_err[0] * 0.8, img_err


def test_single_scale_is_vqmodel_quantization():
    torch.manual_seed(1)
    tok = ImageTokenizer(sample_size=16, scales=(4,), codebook_size=32, latent_channels=8,
                         block_out_channels=(16, 32, 32)).eval()
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        h = tok.vq.encode(x * 2 - 1).latents
        _, _, (_, _, idx) = tok.vq.quantize(h)
        assert torch.equal(tok.tokenize(x), idx.view(3, 16))
        ref = ((tok.vq.decode(h).sample + 1) / 2).clamp(0, 1)  # VQModel.decode quantizes h itself
    torch.testing.assert_close(tok.decode(tok.tokenize(x)), ref)
    assert tok.vq.quantize.legacy is False


def test_save_load_identical_tokens(tmp_path, trained):
    tok, x = trained
    tok.save_pretrained(tmp_path / "tok")
    tok2 = ImageTokenizer.from_pretrained(tmp_path / "tok", low_cpu_mem_usage=False).eval()
    assert torch.equal(tok2.tokenize(x), tok.tokenize(x))
    assert torch.equal(tok2.decode(tok.tokenize(x)), tok.decode(tok.tokenize(x)))
