"""The capacity control: one student with the parameter count of K students, against real nn.Module counts."""

from __future__ import annotations

import json
import math

import pytest
import torch
from sweep_fixtures import fake_config, write_fake_run
from train_fixtures import make_dataset, tiny_config

from collapse_lab.config import resolve_config
from collapse_lab.data.feature_map import FeatureMap, FieldInfo
from collapse_lab.errors import UserError
from collapse_lab.models import build_ensemble
from collapse_lab.models.capacity import CAPACITY_TOLERANCE, match_capacity, parameter_count, scaled_widths
from collapse_lab.results import collect_results
from collapse_lab.results.tables import gap_table, run_table, student_table
from collapse_lab.sweep.grid import expand_grid, spec_from_dict
from collapse_lab.training.api import train


def toy_map() -> FeatureMap:
    """Two categorical fields and a sequence field (as ML-100K's genres), padding id 0."""
    return FeatureMap("toy", [FieldInfo("user", "categorical", 0, 1, vocab_size=50, padding_idx=0),
                              FieldInfo("item", "categorical", 1, 1, vocab_size=80, padding_idx=0),
                              FieldInfo("genres", "sequence", 2, 3, vocab_size=9, padding_idx=0, max_len=3)])


def module_count(fm: FeatureMap, n: int, hidden, **kw) -> int:
    """Trainable parameters of the real model on the CPU, embedding + students + fusion."""
    model = build_ensemble(fm, num_students=n, hidden_units=tuple(hidden), **kw)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("k", [2, 3, 5, 10])
@pytest.mark.parametrize("hidden,kw", [([16, 16], {}), ([32, 16, 8], {}), ([64], {"batch_norm": False}),
                                       ([24, 24, 24], {"embedding_dim": 8}), ([20, 10], {"fusion": "concat"})])
def test_counts_agree_within_two_percent_with_the_real_modules(k, hidden, kw):
    fm = toy_map()
    got = match_capacity(fm, k, hidden, **kw)
    target = module_count(fm, k, hidden, **kw)
    params = module_count(fm, 1, got["hidden_units"], **kw)
    assert (got["target_parameters"], got["parameters"]) == (target, params)
    assert abs(params / target - 1) <= 0.02
    assert got["relative_difference"] == pytest.approx(params / target - 1)
    # no other width of the same shape is closer (the search is exact)
    widest = max(got["hidden_units"])
    for w in (widest - 1, widest + 1):
        assert abs(module_count(fm, 1, scaled_widths(hidden, w), **kw) - target) >= abs(params - target)


def test_uniform_widths_solve_the_quadratic():
    # P(w) = E + (in + 3) w + (L - 1)(w + 3) w + (w + 1) for L layers of width w with BatchNorm
    fm, d, hidden = toy_map(), 16, [400, 400, 400]
    emb = (50 + 80 + 9) * d
    inp = 3 * d
    student = (inp + 3) * 400 + 2 * (400 + 3) * 400 + 401
    assert module_count(fm, 1, hidden) == emb + student
    for k in (2, 4, 10):
        target = emb + k * student
        a, b, c = 2.0, inp + 3 + 6 + 1, 1 + emb - target  # 2 w^2 + (in + 10) w + (1 + E - T) = 0
        root = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
        got = match_capacity(fm, k, hidden)
        assert got["hidden_units"][0] in (math.floor(root), math.ceil(root))
        assert len(set(got["hidden_units"])) == 1 and got["target_parameters"] == target


def test_shape_of_the_widths_is_kept_and_k1_is_the_model_itself():
    fm = toy_map()
    got = match_capacity(fm, 4, [32, 16, 8])
    w = got["hidden_units"]
    assert w[0] > 32 and w[1] == round(w[0] / 2) and w[2] == round(w[0] / 4)
    assert match_capacity(fm, 1, [32, 16, 8])["hidden_units"] == [32, 16, 8]
    assert scaled_widths([400, 200, 1], 10) == [10, 5, 1]


def test_meta_count_equals_the_cpu_count():
    fm = toy_map()
    assert parameter_count(fm, 3, [12, 7], fusion="concat") == module_count(fm, 3, [12, 7], fusion="concat")


