"""The cross-network students ``crossnet``, ``dcnv2``, ``cin`` and ``xdeepfm`` (docs/method.md §7): shapes, gradients,
dropout, seeding, exact parameter counts, listed matrices, forward values against numpy references written out
here, and bad arguments."""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
import pytest
import torch

from collapse_lab.errors import UserError
from collapse_lab.models.students import MATRIX_KINDS, StudentInput, build_student

torch.set_num_threads(1)

F, D, B = 3, 4, 5
FD = F * D
INP = StudentInput(F, D)

#: (student, arguments) variants; small widths keep the tests fast
VARIANTS: List[tuple] = [
    ("crossnet", {}),
    ("crossnet", {"num_cross_layers": 1}),
    ("dcnv2", {"hidden_units": [8, 6]}),
    ("dcnv2", {"hidden_units": [8, 6], "model_structure": "stacked", "batch_norm": False}),
    ("dcnv2", {"hidden_units": [8], "model_structure": "crossnet_only", "num_cross_layers": 2}),
    ("cin", {}),
    ("cin", {"cin_hidden_units": [5, 2]}),
    ("xdeepfm", {"hidden_units": [8, 6], "cin_hidden_units": [4, 3]}),
    ("xdeepfm", {"hidden_units": [], "cin_hidden_units": [2], "batch_norm": False}),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(VARIANTS)]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _build(name: str, args: Dict[str, Any], seed: int = 0, inp: StudentInput = INP):
    return build_student(name, inp, args, _gen(seed))


def _h(seed: int = 1, rows: int = B, width: int = FD) -> torch.Tensor:
    return torch.randn(rows, width, generator=_gen(seed))


def _expected_last(name: str, args: Dict[str, Any]) -> int:
    hidden = args.get("hidden_units", [400, 400, 400])
    cin = args.get("cin_hidden_units", [16, 16, 16])
    if name == "crossnet":
        return FD
    if name == "cin":
        return sum(cin)
    if name == "xdeepfm":
        return (hidden[-1] if hidden else FD) + sum(cin) + FD
    structure = args.get("model_structure", "parallel")
    return {"parallel": hidden[-1] + FD, "stacked": hidden[-1], "crossnet_only": FD}[structure]


# ---------------------------------------------------------------- shapes, gradients, dropout, seeds

@pytest.mark.parametrize(("name", "args"), VARIANTS, ids=IDS)
def test_shapes_finite_and_gradient(name: str, args: Dict[str, Any]) -> None:
    s = _build(name, args)
    h = _h().requires_grad_(True)
    hidden: Dict[str, torch.Tensor] = {}
    logit, last = s(h, hidden)
    assert logit.shape == (B,) and last.shape == (B, _expected_last(name, args)) == (B, s.output_dim)
    assert torch.isfinite(logit).all() and torch.isfinite(last).all()
    logit.sum().backward()
    assert h.grad is not None and h.grad.abs().sum() > 0
    assert all(v.shape[0] == B and v.dim() == 2 for v in hidden.values())
    assert hidden, "every student probes at least one layer"


def test_hidden_probe_names_and_widths() -> None:
    hid: Dict[str, torch.Tensor] = {}
    _build("dcnv2", {"hidden_units": [8, 6], "num_cross_layers": 2})(_h(), hid)
    assert {k: tuple(v.shape) for k, v in hid.items()} == {"cross.0": (B, FD), "cross.1": (B, FD),
                                                           "dnn.0": (B, 8), "dnn.1": (B, 6)}
    hid = {}
    _build("xdeepfm", {"hidden_units": [7], "cin_hidden_units": [4, 3]})(_h(), hid)
    assert {k: tuple(v.shape) for k, v in hid.items()} == {"dnn.0": (B, 7), "cin.0": (B, 4 * D), "cin.1": (B, 3 * D)}


@pytest.mark.parametrize(("name", "args"), VARIANTS, ids=IDS)
def test_eval_is_deterministic_and_seeds_decide_the_weights(name: str, args: Dict[str, Any]) -> None:
    s = _build(name, args).eval()
    h = _h()
    with torch.no_grad():
        assert torch.equal(s(h)[0], s(h)[0])
    a, b, c = (_build(name, args, seed).state_dict() for seed in (3, 3, 4))
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    weights = [k for k in a if k.endswith("weight") and a[k].dim() >= 2]
    assert weights and all(not torch.equal(a[k], c[k]) for k in weights)
    # biases start at zero (FuxiCTR's init): zero in both seeds
    assert all(torch.count_nonzero(a[k]) == 0 for k in a if k.endswith(".bias") and ".bn." not in k)


