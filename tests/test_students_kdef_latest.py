"""The KDEF_Latest students ``pnn`` (IPNN), ``final`` (FINAL(1B)) and ``ecn`` (one-head ECN), docs/method.md §7.

Each student is tested alone through ``build_student``: shapes, gradients, dropout, seeding, closed-form parameter
counts (and the paper's Criteo_x4 log), its matrices, a hand-computed / numpy forward of its core interaction, and
one-line errors for bad arguments.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np
import pytest
import torch

from collapse_lab.errors import UserError
from collapse_lab.models.students import MATRIX_KINDS, StudentInput, build_student
from collapse_lab.models.students.ecn import ECNLayer, halves_first
from collapse_lab.models.students.final import FinalLayer, factorised
from collapse_lab.models.students.layers import MLPLayer

torch.set_num_threads(1)

F_, D_, B_ = 3, 4, 5
EPS = 1e-5  # BatchNorm1d / LayerNorm default eps

# (student, args, width of `last`, probe names -> widths) for F = 3, D = 4 (F*D = 12, 3 field pairs)
VARIANTS = [
    ("pnn", {}, 400, {"dnn.0": 400, "dnn.1": 400, "dnn.2": 400}),
    ("pnn", {"hidden_units": [8, 6], "batch_norm": False, "net_dropout": 0.0}, 6, {"dnn.0": 8, "dnn.1": 6}),
    ("pnn", {"hidden_units": []}, 12 + 3, {}),
    ("final", {}, 400, {"final.0": 400, "final.1": 400, "final.2": 400}),
    ("final", {"hidden_units": [8, 6], "batch_norm": False}, 6, {"final.0": 8, "final.1": 6}),
    ("final", {"hidden_units": []}, 24, {}),
    ("ecn", {}, 12, {"cross.0": 12, "cross.1": 12, "cross.2": 12, "cross.3": 12}),
    ("ecn", {"num_cross_layers": 1, "batch_norm": False, "net_dropout": 0.0}, 12, {"cross.0": 12}),
    ("ecn", {"num_cross_layers": 0}, 12, {}),
]
IDS = [f"{name}-{i}" for i, (name, *_rest) in enumerate(VARIANTS)]


def _build(name: str, args: Dict[str, Any] | None = None, seed: int = 0, f: int = F_, d: int = D_):
    return build_student(name, StudentInput(f, d), args or {}, torch.Generator().manual_seed(seed))


def _h(b: int = B_, f: int = F_, d: int = D_, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, f * d, generator=torch.Generator().manual_seed(seed))


# ---- shapes, finiteness, gradients ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "args", "width", "probes"), VARIANTS, ids=IDS)
def test_forward_shapes_probes_and_gradient(name, args, width, probes):
    s = _build(name, args)
    h = _h().requires_grad_(True)
    hidden: Dict[str, torch.Tensor] = {}
    z, last = s(h, hidden)
    assert z.shape == (B_,) and last.shape == (B_, width) and s.output_dim == width
    assert torch.isfinite(z).all() and torch.isfinite(last).all()
    assert {k: tuple(v.shape) for k, v in hidden.items()} == {k: (B_, w) for k, w in probes.items()}
    z.sum().backward()
    assert h.grad is not None and h.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["pnn", "final", "ecn"])
def test_eval_deterministic_train_dropout_differs(name):
    s = _build(name, {"net_dropout": 0.5})
    h = _h()
    s.eval()
    with torch.no_grad():
        assert torch.equal(s(h)[0], s(h)[0])
    s.train()
    torch.manual_seed(0)
    with torch.no_grad():
        a, b = s(h)[0], s(h)[0]
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("name", ["pnn", "final", "ecn"])
def test_generator_seeds_the_weights(name):
    a, b, c = _build(name, seed=3).state_dict(), _build(name, seed=3).state_dict(), _build(name, seed=4).state_dict()
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


# ---- parameter counts -----------------------------------------------------------------------------------------


def _mlp_count(inp: int, units, bn: bool) -> int:
    """Hidden Linear(+BN) layers plus the Linear(H_last -> 1) head."""
    dims, n = [inp, *units], 0
    for j in range(len(units)):
        n += dims[j] * dims[j + 1] + dims[j + 1] + (2 * dims[j + 1] if bn else 0)
    return n + dims[-1] + 1


def _pnn_count(f: int, d: int, units, bn: bool) -> int:
    return _mlp_count(f * d + f * (f - 1) // 2, units, bn)  # the inner products add inputs, not parameters


def _final_count(f: int, d: int, units, bn: bool) -> int:
    return f * f + f + _mlp_count(2 * f * d, units, bn)  # gate Linear(F, F) + factorised layers + head


def _ecn_count(f: int, d: int, layers: int, bn: bool) -> int:
    n = f * d
    per_layer = n * (n // 2) + n + 2 * (n // 2) + (2 if bn else 0)  # W_i, b_i, LayerNorm(n/2), BatchNorm1d(1)
    return layers * per_layer + n + 1


def _count(s: torch.nn.Module) -> int:
    return sum(p.numel() for p in s.parameters())


@pytest.mark.parametrize(("f", "d", "units", "bn"),
                         [(3, 4, [8, 6], True), (5, 2, [4], False), (39, 16, [400] * 3, True)])
def test_parameter_counts_closed_form(f, d, units, bn):
    mlp_args = {"hidden_units": units, "batch_norm": bn}
    assert _count(_build("pnn", mlp_args, f=f, d=d)) == _pnn_count(f, d, units, bn)
    assert _count(_build("final", mlp_args, f=f, d=d)) == _final_count(f, d, units, bn)
    layers = len(units) + 1
    ecn_args = {"num_cross_layers": layers, "batch_norm": bn}
    assert _count(_build("ecn", ecn_args, f=f, d=d)) == _ecn_count(f, d, layers, bn)


def test_criteo_kdef_latest_matches_the_log():
    """KDEF_Latest on Criteo_x4 (logs EKTF_L_Criteo_001/004): 17,051,091 parameters, embedding 14,571,952.

    The authors' EKTF_L holds exactly ``embedding_layer`` and ``networks = [ProductNetwork, FinalNet,
    ExponentialCrossNetwork]``, each with its own logit layer (``dnn``'s output Linear, ``fc``, ``fc``); the
    ensemble logit is the plain mean of the three, so there is no head or other parameter beyond the three
    sub-networks. FuxiCTR counts only ``requires_grad`` parameters, so the inner-product layer's frozen
    upper-triangle mask does not count (we keep it as a non-persistent buffer).
    """
    inp = StudentInput(39, 16)
    counts = {name: _count(build_student(name, inp, {}, torch.Generator().manual_seed(0)))
              for name in ("pnn", "final", "ecn")}
    assert counts == {"pnn": 870_001, "final": 824_761, "ecn": 784_377}  # the module docstrings' numbers
    assert counts["pnn"] == _pnn_count(39, 16, [400] * 3, True)
    assert counts["final"] == _final_count(39, 16, [400] * 3, True)
    assert counts["ecn"] == _ecn_count(39, 16, 4, True)
    assert sum(counts.values()) == 2_479_139 == 17_051_091 - 14_571_952


# ---- matrices -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("pnn", [("dnn.0.linear.weight", "linear", "dnn.0"), ("dnn.1.linear.weight", "linear", "dnn.1")]),
    ("final", [("gate.weight", "linear", "gate"), ("final.0.linear.weight", "linear", "final.0"),
               ("final.1.linear.weight", "linear", "final.1")]),
    ("ecn", [("cross.0.linear.weight", "cross", "cross.0"), ("cross.1.linear.weight", "cross", "cross.1")]),
])
def test_matrices(name, expected):
    args = {"num_cross_layers": 2} if name == "ecn" else {"hidden_units": [8, 6]}
    s = _build(name, args)
    mats = s.matrices()
    assert [(m.name, m.kind, m.layer) for m in mats] == expected
    sd = s.state_dict()
    for m in mats:
        assert m.kind in MATRIX_KINDS and sd[m.name].dim() == 2


# ---- core interactions, by hand and against numpy ---------------------------------------------------------------


def test_pnn_inner_products_by_hand():
    s = _build("pnn", {"hidden_units": [4]}, f=3, d=2)
    h = torch.tensor([[1.0, 2.0, 3.0, -1.0, 0.0, 2.0]])  # e1 = (1, 2), e2 = (3, -1), e3 = (0, 2)
    # <e1,e2> = 3 - 2 = 1, <e1,e3> = 4, <e2,e3> = -2 (pairs in row-major upper-triangle order)
    assert s.dense_input(h).tolist() == [[1.0, 2.0, 3.0, -1.0, 0.0, 2.0, 1.0, 4.0, -2.0]]


def _np_bn_eval(x: np.ndarray, sd, prefix: str) -> np.ndarray:
    g, b = sd[prefix + "weight"], sd[prefix + "bias"]
    return (x - sd[prefix + "running_mean"]) / np.sqrt(sd[prefix + "running_var"] + EPS) * g + b


def _np_state(s) -> Dict[str, np.ndarray]:
    with torch.no_grad():  # perturb BN/LN affine terms and running statistics so the reference checks them
        for k, v in s.state_dict().items():
            if v.is_floating_point() and (".bn." in k or ".ln." in k):
                v.add_(torch.rand(v.shape, generator=torch.Generator().manual_seed(len(k))) * 0.5)
    return {k: v.double().numpy() for k, v in s.state_dict().items()}


def test_pnn_forward_matches_numpy():
    s = _build("pnn", {"hidden_units": [5, 4]}, f=3, d=2).eval()
    sd = _np_state(s)
    h = _h(4, 3, 2)
    e = h.double().numpy().reshape(4, 3, 2)
    p = np.stack([(e[:, i] * e[:, j]).sum(-1) for i in range(3) for j in range(i + 1, 3)], axis=1)  # (4, 3)
    x = np.concatenate([h.double().numpy(), p], axis=1)
    for j in range(2):
        x = x @ sd[f"dnn.{j}.linear.weight"].T + sd[f"dnn.{j}.linear.bias"]
        x = np.maximum(_np_bn_eval(x, sd, f"dnn.{j}.bn."), 0.0)
    z = x @ sd["head.weight"].T[:, 0] + sd["head.bias"][0]
    np.testing.assert_allclose(s(h)[0].detach().double().numpy(), z, rtol=1e-5, atol=1e-6)


def test_final_gate_init_and_recombination_by_hand():
    s = _build("final", {"hidden_units": [4]}, f=2, d=2)
    assert torch.equal(s.gate.weight, torch.zeros(2, 2)) and torch.equal(s.gate.bias, torch.ones(2))
    h = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert s.gated_input(h).tolist() == [[1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]]  # [E ; E ⊙ 1]
    with torch.no_grad():  # G[f, d] = sum_g W[f, g] e[g, d] + c[f] with W = [[0, 1], [2, 0]], c = [0, -1]
        s.gate.weight.copy_(torch.tensor([[0.0, 1.0], [2.0, 0.0]]))
        s.gate.bias.copy_(torch.tensor([0.0, -1.0]))
    # G = [[3, 4], [2*1 - 1, 2*2 - 1]] = [[3, 4], [1, 3]]; E ⊙ G = [[3, 8], [3, 12]]
    assert s.gated_input(h).tolist() == [[1.0, 2.0, 3.0, 4.0, 3.0, 8.0, 3.0, 12.0]]
    # [u1, u2 ⊙ u1] with u1 = (1, 2), u2 = (3, 4)
    assert factorised(torch.tensor([[1.0, 2.0, 3.0, 4.0]])).tolist() == [[1.0, 2.0, 3.0, 8.0]]


def test_final_layer_is_an_mlp_layer_that_recombines_before_batch_norm():
    layer, plain = FinalLayer(2, 4, 0.0, False), MLPLayer(2, 4, 0.0, False)
    assert isinstance(layer, MLPLayer)
    assert list(FinalLayer(2, 4, 0.5, True).state_dict()) == list(MLPLayer(2, 4, 0.5, True).state_dict()) == [
        "linear.weight", "linear.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
        "bn.num_batches_tracked"]
    with torch.no_grad():
        for m in (layer, plain):
            m.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]]))
            m.linear.bias.zero_()
    x = torch.tensor([[2.0, 3.0]])  # u = (2, 3, 5, 1): u1 = (2, 3), u2 = (5, 1)
    assert plain(x)[0].tolist() == [[2.0, 3.0, 5.0, 1.0]]
    assert layer(x)[0].tolist() == [[2.0, 3.0, 10.0, 3.0]]  # [u1, u2 ⊙ u1]


def test_final_forward_matches_numpy():
    s = _build("final", {"hidden_units": [6, 4]}, f=3, d=2).eval()
    with torch.no_grad():
        s.gate.weight.normal_(generator=torch.Generator().manual_seed(5))  # a non-trivial gate
    sd = _np_state(s)
    h = _h(4, 3, 2)
    e = h.double().numpy().reshape(4, 3, 2)
    g = np.einsum("fg,bgd->bfd", sd["gate.weight"], e) + sd["gate.bias"][None, :, None]
    x = np.concatenate([e, e * g], axis=1).reshape(4, -1)
    for j in range(2):
        u = x @ sd[f"final.{j}.linear.weight"].T + sd[f"final.{j}.linear.bias"]
        half = u.shape[1] // 2
        u = np.concatenate([u[:, :half], u[:, half:] * u[:, :half]], axis=1)
        x = np.maximum(_np_bn_eval(u, sd, f"final.{j}.bn."), 0.0)
    z = x @ sd["head.weight"].T[:, 0] + sd["head.bias"][0]
    np.testing.assert_allclose(s(h)[0].detach().double().numpy(), z, rtol=1e-5, atol=1e-6)


def test_ecn_halves_first_and_one_layer_by_hand():
    h = torch.tensor([[1.0, 2.0, 3.0, 4.0]])  # F = 2 fields (1, 2), (3, 4) -> first halves (1, 3), second (2, 4)
    assert halves_first(h, 2, 2).tolist() == [[1.0, 3.0, 2.0, 4.0]]
    assert halves_first(torch.arange(6.0)[None], 2, 3).tolist() == [[0.0, 1.0, 3.0, 4.0, 2.0, 5.0]]  # ceil(3/2) = 2
    layer = ECNLayer(2, batch_norm=False)
    with torch.no_grad():
        layer.linear.weight.copy_(torch.tensor([[0.5, -1.0]]))
        layer.bias.copy_(torch.tensor([0.1, 0.2]))
    # x = (1, 2): H = 0.5 - 2 = -1.5; LayerNorm of one value is 0 -> mask 0; H' = (-1.5, 0)
    # x' = x ⊙ (H' + b) + x = (1·(-1.4) + 1, 2·0.2 + 2) = (-0.4, 2.4)
    np.testing.assert_allclose(layer(torch.tensor([[1.0, 2.0]])).detach().numpy(), [[-0.4, 2.4]], rtol=1e-6)


@pytest.mark.parametrize("train", [False, True])
def test_ecn_forward_matches_numpy(train):
    s = _build("ecn", {"num_cross_layers": 2, "net_dropout": 0.0}, f=3, d=2)
    s.train(train)
    sd = _np_state(s)
    h = _h(5, 3, 2)
    e = h.double().numpy().reshape(5, 3, 2)
    x = np.concatenate([e[:, :, :1].reshape(5, -1), e[:, :, 1:].reshape(5, -1)], axis=1)  # (5, 6)
    for i in range(2):
        u = x @ sd[f"cross.{i}.linear.weight"].T  # (5, 3)
        g, b = sd[f"cross.{i}.bn.weight"][0], sd[f"cross.{i}.bn.bias"][0]
        if train:  # BatchNorm1d(1): one mean and one biased variance over all 5 * 3 values
            u = (u - u.mean()) / np.sqrt(u.var() + EPS) * g + b
        else:
            u = (u - sd[f"cross.{i}.bn.running_mean"][0]) / np.sqrt(sd[f"cross.{i}.bn.running_var"][0] + EPS) * g + b
        ln = (u - u.mean(1, keepdims=True)) / np.sqrt(u.var(1, keepdims=True) + EPS)
        mask = np.maximum(ln * sd[f"cross.{i}.ln.weight"] + sd[f"cross.{i}.ln.bias"], 0.0)
        x = x * (np.concatenate([u, u * mask], axis=1) + sd[f"cross.{i}.bias"]) + x
    z = x @ sd["head.weight"].T[:, 0] + sd["head.bias"][0]
    np.testing.assert_allclose(s(h)[0].detach().double().numpy(), z, rtol=1e-4, atol=1e-5)


def test_ecn_init():
    s = _build("ecn", f=39, d=16).requires_grad_(False)
    for layer in s.cross:
        assert 0.0 <= float(layer.bias.min()) and float(layer.bias.max()) < 1.0 and float(layer.bias.std()) > 0.2
        assert torch.equal(layer.ln.weight, torch.ones(312)) and layer.bn.weight.shape == (1,)
    assert float(s.head.bias.abs().sum()) == 0.0


# ---- bad arguments --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "args", "key"), [
    ("pnn", {"hidden_unit": [8]}, "hidden_unit"),
    ("pnn", {"hidden_units": [8, -1]}, "hidden_units"),
    ("pnn", {"net_dropout": 1.0}, "net_dropout"),
    ("final", {"num_cross_layers": 2}, "num_cross_layers"),
    ("final", {"hidden_units": [0]}, "hidden_units"),
    ("final", {"hidden_units": [8, 5]}, "hidden_units"),
    ("final", {"net_dropout": 1.0}, "net_dropout"),
    ("ecn", {"hidden_units": [8]}, "hidden_units"),
    ("ecn", {"num_cross_layers": -1}, "num_cross_layers"),
    ("ecn", {"net_dropout": 1.0}, "net_dropout"),
    ("ecn", {"batch_norm": "yes"}, "batch_norm"),
])
def test_bad_arguments_name_the_key(name, args, key):
    with pytest.raises(UserError, match=key) as err:
        _build(name, args)
    assert "\n" not in str(err.value)


def test_ecn_needs_even_width():
    with pytest.raises(UserError, match="num_fields \\* embedding_dim"):
        _build("ecn", f=3, d=3)
    assert _build("ecn", f=2, d=3)(_h(2, 2, 3))[0].shape == (2,)  # odd D, even F*D is fine


# every EKTF_L log of the authors' repository: (F, D, hidden_units, num_cross_layers, logged total, embedding), the
# embedding being sum(vocab_size) * D over the log's feature specs; the three students make up the rest exactly
LOGS = {
    "KDD12_002": (13, 16, [400] * 3, 3, 75_684_879, 74_689_536),
    "KKBox_001": (13, 128, [1000] * 3, 3, 24_999_951, 11_744_768),
    "ML_1M_003": (7, 16, [400] * 3, 2, 959_983, 156_016),
    "iPinYou_023": (16, 16, [400] * 3, 3, 11_755_817, 10_652_240),
}


@pytest.mark.parametrize("log", sorted(LOGS))
def test_other_kdef_latest_logs(log):
    f, d, units, layers, total, embedding = LOGS[log]
    inp = StudentInput(f, d)
    counts = [_count(build_student("pnn", inp, {"hidden_units": units})),
              _count(build_student("final", inp, {"hidden_units": units})),
              _count(build_student("ecn", inp, {"num_cross_layers": layers}))]
    assert counts == [_pnn_count(f, d, units, True), _final_count(f, d, units, True), _ecn_count(f, d, layers, True)]
    assert sum(counts) == total - embedding
