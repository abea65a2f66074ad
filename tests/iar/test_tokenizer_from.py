"""`memlab iar train --tokenizer-from RUN`: a retrained model (a mitigation, another seed) reuses the base
run's tokenizer bit for bit, so the yardstick scores both on the same tokens; a missing or mismatched
tokenizer is one line and exit 2 with nothing written."""

import json

import pytest
import torch

from memlab.cli import main
from memlab.iar.checkpoint import load_pretrained
from memlab.iar.tokenizer import ImageTokenizer

torch.set_num_threads(1)
TINY = ["--n-train", "8", "--n-heldout", "4", "--epochs", "1", "--tokenizer-epochs", "1", "--width", "32",
        "--depth", "1", "--heads", "2", "--codebook-size", "16", "--tokenizer-channels", "8,16,16",
        "--latent-channels", "4", "--batch-size", "4", "--arch", "raster"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("tf") / "base"
    assert main(["iar", "train", *TINY, "--out", str(out)]) == 0
    return out


def test_the_reused_tokenizer_is_the_base_runs_bit_for_bit(base, tmp_path):
    out = tmp_path / "again"
    assert main(["iar", "train", *TINY, "--seed", "3", "--tokenizer-from", str(base), "--out", str(out)]) == 0
    a = load_pretrained(ImageTokenizer, base / "tokenizer").state_dict()
    b = load_pretrained(ImageTokenizer, out / "tokenizer").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tokenizer"][0]["reused_from"] == str(base.resolve()) and len(metrics["tokenizer"]) == 1
    assert json.loads((out / "config.json").read_text())["train"]["tokenizer_from"] == str(base.resolve())


@pytest.mark.parametrize("extra, message", [
    (["--tokenizer-from", "{missing}"], "no trained tokenizer there"),
    (["--tokenizer-from", "{base}", "--codebook-size", "32"], "its tokenizer has codebook_size 16, this run needs 32"),
])
def test_a_missing_or_mismatched_tokenizer_exits_2_and_writes_nothing(base, tmp_path, capsys, extra, message):
    extra = [e.format(missing=tmp_path / "nope", base=base) for e in extra]
    out = tmp_path / "run"
    assert main(["iar", "train", *TINY, *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0
    assert not out.exists()
