"""Start-up of `memlab crossover predict`: the command loads compiled programs from the persistent compile
cache (so a later process with the same shapes does not compile), and a process compiles the losses once
however many predictions it makes."""

import json

from memlab.cli import main

FAST = ["--dim", "6", "--n-train", "24", "--draws", "4", "--repeats", "2", "--grid", "6", "--bootstrap", "20"]


def test_predict_turns_on_the_compile_cache_before_any_jax_work(monkeypatch, capsys):
    from memlab.crossover import losses
    from memlab.diffusion import compile_cache

    calls = []
    real_enable, real_losses = compile_cache.enable_compilation_cache, losses.monte_carlo_losses
    monkeypatch.setattr(compile_cache, "enable_compilation_cache", lambda *a: calls.append("cache") or real_enable(*a))
    import memlab.crossover.predict as predict_mod

    monkeypatch.setattr(predict_mod, "monte_carlo_losses", lambda *a, **k: calls.append("losses") or real_losses(*a, **k))
    assert main(["crossover", "predict", *FAST, "--json"]) == 0
    assert calls == ["cache", "losses"]
    assert 0 < json.loads(capsys.readouterr().out)["m_star_over_n"] <= 1


def test_a_second_prediction_in_the_same_process_does_not_compile_again(capsys):
    from memlab.crossover.losses import _losses_at_t

    assert main(["crossover", "predict", *FAST, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    compiled = _losses_at_t._cache_size()
    assert main(["crossover", "predict", *FAST, "--seed", "5", "--json"]) == 0  # other data, same shapes
    second = json.loads(capsys.readouterr().out)
    assert _losses_at_t._cache_size() == compiled
    assert first["loss_star_weighted"] != second["loss_star_weighted"]
