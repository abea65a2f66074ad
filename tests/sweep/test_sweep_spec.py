"""Sweep spec: the template is valid, grids expand as documented, every bad key is named; refinement sizes."""

import tomllib

import pytest

from memlab.errors import UsageError
from memlab.sweep.spec import absolute_sizes, load_spec, make_cells, parse_spec, refined_sizes
from memlab.sweep.template import TEMPLATE
from sweep_standin import resolve_train


def spec_dict(**over):
    raw = {"name": "t", "data": {"dataset": "gmm", "dim": 5, "components": 2, "n_train": 20},
           "model": {"kind": "mixture", "sizes": [0.1, 0.5, 1.0]}, "seeds": {"count": 2}}
    for k, v in over.items():
        raw[k] = v
    return raw


def test_template_parses_to_the_acceptance_sweep():
    spec = parse_spec(tomllib.loads(TEMPLATE))
    (cfg,) = spec.data
    assert (cfg.dataset, cfg.dim, cfg.components, cfg.n_train) == ("gmm", 30, 4, 100)
    assert absolute_sizes(spec, cfg) == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert spec.seeds == 3 and spec.train["samples"] == 200 and spec.refine_rounds == 1


def test_data_grid_is_the_cartesian_product_and_sizes_scale_with_n(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('name = "g"\n[data]\ndim = [5, 10]\ncomponents = 2\nn_train = [20, 40, 80]\n'
                    '[model]\nsizes = [0.25, 0.5]\n')
    spec = load_spec(path)
    assert len(spec.data) == 6
    assert {(c.dim, c.n_train) for c in spec.data} == {(d, n) for d in (5, 10) for n in (20, 40, 80)}
    big = next(c for c in spec.data if c.n_train == 80)
    cells = make_cells(spec, big, absolute_sizes(spec, big), resolve_train)
    assert [c.size for c in cells] == [20, 40]
    assert len({c.cell_id for c in cells}) == 2 and cells[0].train["seeds"] == 3  # default seeds


@pytest.mark.parametrize("over, message", [
    ({"colour": 1}, "unknown key 'colour' in sweep spec"),
    ({"data": {"dataset": "mnist"}}, "unknown dataset 'mnist'; allowed: gmm, lowrank-gmm, templates"),
    ({"data": {"dim": 5, "frobs": 2}}, "unknown key 'frobs' in [data]"),
    ({"data": {"dim": 5, "components": 30, "n_train": 20}}, "components must be <= n_train"),
    ({"data": {"dim": []}}, "data.dim must not be an empty list"),
    ({"data": {"dim": 2.5}}, "data.dim must be an integer"),
    ({"model": {"kind": "cnn", "sizes": [1]}}, "unknown model.kind 'cnn'; allowed: mixture, mlp, unet, dit"),
    ({"model": {"kind": "mlp", "unit": "fraction", "sizes": [0.5]}}, "model.unit must be 'absolute'"),
    ({"model": {"kind": "unet", "unit": "fraction", "sizes": [0.5]}}, "model.unit must be 'absolute' for kind = 'unet'"),
    ({"model": {"kind": "unet", "sizes": [4]}}, "model.kind = 'unet' needs image-shaped data"),
    ({"model": {"sizes": [0.0, 0.5]}}, "model.sizes must be fractions of N in (0, 4]"),
    ({"model": {"unit": "absolute", "sizes": [0.5]}}, "model.sizes must be an integer"),
    ({"model": {"kind": "mixture"}}, "model.sizes is required"),
    ({"model": {"sizes": [0.5], "depth": 2}}, "model.depth does not apply to kind = 'mixture'"),
    ({"seeds": {"count": 0}}, "seeds.count must be an integer >= 1"),
    ({"train": {"size": 3}}, "[train] key 'size' is set by the sweep"),
    ({"train": {"samples": 3}, "sampling": {"samples": 4}}, "key 'samples' is in both [train] and [sampling]"),
    ({"refine": {"rounds": 9}}, "refine.rounds must be an integer in [0, 5]"),
])
def test_bad_specs_name_the_key(over, message):
    with pytest.raises(UsageError) as e:
        parse_spec(spec_dict(**over))
    assert message in str(e.value)


def test_missing_spec_file_and_malformed_toml(tmp_path):
    with pytest.raises(UsageError, match="config file does not exist"):
        load_spec(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(UsageError, match="malformed TOML"):
        load_spec(bad)


def test_refined_sizes_fill_the_bracket_only():
    sizes = [10, 20, 40, 80, 100]
    ratios = [0.0, 0.05, 0.5, 0.95, 1.0]
    # last < 0.1 is 20, first >= 0.9 is 80 (40 inside): each point halves the widest gap
    assert refined_sizes(sizes, ratios, 3) == [30, 50, 60]
    assert refined_sizes(sizes, ratios, 5) == [25, 30, 50, 60, 70]
    # a bracket already on a fine grid is still refined (the acceptance sweep's case)
    assert refined_sizes([60, 70, 80, 90, 100], [0.02, 0.14, 0.45, 0.85, 1.0], 3) == [65, 75, 85]
    assert refined_sizes(sizes, [0.0, 0.0, 0.3, 0.5, 0.8], 3) == []  # never reaches 0.9
    assert refined_sizes(sizes, [0.5, 0.6, 0.7, 0.95, 1.0], 3) == []  # never below 0.1
    assert refined_sizes([10, 11], [0.0, 1.0], 3) == []  # no integer room


def test_prediction_config_follows_the_training_objective():
    from memlab.config import DataConfig
    from memlab.sweep.cells import resolve_predict, resolve_train

    data = DataConfig(dim=5, components=2, n_train=20)
    train = resolve_train({"model": "mixture", "size": 4, "grid_points": 11})
    pred = resolve_predict({}, train, data)
    assert pred["grid"] == 20 and pred["time_points"] == 11 and pred["weighting"] == train["weighting"] == "eps"
    assert resolve_predict({"weighting": "x0-uniform", "grid": 7}, train, data)["grid"] == 7
    snr = resolve_train({"model": "mixture", "size": 4, "weighting": "min-snr"})
    assert resolve_predict({}, snr, data)["weighting"] == "min-snr"  # every training weighting is predictable
    with pytest.raises(UsageError, match="unknown weighting 'made-up'"):
        resolve_predict({}, dict(train, weighting="made-up"), data)
    with pytest.raises(UsageError, match="--grid must be <= --n-train"):
        resolve_predict({"grid": 21}, train, data)


def test_cell_ids_and_rows_of_the_real_resolver_are_those_from_before_the_train_config_split():
    """Cells hash the flat TrainConfig layout: a sweep started before the model/optim/eval split continues
    its cells instead of re-training them (ids computed with the code before the split)."""
    from memlab.sweep.cells import resolve_train as real_resolve, result_rows
    from memlab.sweep.runner import plan

    data = {"dim": 6, "components": 2, "n_train": 20}
    mix = parse_spec({"name": "x", "data": data, "model": {"kind": "mixture", "sizes": [0.5]}, "train": {"steps": 30}})
    mlp = parse_spec({"name": "x", "data": data, "model": {"kind": "mlp", "unit": "absolute", "sizes": [8], "depth": 1},
                      "train": {"steps": 30, "weighting": "x0-uniform"}})
    assert [c.cell_id for c in plan(mix, real_resolve)] == ["06504ae885ce"]
    (cell,) = plan(mlp, real_resolve)
    assert cell.cell_id == "a6170ec0953c" and "patch" not in cell.train and cell.train["lr"] == 1e-3
    # the M axis comes from the family: M itself for the mixture, parameter count / d for a network
    result = {"dim": 6, "param_count": 1200, "per_seed": [{"seed": 0, "status": "ok", "memorization_ratio": 0.5}]}
    assert result_rows(cell, result, 6)[0]["m_eff"] == 200.0
    assert result_rows(plan(mix, real_resolve)[0], result, 6)[0]["m_eff"] == 10.0


def test_image_families_take_their_options_from_train():
    from memlab.sweep.cells import resolve_train as real_resolve
    from memlab.sweep.runner import plan

    raw = {"name": "x", "data": {"dataset": "templates", "components": 2, "n_train": 20},
           "model": {"kind": "dit", "sizes": [8], "depth": 1}, "train": {"heads": 2}}
    (cell,) = plan(parse_spec(raw), real_resolve)
    assert (cell.train["model"], cell.train["patch"], cell.train["heads"], cell.train["depth"]) == ("dit", 3, 2, 1)
    raw["train"] = {"heads": 3}
    with pytest.raises(UsageError, match=r"sweep spec \[train\]: heads must divide size \(8\), got 3"):
        plan(parse_spec(raw), real_resolve)
