"""Every registered student through the ensemble, mixes of students, and the config keys that select them
(``students``, ``student_args``; docs/architecture.md §3, §5, §6.2).

The per-student tests are parametrised over ``STUDENTS.names()``, so a student added by one new module is covered
here without editing this file.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from collapse_lab.config import TrainConfig, config_hash
from collapse_lab.data.feature_map import FeatureMap, FieldInfo
from collapse_lab.errors import UserError
from collapse_lab.models import build_ensemble, resolve_form
from collapse_lab.models.students import (
    MATRIX_KINDS,
    STUDENTS,
    StudentInput,
    build_student,
    parse_student_args,
    resolve_student_args,
)
from collapse_lab.models.students.layers import DNNArgs
from collapse_lab.resolve import resolve_config
from collapse_lab.utils.seed import derive_seeds

FM = FeatureMap("toy", [FieldInfo("user", "categorical", 0, 1, 7),
                        FieldInfo("genres", "sequence", 1, 3, 6, max_len=3),
                        FieldInfo("age", "numeric", 0, 0, 1, padding_idx=None)])
IDS = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [6, 1, 1, 1], [2, 0, 0, 0], [3, 4, 0, 0], [5, 5, 2, 0]])
VALUES = torch.tensor([[0.5], [2.0], [-1.0], [0.0], [1.5], [0.2]])
SHARED = {"hidden_units": [8, 4], "net_dropout": 0.1, "batch_norm": True}
NAMES = STUDENTS.names()


def tiny(**kw):
    args = dict(num_students=2, embedding_dim=4, fusion="mean", seed=5, embedding_init_std=0.1, **SHARED)
    args.update(kw)
    return build_ensemble(FM, **args)


def numel(params) -> int:
    return sum(p.numel() for p in params)


# ---- every registered student ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_student_trains_in_an_ensemble_of_two(name: str) -> None:
    torch.manual_seed(0)
    model = tiny(student=name)
    model.train()
    out = model(IDS, VALUES)
    assert out["logits"].shape == (6, 2) and out["fused_logit"].shape == (6,)
    assert torch.isfinite(out["logits"]).all() and torch.isfinite(out["fused_logit"]).all()
    torch.testing.assert_close(out["fused_logit"], out["logits"].mean(dim=1))  # mean fusion
    loss = torch.nn.functional.binary_cross_entropy_with_logits(out["logits"], torch.ones(6, 2) * 0.5)
    loss.backward()
    grads = [t.weight.grad for t in model.embedding.tables.values()]
    assert all(g is not None for g in grads) and sum(g.abs().sum().item() for g in grads) > 0  # reaches the tables


@pytest.mark.parametrize("name", NAMES)
def test_describe_counts_and_matrices_match_the_tensors(name: str) -> None:
    model = tiny(student=name, fusion="concat")
    d = model.describe()
    p = d["parameters"]
    assert p["students"] == [numel(s.parameters()) for s in model.students]
    assert p["embedding"] == numel(model.embedding.parameters()) and p["fusion"] == numel(model.fusion.parameters())
    assert p["total"] == numel(model.parameters())
    widths = [s.output_dim for s in model.students]
    assert p["fusion"] == sum(widths) + 1  # concat head over both members' last outputs
    state = model.export_state_dict()
    matrices = model.students[0].matrices()
    assert matrices, f"student {name!r} lists no analysable matrix"
    assert len(d["hidden_layers"]) == 2 * len(matrices)
    for entry in d["hidden_layers"]:
        assert entry["weight"] in state and list(state[entry["weight"]].shape) == entry["shape"]
        assert entry["kind"] in MATRIX_KINDS
        m = matrices[entry["layer"]]
        assert (entry["weight"], entry["label"], entry["kind"]) == (f"students.{entry['member']}.{m.name}", m.layer,
                                                                    m.kind)
    hidden = model(IDS, VALUES, return_hidden=True)["hidden"]
    for entry in d["hidden_layers"]:  # a named activation is what the student writes into `hidden`
        assert entry["name"] is None or (entry["name"] in hidden and hidden[entry["name"]].shape[0] == 6)
    args = dataclasses.asdict(resolve_student_args(name, None, SHARED))
    assert d["students"] == [{"member": k, "student": name, "args": args, "parameters": p["students"][k]}
                             for k in range(2)]
    assert d["student"] == name and d["num_students"] == 2


@pytest.mark.parametrize("name", NAMES)
def test_member_k_is_the_student_built_alone_from_seed_k(name: str) -> None:
    model = tiny(student=name, seed=9)
    seeds = derive_seeds(9, 2)
    for k in range(2):
        alone = build_student(name, StudentInput(3, 4), resolve_student_args(name, None, SHARED),
                              torch.Generator().manual_seed(seeds[k]))
        ours = model.students[k].state_dict()
        for key, value in alone.state_dict().items():
            torch.testing.assert_close(ours[key], value, rtol=0, atol=0)


# ---- mixes ---------------------------------------------------------------------------------------------------------
@pytest.mark.skipif(len(NAMES) < 2, reason="needs two registered students")
def test_mixed_ensemble_builds_each_member_from_its_name_and_block() -> None:
    a, b = NAMES[:2]
    block = {"net_dropout": 0.3} if "net_dropout" in {f.name for f in dataclasses.fields(
        STUDENTS.get(a).args_type)} else {}
    model = tiny(students=[a, b], student_args={a: block}, fusion="concat")
    assert [type(s).name for s in model.students] == [a, b]
    out = model(IDS, VALUES)
    assert out["logits"].shape == (6, 2) and out["fused_logit"].shape == (6,)
    widths = [s.output_dim for s in model.students]
    assert model.fusion.head.in_features == sum(widths)
    d = model.describe()
    assert d["student"] == f"{a}+{b}"
    assert [m["student"] for m in d["students"]] == [a, b]
    assert d["students"][0]["args"] == dataclasses.asdict(resolve_student_args(a, block, SHARED))
    assert d["students"][1]["args"] == dataclasses.asdict(resolve_student_args(b, None, SHARED))
    assert {e["member"] for e in d["hidden_layers"]} == {0, 1}
    assert resolve_form("auto", "cuda:0", [a, b]) == "loop"
    with pytest.raises(UserError, match="'batched' supports homogeneous 'mlp' students only"):
        tiny(students=[a, b], form="batched")


def test_students_mlp_mlp_is_the_default_ensemble() -> None:
    """``students: [mlp, mlp]`` builds exactly what ``n=2`` does, with the numbers main produced before mixes."""
    mixed, plain = tiny(students=["mlp", "mlp"]), tiny()
    a, b = mixed.export_state_dict(), plain.export_state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert mixed.describe() == plain.describe()
    ref = build_ensemble(FM, num_students=2, hidden_units=(8, 4), embedding_dim=3, net_dropout=0.0, fusion="concat",
                         seed=11, embedding_init_std=0.1).eval()
    fused = ref(IDS, VALUES)["fused_logit"]  # pinned on main before the integration (same seed and shapes)
    torch.testing.assert_close(fused, torch.tensor([-0.008132, -0.084284, 0.051177, 0.00788, -0.063032, 0.021019]),
                               rtol=0, atol=2e-6)


def test_ensemble_refuses_wrong_member_lists_and_foreign_blocks() -> None:
    with pytest.raises(UserError, match="config keys 'n' and 'students': n=3 but students lists 2"):
        tiny(num_students=3, students=["mlp", "mlp"])
    with pytest.raises(UserError, match=r"'student_args\.ecn\.num_cross_layers': student 'ecn' is not in the "):
        tiny(student_args={"ecn": {"num_cross_layers": 2}})
    with pytest.raises(UserError, match=r"'student_args\.mlp\.widths': student 'mlp' has no argument 'widths'"):
        tiny(student_args={"mlp": {"widths": [3]}})


# ---- config -------------------------------------------------------------------------------------------------------
#: config hashes of MLP runs computed on main before `students`/`student_args` existed: the new keys at their
#: defaults rename no run and break no resume
MLP_HASHES = [
    ([], "f7f5096fbb0530249cccbc5a9332129fd30fb2615a9ca7e4fd719f20c2269a84"),
    (["n=4"], "ad3b9f66ef01bf9e2bf1d0a60b38cc6a9bf2d8c2e1476e76ff271b44c511652d"),
    (["method=dml", "hidden_units=[64,32]", "seed=7"],
     "db2b4d2ae5906f0c11d52e6989db730de4c4f57dcf99d3bbb5786a583b2871bf"),
    (["method=vanilla", "n=1", "width_match_n=4"], "fc9148ba335a8026a221fb25edaf1625a3bebec8f56f818b3d09d7e0944f35f2"),
    (["fusion=concat", "method=kd", "net_dropout=0.2", "batch_norm=false"],
     "099d232fd8cf57d409c06409542b8fe066e4e66ee1d81b93be33e7ee9c9ae4c2"),
]


@pytest.mark.parametrize(("overrides", "digest"), MLP_HASHES)
def test_mlp_config_hashes_are_unchanged(overrides, digest) -> None:
    cfg = resolve_config(overrides)
    assert (cfg.students, cfg.student_args) == (None, {})
    assert config_hash(cfg) == digest
    assert config_hash(TrainConfig()) == MLP_HASHES[0][1]


def test_student_args_merge_from_file_and_dotlist(tmp_path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("n: 3\nstudents: [pnn, final, ecn]\nstudent_args:\n  ecn: {num_cross_layers: 2, net_dropout: 0.3}\n"
                    "  pnn: {net_dropout: 0.1}\n")
    cfg = resolve_config(["student_args.ecn.num_cross_layers=5", "student_args.final.hidden_units=[8]"],
                         config_file=path)
    assert cfg.students == ["pnn", "final", "ecn"]
    assert cfg.student_args == {"ecn": {"num_cross_layers": 5, "net_dropout": 0.3}, "pnn": {"net_dropout": 0.1},
                                "final": {"hidden_units": [8]}}
    assert config_hash(cfg) != config_hash(resolve_config(["n=3", "students=[pnn,final,ecn]"]))


def test_top_level_keys_fill_every_student_that_has_them_unless_its_block_does() -> None:
    cfg = resolve_config(["n=2", "students=[pnn,ecn]", "hidden_units=[8]", "net_dropout=0.2", "batch_norm=false",
                          "student_args.ecn.net_dropout=0.3"])
    model = build_ensemble(FM, num_students=cfg.n, students=cfg.students, student_args=cfg.student_args,
                           hidden_units=cfg.hidden_units, net_dropout=cfg.net_dropout, batch_norm=cfg.batch_norm,
                           embedding_dim=4)
    pnn, ecn = [m["args"] for m in model.describe()["students"]]
    assert (pnn["hidden_units"], pnn["net_dropout"], pnn["batch_norm"]) == ([8], 0.2, False)
    assert (ecn["net_dropout"], ecn["batch_norm"]) == (0.3, False) and "hidden_units" not in ecn


# the documented net_dropout default of every student whose arguments inherit DNNArgs (hidden_units [400, 400, 400]
# and batch_norm true for all of them)
DNN_DROPOUT = {"mlp": 0.0, "wide_deep": 0.0, "deepfm": 0.0, "autoint": 0.0, "afn": 0.0, "pnn": 0.1, "xdeepfm": 0.1,
               "dcnv2": 0.1, "final": 0.2}


@pytest.mark.parametrize("name", sorted(DNN_DROPOUT))
def test_dnn_students_inherit_the_shared_arguments_with_their_own_defaults(name: str) -> None:
    if name not in NAMES:
        pytest.skip(f"no {name} student")
    args_type = STUDENTS.get(name).args_type
    assert issubclass(args_type, DNNArgs)
    args = parse_student_args(name)
    assert (args.hidden_units, args.net_dropout, args.batch_norm) == ([400, 400, 400], DNN_DROPOUT[name], True)
    valid = sorted(f.name for f in dataclasses.fields(args_type))
    assert {"hidden_units", "net_dropout", "batch_norm"} <= set(valid)
    with pytest.raises(UserError, match=rf"unknown argument 'hidden_unit'; valid: {', '.join(valid)}$"):
        parse_student_args(name, {"hidden_unit": [8]})


def test_inherited_fields_are_listed_and_checked_before_the_students_own() -> None:
    if "xdeepfm" not in NAMES:
        pytest.skip("no xdeepfm student")
    with pytest.raises(UserError, match=r"valid: batch_norm, cin_hidden_units, hidden_units, net_dropout$"):
        parse_student_args("xdeepfm", {"cin": [8]})
    with pytest.raises(UserError, match=r"^net_dropout must be in \[0, 1\), got 1\.5$"):
        parse_student_args("xdeepfm", {"net_dropout": 1.5, "cin_hidden_units": [0]})


@pytest.mark.parametrize(("overrides", "message"), [
    (["n=2", "students=[pnn,final,ecn]"], r"config keys 'n' and 'students': n=2 but students lists 3"),
    (["n=2", "students=[pnn,nope]"], r"config key 'students': expected a list of names, each one of "),
    (["n=2", "student=ecn", "students=[pnn,ecn]"], r"config key 'student': expected the default \(mlp\)"),
    (["student_args.ecn.num_cross_layers=2"], r"'student_args\.ecn\.num_cross_layers': student 'ecn' is not in"),
    (["student=ecn", "student_args.ecn.hidden_units=[8]"],
     r"^config key 'student_args\.ecn\.hidden_units': student 'ecn' has no argument 'hidden_units'; valid: "),
    (["student=ecn", "student_args.ecn.num_cross_layers=two"], r"config key 'student_args\.ecn\.num_cross_layers'"),
    (["student_args.mlp=3"], r"config key 'student_args\.mlp': expected a mapping"),
    (["student=ecn", "form=batched"], r"config key 'form': 'batched' supports homogeneous 'mlp' students only, not "
                                      r"'ecn'"),
    (["student=ecn", "n=1", "method=vanilla", "width_match_n=3"], r"'width_match_n': the capacity control scales "
                                                                  r"mlp students only, not ecn"),
    (["method=dml", "fusion=concat"], r"'fusion': expected mean or sum with method dml .*concat head never trains"),
])
def test_bad_student_settings_are_one_line_errors(overrides, message) -> None:
    if not {"pnn", "ecn"} <= set(NAMES):
        pytest.skip("needs the pnn and ecn students")
    with pytest.raises(UserError, match=message) as info:
        resolve_config(overrides)
    assert "\n" not in str(info.value)


def test_config_does_not_import_models_or_strategies() -> None:
    import ast
    from pathlib import Path

    import collapse_lab.config as C

    tree = ast.parse(Path(C.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.startswith(("collapse_lab.models", "collapse_lab.strategies"))}


# ---- end to end ----------------------------------------------------------------------------------------------------
def test_cli_trains_a_students_list_and_writes_the_members(tmp_path) -> None:
    from click.testing import CliRunner
    from train_fixtures import make_dataset

    from collapse_lab.cli import cli

    data = make_dataset(tmp_path / "data", rows=2000)
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", f"dataset={data}", "method=kdef", "n=2", "students=[mlp,mlp]",
                                   "hidden_units=[8,8]", "embedding_dim=4", "batch_size=256", "probe_rows=32",
                                   "num_threads=1", "--max-steps", "4", "--device", "cpu", "--out", str(out),
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    model = manifest["model"]
    assert manifest["config"]["students"] == ["mlp", "mlp"] and model["student"] == "mlp"
    args = {"hidden_units": [8, 8], "net_dropout": 0.1, "batch_norm": True}
    assert model["students"] == [{"member": k, "student": "mlp", "args": args,
                                  "parameters": model["parameters"]["students"][k]} for k in range(2)]
    assert model["parameters"]["students"] == [(16 + 1 + 2) * 8 + (8 + 1 + 2) * 8 + 9] * 2  # F*D = 4*4 = 16
    assert model["hidden_layers"][1] == {"member": 0, "layer": 1, "name": "students.0.layers.1",
                                         "weight": "students.0.layers.1.linear.weight", "shape": [8, 8],
                                         "kind": "linear", "label": "mlp.1"}
