"""Grid expansion, validation and stable run names (collapse_lab.sweep.grid)."""

from __future__ import annotations

import re

import pytest

from collapse_lab.config import config_hash, config_to_dict, resolve_config
from collapse_lab.errors import UserError
from collapse_lab.sweep.grid import (
    SweepSpec,
    expand_grid,
    load_grid,
    parse_grid_overrides,
    run_name,
    spec_from_dict,
)

NAME = re.compile(r"^(vanilla|kd|dml|kdef)-(mean|sum|concat)-n\d+-s\d+-[0-9a-f]{8}$")


def _write(tmp_path, text: str):
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return path


def test_cartesian_product_with_base_bundles_and_exclusions(tmp_path):
    path = _write(tmp_path, """
name: demo
base: {hidden_units: [8, 8], max_epochs: 1}
grid:
  recipe:
    - {method: vanilla, fusion: mean}
    - {method: vanilla, fusion: sum}
    - {method: kdef}
  n: [1, 2, 3]
  seed: [1, 2]
exclude:
  - {fusion: sum, n: 1}
  - {method: kdef, n: 1}
""")
    spec = load_grid(path)
    assert spec.name == "demo"
    points = expand_grid(spec)
    # 3 recipes x 3 N x 2 seeds = 18, minus (sum, n=1) x 2 seeds and (kdef, n=1) x 2 seeds
    assert len(points) == 14
    combos = {(p.config["method"], p.config["fusion"], p.config["n"], p.config["seed"]) for p in points}
    assert ("vanilla", "sum", 1, 1) not in combos and ("kdef", "mean", 1, 2) not in combos
    assert ("kdef", "mean", 3, 2) in combos and ("vanilla", "mean", 1, 1) in combos
    for p in points:
        assert p.config["hidden_units"] == [8, 8] and p.config["max_epochs"] == 1
        assert NAME.match(p.name), p.name
    # grid order: the first axis varies slowest
    assert [p.config["method"] for p in points[:5]] == ["vanilla"] * 5


def test_exclude_matches_resolved_defaults(tmp_path):
    # fusion is not set anywhere: the rule applies to the resolved default (mean)
    spec = spec_from_dict({"grid": {"n": [1, 2]}, "exclude": [{"fusion": "mean", "n": 1}]})
    assert [p.config["n"] for p in expand_grid(spec)] == [2]


def test_run_name_is_the_hash_of_the_resolved_config():
    spec = spec_from_dict({"base": {"method": "kd"}, "grid": {"n": [2], "seed": [7]}})
    (point,) = expand_grid(spec)
    cfg = resolve_config({"method": "kd", "n": 2, "seed": 7})
    assert point.config == config_to_dict(cfg)
    assert point.name == f"kd-mean-n2-s7-{config_hash(cfg)[:8]}"
    assert run_name({"method": "kd", "fusion": "mean", "n": 2, "seed": 7}) == point.name  # defaults: not hashed


def test_run_names_are_stable_and_change_with_any_setting():
    spec = spec_from_dict({"grid": {"n": [2], "seed": [1]}})
    first = expand_grid(spec)[0].name
    assert expand_grid(spec_from_dict({"grid": {"n": [2], "seed": [1]}}))[0].name == first
    assert expand_grid(spec_from_dict({"grid": {"n": [2], "seed": [1]}, "base": {"lr": 0.002}}))[0].name != first
    # run_name only reads the config: key order does not matter
    cfg = expand_grid(spec)[0].config
    assert run_name(dict(reversed(list(cfg.items())))) == first


def test_duplicate_points_are_merged():
    spec = spec_from_dict({"grid": {"n": [2, 2], "seed": [1]}})
    assert len(expand_grid(spec)) == 1


def test_parse_overrides_reads_yaml_values():
    axes = parse_grid_overrides(["n=1,2,4", "hidden_units=[64,64],[32]", "method=kdef", "lr=1e-3,0.01"])
    assert axes == {"n": [1, 2, 4], "hidden_units": [[64, 64], [32]], "method": ["kdef"], "lr": [0.001, 0.01]}