@pytest.mark.parametrize(("name", "args"), [("dcnv2", {"hidden_units": [8, 6], "net_dropout": 0.5}),
                                            ("dcnv2", {"hidden_units": [8], "model_structure": "stacked",
                                                       "net_dropout": 0.5}),
                                            ("xdeepfm", {"hidden_units": [8, 6], "cin_hidden_units": [2],
                                                         "net_dropout": 0.5})])
def test_train_mode_dropout_changes_the_output(name: str, args: Dict[str, Any]) -> None:
    s = _build(name, args)
    h = _h()
    torch.manual_seed(0)
    with torch.no_grad():
        s.train()
        t1, t2 = s(h)[0], s(h)[0]
        s.eval()
        e = s(h)[0]
    assert not torch.allclose(t1, t2) and not torch.allclose(t1, e)


@pytest.mark.parametrize(("name", "args"), [("crossnet", {}), ("cin", {}),
                                            ("dcnv2", {"hidden_units": [8], "batch_norm": False, "net_dropout": 0.0})])
def test_without_dropout_or_batchnorm_train_equals_eval(name: str, args: Dict[str, Any]) -> None:
    s = _build(name, args)
    h = _h()
    with torch.no_grad():
        t = s.train()(h)[0]
        e = s.eval()(h)[0]
    assert torch.equal(t, e)


# ---------------------------------------------------------------- parameter counts

def _count(s: torch.nn.Module) -> int:
    return sum(p.numel() for p in s.parameters())


def _dnn(widths: List[int], fan_in: int, bn: bool) -> int:
    """Σ_j (H_j H_{j-1} + H_j) + 2 H_j per BatchNorm."""
    dims = [fan_in, *widths]
    return sum(dims[j + 1] * dims[j] + dims[j + 1] * (3 if bn else 1) for j in range(len(widths)))


def _cin(fields: int, units: List[int]) -> int:
    """Σ_k (H_k F H_{k-1} + H_k) with H_{-1} = F, plus the head Σ_k H_k + 1."""
    dims = [fields, *units]
    return sum(units[k] * fields * dims[k] + units[k] for k in range(len(units))) + sum(units) + 1


@pytest.mark.parametrize(("name", "args", "expected"), [
    ("crossnet", {}, 3 * (FD * FD + FD) + FD + 1),
    ("crossnet", {"num_cross_layers": 1}, (FD * FD + FD) + FD + 1),
    ("dcnv2", {"hidden_units": [8, 6]}, 3 * (FD * FD + FD) + _dnn([8, 6], FD, True) + (6 + FD) + 1),
    ("dcnv2", {"hidden_units": [8, 6], "model_structure": "stacked", "batch_norm": False},
     3 * (FD * FD + FD) + _dnn([8, 6], FD, False) + 6 + 1),
    ("dcnv2", {"hidden_units": [8], "model_structure": "crossnet_only", "num_cross_layers": 2},
     2 * (FD * FD + FD) + FD + 1),
    ("cin", {}, _cin(F, [16, 16, 16])),
    ("cin", {"cin_hidden_units": [5, 2]}, (5 * F * F + 5) + (2 * F * 5 + 2) + 7 + 1),
    ("xdeepfm", {"hidden_units": [8, 6], "cin_hidden_units": [4, 3]},
     _dnn([8, 6], FD, True) + 6 + 1 + FD + 1 + _cin(F, [4, 3])),
])
def test_parameter_count_closed_form(name: str, args: Dict[str, Any], expected: int) -> None:
    assert _count(_build(name, args)) == expected


def test_criteo_parameter_counts_equal_the_authors_modules() -> None:
    """Criteo (F = 39, D = 16): counts of the authors' Backbone classes (CrossNetV2 + our head, DCNv2,
    CompressedInteractionNet, xDeepFM with [400]*3 + BN), worked out by hand."""
    criteo = StudentInput(39, 16)
    fd = 624
    cross = 3 * (fd * fd + fd)  # 1,170,000
    dnn = _dnn([400, 400, 400], fd, True)  # 573,200
    assert dnn + 401 == 573_601  # one MLP student (docs/method.md §7)
    assert _count(_build("crossnet", {}, inp=criteo)) == cross + fd + 1 == 1_170_625
    assert _count(_build("dcnv2", {}, inp=criteo)) == cross + dnn + 400 + fd + 1 == 1_744_225
    assert _count(_build("cin", {}, inp=criteo)) == (16 * 39 * 39 + 16) + 2 * (16 * 39 * 16 + 16) + 49 == 44_401
    assert _count(_build("xdeepfm", {}, inp=criteo)) == 573_601 + (fd + 1) + 44_401 == 618_627