def test_errors_are_one_line():
    fm = toy_map()
    with pytest.raises(UserError, match="hidden_units is empty"):
        match_capacity(fm, 3, [])
    # one field of 3 ids, d = 1, width 1: a student has 6 parameters, K = 2 students + embedding 15; one
    # student of width 2 has 3 + 11 = 14 (-6.7%) and of width 3 has 19 (+27%): no width within 2%
    with pytest.raises(UserError, match=r"\[2\] give 14 parameters, -6.7% from the 15 of 2 students"):
        match_capacity(FeatureMap("t", [FieldInfo("a", "categorical", 0, 1, vocab_size=3, padding_idx=0)]),
                       2, [1], embedding_dim=1)
    assert CAPACITY_TOLERANCE == 0.02
    for override, message in ((["width_match_n=4", "n=2", "method=vanilla"], "unless n=1 and method=vanilla"),
                              (["width_match_n=4", "n=1", "method=kd"], "unless n=1 and method=vanilla"),
                              (["width_match_n=0", "n=1", "method=vanilla"], "an integer >= 1"),
                              (["width_match_n=2", "n=1", "method=vanilla", "hidden_units=[]"], "no width")):
        with pytest.raises(UserError, match=r"config key 'width_match_n'") as exc:
            resolve_config(override)
        assert message in str(exc.value)


def test_a_capacity_run_trains_records_its_widths_and_is_its_own_variant(tmp_path):
    data = make_dataset(tmp_path, rows=3000)
    cfg = tiny_config(data, method="vanilla", n=1, width_match_n=3, max_steps=4, probe_rows=0)
    result = train(cfg, tmp_path / "sweep" / "runs" / "cap", device="cpu", progress=False, console=False)
    model = result.manifest["model"]
    ensemble = train(tiny_config(data, method="vanilla", n=3, max_steps=4, probe_rows=0),
                     tmp_path / "sweep" / "runs" / "ens", device="cpu", progress=False, console=False)
    target = ensemble.manifest["model"]["parameters"]["total"]
    assert model["capacity"]["target_parameters"] == target
    assert model["parameters"]["total"] == model["capacity"]["parameters"]
    assert abs(model["parameters"]["total"] / target - 1) <= 0.02
    assert model["hidden_units"] == model["capacity"]["hidden_units"] != [16, 16]
    assert model["num_students"] == 1 and json.loads(json.dumps(result.config.width_match_n)) == 3
    res = collect_results(tmp_path / "sweep").results
    cap = res[res["run"] == "cap"]
    assert cap["variant"].unique().tolist() == ["vanilla-mean-capacity"]
    assert cap["n"].unique().tolist() == [3]  # compared at N = K
    assert cap["member"].tolist() == ["ensemble", "0"]  # one student
    assert not any(c.startswith("cfg_") for c in res.columns)  # width_match_n is in the variant, not a column


def test_results_tables_keep_capacity_as_a_variant_without_student_curves(tmp_path):
    write_fake_run(tmp_path / "runs" / "single", fake_config("vanilla", "mean", 1))
    write_fake_run(tmp_path / "runs" / "ens", fake_config("vanilla", "mean", 4))
    write_fake_run(tmp_path / "runs" / "cap", fake_config("vanilla", "mean", 1, width_match_n=4))
    write_fake_run(tmp_path / "runs" / "abl", fake_config("kdef", "mean", 4, kdef_terms=["kd"]))
    res = collect_results(tmp_path).results
    runs = run_table(res)
    expected = {("vanilla-mean-capacity", 4), ("vanilla-mean-capacity", 1), ("vanilla-mean", 4), ("kdef-kd-only", 4)}
    assert set(zip(runs["variant"], runs["n"], strict=True)) >= expected
    assert "vanilla-mean-capacity" not in set(student_table(res)["variant"])
    assert "vanilla-mean-capacity" not in set(gap_table(res)["variant"])


def test_grid_bundles_pin_n_and_name_the_runs():
    spec = spec_from_dict({"base": {"hidden_units": [8]},
                           "grid": {"recipe": [{"method": "vanilla"},
                                               {"method": "vanilla", "n": 1, "width_match_n": 2},
                                               {"method": "vanilla", "n": 1, "width_match_n": 4},
                                               {"method": "kdef", "kdef_terms": ["dml"]}],
                                    "n": [1, 2, 4], "seed": [7]},
                           "exclude": [{"method": "kdef", "n": 1}]})
    names = [p.name for p in expand_grid(spec)]
    assert len(names) == 3 + 2 + 2  # vanilla n 1/2/4; capacity K = 2, 4 once each; kdef dml-only n 2/4
    assert sum(n.startswith("vanilla-mean-n1-capacity2-s7-") for n in names) == 1
    assert sum(n.startswith("vanilla-mean-n1-capacity4-s7-") for n in names) == 1
    assert sum(n.startswith("kdef-mean-n2-dml-only-s7-") for n in names) == 1
    assert sum(n.startswith("vanilla-mean-n2-s7-") for n in names) == 1
    torch.manual_seed(0)  # keep the global RNG state tidy for other tests