def test_overrides_replace_axes_and_base(tmp_path):
    spec = load_grid(_write(tmp_path, "base: {seed: 5}\ngrid: {n: [1, 2, 3]}\n"))
    points = expand_grid(spec, parse_grid_overrides(["n=4", "seed=1,2"]))
    assert sorted((p.config["n"], p.config["seed"]) for p in points) == [(4, 1), (4, 2)]


@pytest.mark.parametrize("text, fragment", [
    ("grid: {nn: [1, 2]}\n", "unknown config key 'nn' in grid; valid keys: batch_norm, batch_size"),
    ("base: {lrr: 1}\ngrid: {n: [1]}\n", "unknown config key 'lrr' in base; valid keys:"),
    ("grid: {recipe: [{method: kd, fusionn: sum}]}\n", "unknown config key 'fusionn' in grid axis 'recipe'"),
    ("grid: {n: [1]}\nexclude: [{methd: kd}]\n", "unknown config key 'methd' in exclude"),
    ("grids: {n: [1]}\n", "unknown section 'grids'; valid sections: name, description, base, grid, exclude"),
    ("grid: {n: [1, 2]\n", "line 2, column 1: not valid YAML"),
])
def test_bad_grid_files_name_the_problem(tmp_path, text, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)):
        expand_grid(load_grid(_write(tmp_path, text)))


@pytest.mark.parametrize("data", [{}, {"base": {"n": 2}}, {"grid": {"n": []}},
                                  {"grid": {"n": [1]}, "exclude": [{"n": 1}]}])
def test_empty_grid_lists_valid_keys(data):
    with pytest.raises(UserError, match=r"the grid is empty.*valid keys: batch_norm, batch_size, clip_grad_norm"):
        expand_grid(spec_from_dict(data))


def test_bad_value_names_the_run():
    spec = SweepSpec(name="x", axes={"n": [2, 0]})
    with pytest.raises(UserError, match=r"run \{n=0\}: config key 'n': expected an integer >= 1"):
        expand_grid(spec)


def test_unknown_override_key_is_rejected():
    spec = spec_from_dict({"grid": {"n": [1]}})
    with pytest.raises(UserError, match="unknown config key 'seeds' in the command-line grid"):
        expand_grid(spec, parse_grid_overrides(["seeds=1,2"]))


def test_missing_grid_file(tmp_path):
    with pytest.raises(UserError, match="grid file not found"):
        load_grid(tmp_path / "nope.yaml")


ECN_GRID = """
name: ecn
base: {student: ecn, method: vanilla, n: 2, hidden_units: [8], max_epochs: 1,
       student_args: {ecn: {num_cross_layers: 3, net_dropout: 0.3}}}
grid:
  seed: [1]
"""


def _ecn_args(point):
    return point.config["student_args"]["ecn"]


def _cli_dry_run(argv):
    from click.testing import CliRunner

    from collapse_lab.cli import cli

    result = CliRunner().invoke(cli, ["sweep", *argv, "--dry-run"])
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()


def test_a_dotted_command_line_axis_sets_one_student_argument(tmp_path):
    """``student_args.ecn.num_cross_layers=1,2``: one run per value, the base's other ECN argument kept."""
    path = _write(tmp_path, ECN_GRID)
    points = expand_grid(load_grid(path), parse_grid_overrides(["student_args.ecn.num_cross_layers=1,2"]))
    assert [_ecn_args(p) for p in points] == [{"num_cross_layers": 1, "net_dropout": 0.3},
                                              {"num_cross_layers": 2, "net_dropout": 0.3}]
    assert points[0].overrides["student_args.ecn.num_cross_layers"] == 1  # what the grid wrote, for sweep.json
    assert len({p.name for p in points}) == 2
    assert all(re.fullmatch(r"vanilla-mean-n2-ecn-s1-[0-9a-f]{8}", p.name) for p in points), [p.name for p in points]
    lines = _cli_dry_run([str(path), "--out", str(tmp_path / "sw"), "student_args.ecn.num_cross_layers=1,2"])
    assert lines[:2] == [f"missing   {p.name}" for p in points] and "2 runs (2 missing)" in lines[2]
    assert not (tmp_path / "sw").exists()