# ---------------------------------------------------------------- matrices

@pytest.mark.parametrize(("name", "args"), VARIANTS, ids=IDS)
def test_matrices_exist_with_valid_kinds(name: str, args: Dict[str, Any]) -> None:
    s = _build(name, args)
    sd = s.state_dict()
    mats = s.matrices()
    assert mats and len({m.name for m in mats}) == len(mats)
    for m in mats:
        assert m.name in sd and m.kind in MATRIX_KINDS
        w = sd[m.name]
        if m.layer.startswith("cin."):
            assert m.kind == "cross" and w.dim() == 3 and w.shape[-1] == 1  # Conv1d (out, in, 1), read as 2-D
        else:
            assert w.dim() == 2
    assert all(not m.name.startswith(("head", "lr", "dnn_head", "cin.head")) for m in mats)


def test_matrix_lists() -> None:
    s = _build("xdeepfm", {"hidden_units": [8, 6], "cin_hidden_units": [4, 3]})
    assert [(m.name, m.kind, m.layer) for m in s.matrices()] == [
        ("dnn.layers.0.linear.weight", "linear", "dnn.0"), ("dnn.layers.1.linear.weight", "linear", "dnn.1"),
        ("cin.layers.0.weight", "cross", "cin.0"), ("cin.layers.1.weight", "cross", "cin.1")]
    assert tuple(s.state_dict()["cin.layers.1.weight"].shape) == (3, F * 4, 1)
    s = _build("dcnv2", {"hidden_units": [8], "num_cross_layers": 2})
    assert [(m.name, m.kind, m.layer) for m in s.matrices()] == [
        ("crossnet.cross_layers.0.weight", "cross", "cross.0"), ("crossnet.cross_layers.1.weight", "cross", "cross.1"),
        ("dnn.layers.0.linear.weight", "linear", "dnn.0")]
    assert [m.layer for m in _build("dcnv2", {"model_structure": "crossnet_only"}).matrices()] == \
        ["cross.0", "cross.1", "cross.2"]


# ---------------------------------------------------------------- forward values against numpy

def _set(s: torch.nn.Module, values: Dict[str, np.ndarray]) -> None:
    sd = s.state_dict()
    for k, v in values.items():
        assert tuple(sd[k].shape) == v.shape, k
        sd[k] = torch.as_tensor(v, dtype=sd[k].dtype)
    s.load_state_dict(sd)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def test_cross_layer_by_hand_on_a_2x2_case() -> None:
    """F = 2, D = 1: x_0 = (1, 2); one layer W = [[1, 2], [3, 4]], b = (0.5, -1); head w = (1, -1), c = 0.25.
    W x_0 + b = (5.5, 10); x_1 = x_0 ⊙ (5.5, 10) + x_0 = (6.5, 22); z = 6.5 - 22 + 0.25 = -15.25."""
    s = build_student("crossnet", StudentInput(2, 1), {"num_cross_layers": 1}, _gen(0)).double()
    _set(s, {"crossnet.cross_layers.0.weight": np.array([[1.0, 2.0], [3.0, 4.0]]),
             "crossnet.cross_layers.0.bias": np.array([0.5, -1.0]),
             "head.weight": np.array([[1.0, -1.0]]), "head.bias": np.array([0.25])})
    hid: Dict[str, torch.Tensor] = {}
    z, last = s(torch.tensor([[1.0, 2.0]], dtype=torch.float64), hid)
    assert z.tolist() == [-15.25] and last.tolist() == [[6.5, 22.0]] and hid["cross.0"].tolist() == [[6.5, 22.0]]


def _np_cross(x0: np.ndarray, layers: List[tuple]) -> np.ndarray:
    x = x0
    for w, b in layers:
        x = x0 * (x @ w.T + b) + x
    return x


def _np_dnn(x: np.ndarray, layers: List[tuple]) -> np.ndarray:
    for w, b in layers:
        x = np.maximum(x @ w.T + b, 0.0)
    return x


