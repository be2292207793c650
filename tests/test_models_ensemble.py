"""The ensemble: canonical tensor names (README table), hidden activations, per-student initialisation, fusion,
parameter counts (docs/method.md §8.2), export/import round trips across the two forms."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from collapse_lab.data.feature_map import FeatureMap, FieldInfo
from collapse_lab.errors import UserError
from collapse_lab.models import build_ensemble
from collapse_lab.utils.seed import derive_seeds

FM = FeatureMap("toy", [FieldInfo("user", "categorical", 0, 1, 7),
                        FieldInfo("genres", "sequence", 1, 3, 6, max_len=3),
                        FieldInfo("age", "numeric", 0, 0, 1, padding_idx=None)])
IDS = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [6, 1, 1, 1], [2, 0, 0, 0], [3, 4, 0, 0], [5, 5, 2, 0]])
VALUES = torch.tensor([[0.5], [2.0], [-1.0], [0.0], [1.5], [0.2]])
README = Path(__file__).resolve().parents[1] / "README.md"


def tiny(**kw):
    args = dict(num_students=2, hidden_units=(8, 4), embedding_dim=3, net_dropout=0.0, fusion="concat", seed=11,
                embedding_init_std=0.1)
    args.update(kw)
    return build_ensemble(FM, **args)


def expected_names(n: int, layers: int, batch_norm: bool, concat: bool) -> set:
    names = {f"embedding.tables.{f}.weight" for f in ("user", "genres", "age")}
    for k in range(n):
        for j in range(layers):
            names |= {f"students.{k}.layers.{j}.linear.weight", f"students.{k}.layers.{j}.linear.bias"}
            if batch_norm:
                names |= {f"students.{k}.layers.{j}.bn.{p}"
                          for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
        names |= {f"students.{k}.head.weight", f"students.{k}.head.bias"}
    return names | ({"fusion.head.weight", "fusion.head.bias"} if concat else set())


@pytest.mark.parametrize("form", ["loop", "batched"])
@pytest.mark.parametrize("batch_norm", [True, False])
def test_exported_names_and_shapes_follow_the_readme_table(form: str, batch_norm: bool) -> None:
    model = tiny(form=form, batch_norm=batch_norm)
    sd = model.export_state_dict()
    assert set(sd) == expected_names(2, 2, batch_norm, concat=True)
    if form == "loop":  # the loop form's own state dict already uses the canonical names
        assert set(model.state_dict()) == set(sd)
    assert sd["embedding.tables.user.weight"].shape == (7, 3)  # (V_f, D)
    assert sd["embedding.tables.age.weight"].shape == (1, 3)  # numeric: one vector
    assert sd["students.1.layers.0.linear.weight"].shape == (8, 9)  # (H_0, F*D)
    assert sd["students.1.layers.1.linear.weight"].shape == (4, 8)  # (H_1, H_0)
    assert sd["students.0.head.weight"].shape == (1, 4) and sd["students.0.head.bias"].shape == (1,)
    assert sd["fusion.head.weight"].shape == (1, 2 * 4)  # (1, N * H_last)
    text = README.read_text()
    for pattern in ("`embedding.tables.<field>.weight`", "`students.<k>.layers.<j>.linear.weight`",
                    "`students.<k>.layers.<j>.bn.*`", "`students.<k>.head.weight`", "`fusion.head.weight`"):
        assert pattern in text
    assert not any(re.search(r"\.(stack|weights|biases)\.", n) for n in sd)


@pytest.mark.parametrize("form", ["loop", "batched"])
def test_hidden_activations_are_named_post_relu_and_pre_dropout(form: str) -> None:
    model = tiny(form=form, num_students=3, net_dropout=0.5, fusion="mean")
    model.train()
    torch.manual_seed(0)
    out = model(IDS, VALUES, return_hidden=True)
    assert list(out["hidden"]) == [f"students.{k}.layers.{j}" for k in range(3) for j in range(2)]
    assert all(out["hidden"][f"students.{k}.layers.0"].shape == (6, 8) for k in range(3))
    assert all(out["hidden"][f"students.{k}.layers.1"].shape == (6, 4) for k in range(3))
    assert all(bool((a >= 0).all()) for a in out["hidden"].values())
    torch.testing.assert_close(out["input"], model.embedding(IDS, VALUES))
    # layer 0's activation is taken before dropout: switching dropout off leaves it unchanged
    if form == "loop":
        for s in model.students:
            for layer in s.layers:
                layer.dropout = 0.0
    else:
        model.stack.net_dropout = 0.0
    again = model(IDS, VALUES, return_hidden=True)
    for k in range(3):
        torch.testing.assert_close(again["hidden"][f"students.{k}.layers.0"], out["hidden"][f"students.{k}.layers.0"])
    assert "hidden" not in model(IDS, VALUES) and "input" not in model(IDS, VALUES)


def test_each_student_has_its_own_seeded_xavier_initialisation() -> None:
    model = build_ensemble(FM, num_students=3, hidden_units=(64, 32), embedding_dim=8, seed=7)
    assert model.student_seeds == derive_seeds(7, 3)
    w = [s.layers[0].linear.weight.detach() for s in model.students]  # (64, 24) each
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2]) and not torch.equal(w[0], w[2])
    xavier_std = math.sqrt(2.0 / (64 + 24))
    for s in model.students:
        assert abs(s.layers[0].linear.weight.std().item() / xavier_std - 1) < 0.1
        assert torch.all(s.layers[0].linear.bias == 0) and torch.all(s.head.bias == 0)
    # reproducible, and student k's initialisation does not depend on N (SeedSequence children are stable)
    same = build_ensemble(FM, num_students=3, hidden_units=(64, 32), embedding_dim=8, seed=7).export_state_dict()
    bigger = build_ensemble(FM, num_students=4, hidden_units=(64, 32), embedding_dim=8, seed=7).export_state_dict()
    other = build_ensemble(FM, num_students=3, hidden_units=(64, 32), embedding_dim=8, seed=8).export_state_dict()
    sd = model.export_state_dict()
    assert all(torch.equal(sd[n], same[n]) for n in sd)
    assert all(torch.equal(sd[n], bigger[n]) for n in sd)
    assert not torch.equal(sd["students.0.layers.0.linear.weight"], other["students.0.layers.0.linear.weight"])
    assert not torch.equal(sd["embedding.tables.user.weight"], other["embedding.tables.user.weight"])


@pytest.mark.parametrize("form", ["loop", "batched"])
def test_fusions(form: str) -> None:
    for fusion in ("mean", "sum"):
        model = tiny(form=form, num_students=3, fusion=fusion).eval()
        out = model(IDS, VALUES)
        reduce = out["logits"].mean(1) if fusion == "mean" else out["logits"].sum(1)
        torch.testing.assert_close(out["fused_logit"], reduce)
        assert model.describe()["parameters"]["fusion"] == 0
    model = tiny(form=form, num_students=3, fusion="concat").eval()
    assert model.fusion.head.weight.shape == (1, 3 * 4)
    out = model(IDS, VALUES, return_hidden=True)
    last = torch.cat([out["hidden"][f"students.{k}.layers.1"] for k in range(3)], dim=1)  # eval: no dropout
    torch.testing.assert_close(out["fused_logit"], model.fusion.head(last).squeeze(-1))
    assert model.describe()["parameters"]["fusion"] == 3 * 4 + 1


def test_parameter_counts_match_the_papers_criteo_logs() -> None:
    # Criteo_x4: 39 fields, 910,747 features in total, D = 16, MLP [400, 400, 400] with BN (docs/method.md §8.2)
    vocab = [10] * 38 + [910_747 - 380]
    fm = FeatureMap("criteo", [FieldInfo(f"f{i}", "categorical", i, 1, v) for i, v in enumerate(vocab)])
    model = build_ensemble(fm, num_students=3, embedding_dim=16, hidden_units=(400, 400, 400))
    p = model.describe()["parameters"]
    assert p["embedding"] == 14_571_952 and p["students"] == [573_601] * 3 and p["total"] == 16_292_755
    small = build_ensemble(fm, num_students=1, form="batched").describe()["parameters"]
    assert small["total"] == 15_145_553
    concat = build_ensemble(fm, num_students=2, fusion="concat", form="batched").describe()["parameters"]
    assert concat["fusion"] == 2 * 400 + 1 and concat["total"] == 15_719_154 + 801
    # KDEF_Latest (Criteo run 004: dropouts 0.1 / 0.2 / 0.1, 4 cross layers): 17,051,091 in the log
    latest = build_ensemble(fm, num_students=3, students=["pnn", "final", "ecn"],
                            student_args={"final": {"net_dropout": 0.2}, "ecn": {"num_cross_layers": 4}})
    p = latest.describe()["parameters"]
    assert p["students"] == [870_001, 824_761, 784_377] and p["total"] == 17_051_091


def test_describe_lists_tables_and_hidden_layers() -> None:
    d = tiny(num_students=2).describe()
    assert d["fields"][1] == {"name": "genres", "type": "sequence", "vocab_size": 6,
                              "table": "embedding.tables.genres.weight", "shape": [6, 3]}
    assert d["hidden_layers"][3] == {"member": 1, "layer": 1, "name": "students.1.layers.1",
                                     "weight": "students.1.layers.1.linear.weight", "shape": [4, 8],
                                     "kind": "linear", "label": "mlp.1"}
    assert d["students"][1] == {"member": 1, "student": "mlp", "parameters": d["parameters"]["students"][1],
                                "args": {"hidden_units": [8, 4], "net_dropout": 0.0, "batch_norm": True}}
    assert (d["num_students"], d["student"], d["fusion"], d["embedding_dim"]) == (2, "mlp", "concat", 3)


@pytest.mark.parametrize("src_form,dst_form", [("loop", "batched"), ("batched", "loop"), ("loop", "loop")])
def test_export_import_round_trip_across_forms(src_form: str, dst_form: str) -> None:
    src = tiny(form=src_form, num_students=3)
    opt = torch.optim.SGD(src.parameters(), lr=0.01)
    src.train()
    out = src(IDS, VALUES)
    (out["fused_logit"].sum() + out["logits"].sum()).backward()
    opt.step()  # move every parameter and the BatchNorm statistics away from their initial values
    snapshot = src.export_state_dict()
    dst = tiny(form=dst_form, num_students=3, seed=99)
    dst.import_state_dict(snapshot)
    back = dst.export_state_dict()
    assert all(torch.equal(snapshot[n], back[n]) for n in snapshot)
    assert back["students.2.layers.0.bn.num_batches_tracked"].item() == 1
    src.eval(), dst.eval()
    a, b = src(IDS, VALUES), dst(IDS, VALUES)
    assert (a["logits"] - b["logits"]).abs().max().item() <= 1e-5
    # the export is a snapshot, not a view of the live parameters
    with torch.no_grad():
        next(src.parameters()).add_(1.0)
    assert torch.equal(snapshot["embedding.tables.user.weight"], back["embedding.tables.user.weight"])


def test_import_is_strict_with_clear_errors() -> None:
    model = tiny(num_students=2)
    sd = model.export_state_dict()
    missing = dict(sd)
    del missing["students.1.head.bias"]
    with pytest.raises(UserError, match=r"missing students\.1\.head\.bias"):
        model.import_state_dict(missing)
    with pytest.raises(UserError, match=r"unexpected students\.2\.head\.bias"):
        model.import_state_dict({**sd, "students.2.head.bias": torch.zeros(1)})
    with pytest.raises(UserError, match=r"'students\.0\.head\.weight': expected shape \[1, 4\], got \[1, 5\]"):
        model.import_state_dict({**sd, "students.0.head.weight": torch.zeros(1, 5)})


def test_embedding_l2_and_bad_arguments() -> None:
    model = tiny()
    expected = sum(float((t ** 2).sum()) for n, t in model.export_state_dict().items() if n.startswith("embedding."))
    assert model.embedding_l2().item() == pytest.approx(expected, rel=1e-6)
    for kwargs, message in (({"fusion": "max"}, "unknown fusion 'max'; valid: mean, sum, concat"),
                            ({"num_students": 0}, "integer >= 1"), ({"student": "cnn"}, "unknown student 'cnn'"),
                            ({"form": "vmap"}, "unknown form 'vmap'"), ({"net_dropout": 1.0}, "net_dropout")):
        with pytest.raises(UserError, match=re.escape(message)):
            tiny(**kwargs)
    assert np.isfinite(model(IDS, VALUES)["fused_logit"].detach().numpy()).all()