def test_a_dotted_grid_file_axis_sets_one_student_argument(tmp_path):
    path = _write(tmp_path, ECN_GRID.replace("  seed: [1]", "  seed: [1]\n  student_args.ecn.num_cross_layers: [1, 2]"))
    points = expand_grid(load_grid(path))
    assert [_ecn_args(p) for p in points] == [{"num_cross_layers": 1, "net_dropout": 0.3},
                                              {"num_cross_layers": 2, "net_dropout": 0.3}]
    # a name depends on the resolved config only: the same point written as a whole block gets the same name
    block = spec_from_dict({"base": {"student": "ecn", "method": "vanilla", "n": 2, "hidden_units": [8],
                                     "max_epochs": 1, "seed": 1},
                            "grid": {"student_args": [{"ecn": {"num_cross_layers": 1, "net_dropout": 0.3}}]}})
    assert expand_grid(block)[0].name == points[0].name
    lines = _cli_dry_run([str(path), "--out", str(tmp_path / "sw")])
    assert lines[:2] == [f"missing   {p.name}" for p in points]


def test_dotted_keys_in_bundles_and_exclude_rules(tmp_path):
    spec = spec_from_dict({
        "base": {"method": "vanilla", "n": 2, "hidden_units": [8], "seed": 1},
        "grid": {"arch": [{"student": "ecn", "student_args.ecn.num_cross_layers": 1},
                          {"student": "ecn", "student_args.ecn.num_cross_layers": 2}, {"student": "ecn"}],
                 "student_args.ecn.net_dropout": [0.1, 0.2]},
        "exclude": [{"student_args.ecn.num_cross_layers": 2, "student_args.ecn.net_dropout": 0.2}]})
    got = [(p.config["student"], p.config["student_args"].get("ecn")) for p in expand_grid(spec)]
    assert got == [("ecn", {"num_cross_layers": 1, "net_dropout": 0.1}),
                   ("ecn", {"num_cross_layers": 1, "net_dropout": 0.2}),
                   ("ecn", {"num_cross_layers": 2, "net_dropout": 0.1}),
                   ("ecn", {"net_dropout": 0.1}), ("ecn", {"net_dropout": 0.2})]  # no block before: one is made


@pytest.mark.parametrize("text, overrides, fragment", [
    (ECN_GRID, ["hidden_units.0=4,8"], "key 'hidden_units.0' in the command-line grid: 'hidden_units' cannot be "
                                       "set by a dotted key; only student_args.<student>.<argument> can"),
    (ECN_GRID, ["student_args.ecn=1,2"], "key 'student_args.ecn' in the command-line grid: expected "
                                         "student_args.<student>.<argument>"),
    (ECN_GRID, ["studnt_args.ecn.num_cross_layers=1"], "unknown config key 'studnt_args.ecn.num_cross_layers' in "
                                                       "the command-line grid; valid keys:"),
    (ECN_GRID + "  lr.base: [1, 2]\n", [], "key 'lr.base' in grid: 'lr' cannot be set by a dotted key"),
    (ECN_GRID + "exclude: [{student_args.ecn..x: 1}]\n", [], "key 'student_args.ecn..x' in exclude: expected"),
    (ECN_GRID, ["student_args.ecn.bogus=1"], "run {seed=1, student_args.ecn.bogus=1}: config key "
                                             "'student_args.ecn.bogus': student 'ecn' has no argument 'bogus'"),
])
def test_bad_dotted_keys_are_one_line_errors_naming_the_key(tmp_path, text, overrides, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)) as exc:
        expand_grid(load_grid(_write(tmp_path, text)), parse_grid_overrides(overrides))
    assert "\n" not in str(exc.value)


BASE_DOTTED = {"base": {"student": "ecn", "method": "vanilla", "n": 2, "hidden_units": [8], "seed": 1,
                        "student_args.ecn.num_cross_layers": 3, "student_args.ecn.net_dropout": 0.3}}