def _np_cin(x0: np.ndarray, layers: List[tuple]) -> np.ndarray:
    """Loop form of the CIN: X^{k+1}[b, o, d] = Σ_{f, m} W[o, f*H + m] X^0[b, f, d] X^k[b, m, d] + c[o]; pooled."""
    bsz, fields, dim = x0.shape
    x, pooled = x0, []
    for w, c in layers:
        out = np.zeros((bsz, w.shape[0], dim))
        for b_ in range(bsz):
            for o in range(w.shape[0]):
                for d in range(dim):
                    acc = c[o]
                    for f in range(fields):
                        for m in range(x.shape[1]):
                            acc += w[o, f * x.shape[1] + m, 0] * x0[b_, f, d] * x[b_, m, d]
                    out[b_, o, d] = acc
        x = out
        pooled.append(x.sum(axis=-1))
    return np.concatenate(pooled, axis=-1)


def test_cin_forward_against_a_numpy_loop() -> None:
    s = build_student("cin", StudentInput(2, 3), {"cin_hidden_units": [2, 3]}, _gen(0)).double()
    rng = np.random.default_rng(0)
    vals = {"cin.layers.0.weight": rng.normal(size=(2, 4, 1)), "cin.layers.0.bias": rng.normal(size=2),
            "cin.layers.1.weight": rng.normal(size=(3, 4, 1)), "cin.layers.1.bias": rng.normal(size=3),
            "cin.head.weight": rng.normal(size=(1, 5)), "cin.head.bias": rng.normal(size=1)}
    _set(s, vals)
    x0 = rng.normal(size=(4, 2, 3))
    z, last = s(torch.as_tensor(x0.reshape(4, 6)))
    p = _np_cin(x0, [(vals["cin.layers.0.weight"], vals["cin.layers.0.bias"]),
                     (vals["cin.layers.1.weight"], vals["cin.layers.1.bias"])])
    np.testing.assert_allclose(_np(last), p, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_np(z), p @ vals["cin.head.weight"][0] + vals["cin.head.bias"][0], rtol=1e-12)


def test_cin_single_field_case_by_hand() -> None:
    """F = 1, D = 2, one unit: X^1 = w x^2 + c elementwise; x = (1, 3), w = 2, c = 1 -> (3, 19), pooled 22;
    head w = 0.5, b = -1 -> z = 10."""
    s = build_student("cin", StudentInput(1, 2), {"cin_hidden_units": [1]}, _gen(0)).double()
    _set(s, {"cin.layers.0.weight": np.array([[[2.0]]]), "cin.layers.0.bias": np.array([1.0]),
             "cin.head.weight": np.array([[0.5]]), "cin.head.bias": np.array([-1.0])})
    hid: Dict[str, torch.Tensor] = {}
    z, last = s(torch.tensor([[1.0, 3.0]], dtype=torch.float64), hid)
    assert z.tolist() == [10.0] and last.tolist() == [[22.0]] and hid["cin.0"].tolist() == [[3.0, 19.0]]


def _random_state(s: torch.nn.Module, seed: int) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    vals = {k: rng.normal(scale=0.5, size=tuple(v.shape)) for k, v in s.state_dict().items()
            if v.is_floating_point()}
    _set(s, vals)
    return vals


@pytest.mark.parametrize("structure", ["parallel", "stacked", "crossnet_only"])
def test_dcnv2_forward_against_numpy(structure: str) -> None:
    s = _build("dcnv2", {"hidden_units": [5, 4], "num_cross_layers": 2, "net_dropout": 0.0, "batch_norm": False,
                         "model_structure": structure}).double()
    v = _random_state(s, 1)
    h = _np(_h(2))
    cross = _np_cross(h, [(v[f"crossnet.cross_layers.{i}.weight"], v[f"crossnet.cross_layers.{i}.bias"])
                          for i in range(2)])
    dnn = [(v[f"dnn.layers.{j}.linear.weight"], v[f"dnn.layers.{j}.linear.bias"]) for j in range(2)] \
        if structure != "crossnet_only" else []
    u = {"parallel": lambda: np.concatenate([_np_dnn(h, dnn), cross], axis=1),  # the authors' order [DNN ; Cross]
         "stacked": lambda: _np_dnn(cross, dnn), "crossnet_only": lambda: cross}[structure]()
    z, last = s(torch.as_tensor(h))
    np.testing.assert_allclose(_np(last), u, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_np(z), u @ v["head.weight"][0] + v["head.bias"][0], rtol=1e-10, atol=1e-12)


