"""Training on the factors set (issue 18): factorized class embeddings, the class count, the CLI's checks."""

import json

import pytest
import torch

from memlab.cli import main
from memlab.iar.load import load_run
from memlab.iar.models.layers import FactorizedClassEmbedding, class_embedding

torch.set_num_threads(1)

TINY = ["--n-train", "16", "--n-heldout", "4", "--epochs", "1", "--tokenizer-epochs", "1", "--width", "32",
        "--depth", "1", "--heads", "2", "--codebook-size", "16", "--tokenizer-channels", "8,16,16",
        "--latent-channels", "4", "--batch-size", "8"]


def test_factorized_embedding_sums_one_vector_per_factor():
    torch.manual_seed(0)
    emb = FactorizedClassEmbedding((5, 4), 28, 8)
    labels = torch.arange(28)
    out = emb(labels)
    shape, colour = emb.factors
    for c in range(20):
        want = (shape.weight[c // 4] + colour.weight[c % 4]) / 2 ** 0.5
        assert torch.allclose(out[c], want)
    assert torch.allclose(out[20:], emb.extra.weight)
    # a combination's vector is determined by its factors: circle/red - circle/yellow = square/red - square/yellow
    assert torch.allclose(out[0] - out[1], out[4] - out[5], atol=1e-6)
    # training on some combinations moves the vectors of the others that share a factor
    out[[0, 5]].sum().backward()
    assert shape.weight.grad[[0, 1]].abs().sum() > 0 and shape.weight.grad[2:].abs().sum() == 0
    assert colour.weight.grad[[0, 1]].abs().sum() > 0 and emb.extra.weight.grad.abs().sum() == 0
    assert isinstance(class_embedding(10, 8), torch.nn.Embedding)


@pytest.mark.parametrize("arch", ["raster", "next-scale", "masked"])
def test_factors_run_has_every_class_and_a_factorized_embedding(arch, tmp_path, capsys):
    out = tmp_path / arch
    assert main(["iar", "train", "--arch", arch, "--data", "factors", "--heldout-share", "0.25",
                 "--arbitrary-labels", "0.3", "--arbitrary-classes", "3", *TINY, "--out", str(out), "--json"]) == 0
    capsys.readouterr()
    model = load_run(out)
    assert model.config.num_classes == 23 and list(model.config.class_factors) == [5, 4]
    assert isinstance(model.cls_emb, FactorizedClassEmbedding)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["data"]["heldout_share"] == 0.25 and cfg["data"]["arbitrary_labels"] == 0.3
    # every class, a held-out combination's too, can be generated
    tokens = model.generate(torch.arange(23), list(range(23)))
    assert tokens.shape == (23, model.seq_len)


def test_joint_embedding_on_request(tmp_path, capsys):
    out = tmp_path / "joint"
    assert main(["iar", "train", "--arch", "raster", "--data", "factors", "--class-embedding", "joint", *TINY,
                 "--out", str(out)]) == 0
    capsys.readouterr()
    model = load_run(out)
    assert isinstance(model.cls_emb, torch.nn.Embedding) and model.cls_emb.num_embeddings == 20


@pytest.mark.parametrize("flags, msg", [
    (["--data", "factors", "--heldout-combos", "circle:purple"],
     "unknown colour 'purple'; allowed: red, yellow, green, blue"),
    (["--data", "factors", "--heldout-combos", "disc:red"], "unknown shape 'disc'; allowed: circle, square"),
    (["--data", "factors", "--heldout-share", "0.9"], "the share must be <= 0.75"),
    (["--data", "factors", "--heldout-share", "-0.1"], "--heldout-share must be in [0, 1)"),
    (["--data", "factors", "--arbitrary-labels", "1.5"], "--arbitrary-labels must be in [0, 1)"),
    (["--data", "shapes", "--heldout-share", "0.25"], "need --data factors"),
    (["--data", "shapes", "--class-embedding", "factorized"], "--class-embedding factorized needs --data factors"),
])
def test_bad_factor_requests_exit_2_with_one_line_and_write_nothing(flags, msg, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["iar", "train", *flags, *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()