def test_a_student_args_axis_replaces_the_base_dotted_keys_under_it():
    """An axis naming the whole block owns it: the base's dotted keys no longer override every value of it."""
    spec = spec_from_dict({**BASE_DOTTED, "grid": {"student_args": [{"ecn": {"num_cross_layers": 1}},
                                                                    {"ecn": {"num_cross_layers": 2}}]}})
    points = expand_grid(spec)
    assert [_ecn_args(p) for p in points] == [{"num_cross_layers": 1}, {"num_cross_layers": 2}]
    assert not any(k.startswith("student_args.") for p in points for k in p.overrides)


def test_a_command_line_student_args_block_replaces_the_base_dotted_keys():
    spec = spec_from_dict({**BASE_DOTTED, "grid": {"seed": [1]}})
    points = expand_grid(spec, parse_grid_overrides(["student_args={ecn: {num_cross_layers: 1}},"
                                                     "{ecn: {num_cross_layers: 2}}"]))
    assert [_ecn_args(p) for p in points] == [{"num_cross_layers": 1}, {"num_cross_layers": 2}]


def test_base_dotted_keys_still_merge_into_a_block_of_the_base_and_a_dotted_axis():
    spec = spec_from_dict({**BASE_DOTTED, "grid": {"student_args.ecn.net_dropout": [0.1, 0.2]}})
    assert [_ecn_args(p) for p in expand_grid(spec)] == [{"num_cross_layers": 3, "net_dropout": 0.1},
                                                         {"num_cross_layers": 3, "net_dropout": 0.2}]


def test_two_distinct_points_that_are_the_same_run_are_an_error_naming_both():
    """Bundles that restate a default are one run: an error, not a comparison silently missing from the tables."""
    spec = spec_from_dict({"grid": {"recipe": [{"method": "kd", "fusion": "mean"}, {"method": "kd"}],
                                    "seed": [1]}})
    with pytest.raises(UserError, match=r"grid points \{seed=1, method=kd, fusion=mean\} and \{seed=1, method=kd\} "
                                        r"are the same run kd-mean-n\d+-s1-[0-9a-f]{8}"):
        expand_grid(spec)


def test_a_bundle_pinning_a_key_still_runs_once_without_error():
    spec = spec_from_dict({"grid": {"recipe": [{"method": "vanilla", "n": 1, "width_match_n": 4}],
                                    "n": [1, 2, 4], "seed": [1]}})
    assert len(expand_grid(spec)) == 1


def test_an_exclude_rule_that_matches_no_point_is_a_warning_naming_it(tmp_path):
    """A dotted rule never matches a student argument left at its default: the user is told, not left guessing."""
    spec = spec_from_dict({"base": {"student": "ecn", "method": "vanilla", "n": 2, "hidden_units": [8]},
                           "grid": {"seed": [1, 2], "student_args.ecn.net_dropout": [0.1, 0.2]},
                           "exclude": [{"student_args.ecn.num_cross_layers": 3}, {"seed": 2},
                                       {"student_args.ecn.net_dropout": 0.2, "seed": 1}]})
    warnings = []
    points = expand_grid(spec, warnings=warnings)
    assert [(p.config["seed"], _ecn_args(p)) for p in points] == [(1, {"net_dropout": 0.1})]
    assert warnings == ["<grid>: exclude rule {student_args.ecn.num_cross_layers: 3} matches no point of the grid; "
                        "a dotted student_args.<student>.<argument> rule matches only an argument the point sets "
                        "(not one left at its default), and a whole student_args rule only a point whose block "
                        "equals it"]
    path = _write(tmp_path, ECN_GRID + "exclude: [{method: kd}]\n")
    from click.testing import CliRunner

    from collapse_lab.cli import cli

    result = CliRunner().invoke(cli, ["sweep", str(path), "--out", str(tmp_path / "sw"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [f"warning: {path}: exclude rule {{method: kd}} matches no point of the grid"]