def test_dcnv2_batch_norm_in_eval_uses_running_statistics() -> None:
    s = _build("dcnv2", {"hidden_units": [5], "num_cross_layers": 1, "net_dropout": 0.3}).double().eval()
    v = _random_state(s, 2)
    v["dnn.layers.0.bn.running_var"] = np.abs(v["dnn.layers.0.bn.running_var"]) + 0.5
    _set(s, v)
    h = _np(_h(3))
    a = h @ v["dnn.layers.0.linear.weight"].T + v["dnn.layers.0.linear.bias"]
    a = (a - v["dnn.layers.0.bn.running_mean"]) / np.sqrt(v["dnn.layers.0.bn.running_var"] + 1e-5)
    a = np.maximum(a * v["dnn.layers.0.bn.weight"] + v["dnn.layers.0.bn.bias"], 0.0)
    cross = _np_cross(h, [(v["crossnet.cross_layers.0.weight"], v["crossnet.cross_layers.0.bias"])])
    np.testing.assert_allclose(_np(s(torch.as_tensor(h))[1]), np.concatenate([a, cross], axis=1), rtol=1e-10)


def test_xdeepfm_is_lr_plus_cin_plus_dnn() -> None:
    s = _build("xdeepfm", {"hidden_units": [5, 4], "cin_hidden_units": [2, 3], "net_dropout": 0.0,
                           "batch_norm": False}).double()
    v = _random_state(s, 4)
    h = _np(_h(5))
    z_lr = h @ v["lr.weight"][0] + v["lr.bias"][0]
    p = _np_cin(h.reshape(B, F, D), [(v[f"cin.layers.{k}.weight"], v[f"cin.layers.{k}.bias"]) for k in range(2)])
    z_cin = p @ v["cin.head.weight"][0] + v["cin.head.bias"][0]
    a = _np_dnn(h, [(v[f"dnn.layers.{j}.linear.weight"], v[f"dnn.layers.{j}.linear.bias"]) for j in range(2)])
    z_dnn = a @ v["dnn_head.weight"][0] + v["dnn_head.bias"][0]
    z, last = s(torch.as_tensor(h))
    np.testing.assert_allclose(_np(z), z_lr + z_cin + z_dnn, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_np(last), np.concatenate([a, p, h], axis=1), rtol=1e-10, atol=1e-12)
    # the logit is an affine function of last: the three heads side by side
    w = np.concatenate([v["dnn_head.weight"][0], v["cin.head.weight"][0], v["lr.weight"][0]])
    bias = v["dnn_head.bias"][0] + v["cin.head.bias"][0] + v["lr.bias"][0]
    np.testing.assert_allclose(_np(z), _np(last) @ w + bias, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- bad arguments

@pytest.mark.parametrize(("name", "args", "key"), [
    ("crossnet", {"num_cross_layer": 2}, "num_cross_layer"),
    ("crossnet", {"num_cross_layers": 0}, "num_cross_layers"),
    ("crossnet", {"num_cross_layers": "3"}, "num_cross_layers"),
    ("crossnet", {"hidden_units": [8]}, "hidden_units"),
    ("dcnv2", {"hidden_unit": [8]}, "hidden_unit"),
    ("dcnv2", {"hidden_units": [8, -1]}, "hidden_units"),
    ("dcnv2", {"hidden_units": []}, "hidden_units"),
    ("dcnv2", {"net_dropout": 1.0}, "net_dropout"),
    ("dcnv2", {"num_cross_layers": -1}, "num_cross_layers"),
    ("dcnv2", {"model_structure": "stacked_parallel"}, "model_structure"),
    ("dcnv2", {"use_low_rank": True}, "use_low_rank"),
    ("dcnv2", {"batch_norm": "yes"}, "batch_norm"),
    ("cin", {"cin_hidden_units": [16, 0]}, "cin_hidden_units"),
    ("cin", {"cin_hidden_units": []}, "cin_hidden_units"),
    ("cin", {"cin_layer_units": [4]}, "cin_layer_units"),
    ("cin", {"net_dropout": 0.1}, "net_dropout"),
    ("xdeepfm", {"net_dropout": 1.0}, "net_dropout"),
    ("xdeepfm", {"hidden_units": [-4]}, "hidden_units"),
    ("xdeepfm", {"cin_hidden_units": [-2]}, "cin_hidden_units"),
    ("xdeepfm", {"cin_hidden_units": 16}, "cin_hidden_units"),
])
def test_bad_arguments_name_the_key(name: str, args: Dict[str, Any], key: str) -> None:
    with pytest.raises(UserError, match=key) as info:
        _build(name, args)
    assert "\n" not in str(info.value)


def test_crossnet_only_accepts_an_empty_dnn() -> None:
    """crossnet_only builds no DNN, so hidden_units may be empty there (FuxiCTR needs none either)."""
    s = _build("dcnv2", {"hidden_units": [], "model_structure": "crossnet_only"})
    assert s.dnn is None and s.output_dim == FD
