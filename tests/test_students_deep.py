"""The deep-and-shallow students: wide_deep, deepfm, autoint (AutoInt+) and afn (AFN+) (docs/method.md §7).

Each student is built alone through ``build_student`` (not through the ensemble). Values are checked against
references written out in numpy in this file and parameter counts against closed forms derived by hand.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List

import numpy as np
import pytest
import torch

from collapse_lab.errors import UserError
from collapse_lab.models.students import MATRIX_KINDS, StudentInput, build_student
from collapse_lab.models.students.deepfm import fm_product_sum

F, D, B = 3, 4, 5
INP = StudentInput(num_fields=F, embedding_dim=D)
NAMES = ["wide_deep", "deepfm", "autoint", "afn"]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mlp_count(in_dim: int, units: List[int], bn: bool) -> int:
    """Hidden layers (``i*o + o``, ``+ 2*o`` with BatchNorm) and the ``(H_last + 1)`` head."""
    dims = [in_dim, *units]
    hidden = sum(dims[j] * dims[j + 1] + dims[j + 1] + (2 * dims[j + 1] if bn else 0) for j in range(len(units)))
    return hidden + dims[-1] + 1


def wide_deep_count(f: int, d: int, units: List[int], bn: bool) -> int:
    return (f * d + 1) + mlp_count(f * d, units, bn)


def autoint_count(f: int, d: int, units: List[int], bn: bool, layers: int, a: int, residual: bool = True,
                  layer_norm: bool = False) -> int:
    att = 0
    for i in range(layers):
        d_in = d if i == 0 else a
        att += 3 * d_in * a + (d_in * a if residual and d_in != a else 0) + (2 * a if layer_norm else 0)
    return att + (f * a + 1) + mlp_count(f * d, units, bn)


def afn_count(f: int, d: int, units: List[int], bn: bool, n_log: int, afn_units: List[int]) -> int:
    return n_log * f + 2 * f + 2 * n_log + mlp_count(n_log * d, afn_units, bn) + mlp_count(f * d, units, bn) + 3


# (name, args, expected output_dim, expected parameter count)
CASES = [
    ("wide_deep", {"hidden_units": [8, 6]}, 6, wide_deep_count(F, D, [8, 6], True)),
    ("wide_deep", {"hidden_units": [], "batch_norm": False}, F * D, wide_deep_count(F, D, [], False)),
    ("deepfm", {"hidden_units": [8, 6]}, 6, wide_deep_count(F, D, [8, 6], True)),
    ("deepfm", {"hidden_units": [7], "batch_norm": False, "net_dropout": 0.3}, 7, wide_deep_count(F, D, [7], False)),
    ("autoint", {"hidden_units": [8], "attention_dim": 4}, F * 4 + 8, autoint_count(F, D, [8], True, 2, 4)),
    ("autoint", {"hidden_units": [8], "attention_dim": 6, "num_heads": 3, "attention_layers": 3, "layer_norm": True},
     F * 6 + 8, autoint_count(F, D, [8], True, 3, 6, layer_norm=True)),
    ("autoint", {"hidden_units": [8], "attention_dim": 6, "use_residual": False, "batch_norm": False},
     F * 6 + 8, autoint_count(F, D, [8], False, 2, 6, residual=False)),
    ("afn", {"hidden_units": [8], "afn_hidden_units": [6, 5], "logarithmic_neurons": 7}, 5 + 8,
     afn_count(F, D, [8], True, 7, [6, 5])),
    ("afn", {"hidden_units": [], "afn_hidden_units": [], "logarithmic_neurons": 2, "batch_norm": False}, 2 * D + F * D,
     afn_count(F, D, [], False, 2, [])),
]
# the first case of each student
SMALL: Dict[str, Dict[str, Any]] = {name: next(args for n, args, _, _ in CASES if n == name) for name in NAMES}
DROPOUT = {"wide_deep": {"net_dropout": 0.5}, "deepfm": {"net_dropout": 0.5}, "autoint": {"net_dropout": 0.5},
           "afn": {"afn_dropout": 0.5}}


def build(name: str, args: Dict[str, Any] | None = None, seed: int = 0, inp: StudentInput = INP):
    return build_student(name, inp, args if args is not None else SMALL[name], gen(seed))


def h_input(seed: int = 1, b: int = B, f: int = F, d: int = D) -> torch.Tensor:
    return torch.randn(b, f * d, generator=gen(seed))


@pytest.mark.parametrize("name,args,out_dim,count", CASES)
def test_shapes_finite_and_parameter_count(name, args, out_dim, count):
    s = build(name, args)
    assert s.output_dim == out_dim
    assert sum(p.numel() for p in s.parameters()) == count
    s.train()
    logit, last = s(h_input())
    assert logit.shape == (B,) and last.shape == (B, out_dim)
    assert torch.isfinite(logit).all() and torch.isfinite(last).all()


def test_criteo_parameter_counts():
    """F = 39, D = 16, the defaults: the numbers in each module's docstring (the MLP part is 573,601 as in §8.2)."""
    inp = StudentInput(39, 16)
    assert mlp_count(624, [400, 400, 400], True) == 573_601
    expected = {"wide_deep": 574_226, "deepfm": 574_226, "autoint": 575_762, "afn": 8_626_883}
    assert expected["wide_deep"] == wide_deep_count(39, 16, [400] * 3, True)
    assert expected["autoint"] == autoint_count(39, 16, [400] * 3, True, 2, 16)
    assert expected["afn"] == afn_count(39, 16, [400] * 3, True, 1200, [400] * 3)
    for name, n in expected.items():
        s = build_student(name, inp, None, gen(0))
        assert sum(p.numel() for p in s.parameters()) == n, name


@pytest.mark.parametrize("name", NAMES)
def test_gradient_reaches_h(name):
    s = build(name)
    h = h_input().requires_grad_(True)
    logit, _ = s(h)
    logit.sum().backward()
    assert h.grad is not None and h.grad.abs().sum() > 0
    assert all(p.grad is not None for n, p in s.named_parameters()), name


@pytest.mark.parametrize("name", NAMES)
def test_eval_deterministic_train_dropout_differs(name):
    s = build(name, {**SMALL[name], **DROPOUT[name]})
    h = h_input()
    s.eval()
    a, la = s(h)
    b, lb = s(h)
    assert torch.equal(a, b) and torch.equal(la, lb)
    s.train()
    torch.manual_seed(0)
    c, _ = s(h)
    d, _ = s(h)
    assert not torch.allclose(c, d)


@pytest.mark.parametrize("name", NAMES)
def test_generator_seeds(name):
    s1, s2, s3 = build(name, seed=3), build(name, seed=3), build(name, seed=4)
    sd1, sd2, sd3 = s1.state_dict(), s2.state_dict(), s3.state_dict()
    assert sd1.keys() == sd2.keys() == sd3.keys()
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    weights = [k for k, v in sd1.items() if k.endswith("weight") and v.dim() == 2]
    assert weights and all(not torch.equal(sd1[k], sd3[k]) for k in weights)


EXPECTED_MATRICES = {
    "wide_deep": [("dnn.layers.0.linear.weight", "linear", "dnn.0"), ("dnn.layers.1.linear.weight", "linear", "dnn.1")],
    "deepfm": [("dnn.layers.0.linear.weight", "linear", "dnn.0"), ("dnn.layers.1.linear.weight", "linear", "dnn.1")],
    "autoint": [(f"attention.{i}.{p}.weight", "attention", f"attention.{i}.{p}")
                for i in range(2) for p in ("query", "key", "value")]
               + [("dnn.layers.0.linear.weight", "linear", "dnn.0")],
    "afn": [("coefficient.weight", "cross", "afn.log"), ("afn_dnn.layers.0.linear.weight", "linear", "afn_dnn.0"),
            ("afn_dnn.layers.1.linear.weight", "linear", "afn_dnn.1"),
            ("dnn.layers.0.linear.weight", "linear", "dnn.0")],
}


@pytest.mark.parametrize("name", NAMES)
def test_matrices(name):
    s = build(name)
    sd = s.state_dict()
    mats = s.matrices()
    assert [(m.name, m.kind, m.layer) for m in mats] == EXPECTED_MATRICES[name]
    for m in mats:
        assert m.name in sd and m.kind in MATRIX_KINDS and sd[m.name].dim() == 2


def test_autoint_lists_residual_projection():
    s = build("autoint", {"hidden_units": [8], "attention_dim": 6, "num_heads": 3})
    names = [m.layer for m in s.matrices() if m.kind == "attention"]
    assert names[:4] == ["attention.0.query", "attention.0.key", "attention.0.value", "attention.0.residual"]
    assert "attention.1.residual" not in names  # layer 1 maps A -> A
    assert s.state_dict()["attention.0.residual.weight"].shape == (6, D)


EXPECTED_HIDDEN = {
    "wide_deep": {"dnn.0": 8, "dnn.1": 6},
    "deepfm": {"dnn.0": 8, "dnn.1": 6},
    "autoint": {"attention.0": F * 4, "attention.1": F * 4, "dnn.0": 8},
    "afn": {"afn_dnn.0": 6, "afn_dnn.1": 5, "dnn.0": 8},
}


@pytest.mark.parametrize("name", NAMES)
def test_hidden_probes(name):
    s = build(name).eval()
    hidden: Dict[str, torch.Tensor] = {}
    s(h_input(), hidden)
    assert {k: v.shape for k, v in hidden.items()} == {k: (B, w) for k, w in EXPECTED_HIDDEN[name].items()}
    assert all((v >= 0).all() for v in hidden.values())  # post-ReLU


# ---------------------------------------------------------------------------------------------- numpy references


def np_mlp(s_dnn, x: np.ndarray) -> np.ndarray:
    """An MLPBlock without BatchNorm, eval mode."""
    for layer in s_dnn.layers:
        x = np.maximum(x @ layer.linear.weight.detach().numpy().T + layer.linear.bias.detach().numpy(), 0.0)
    return x


def np_linear(lin, x: np.ndarray) -> np.ndarray:
    out = x @ lin.weight.detach().numpy().T
    return out + lin.bias.detach().numpy() if lin.bias is not None else out


def test_wide_deep_forward_reference():
    s = build("wide_deep", {"hidden_units": [5, 3], "batch_norm": False}).eval()
    h = h_input()
    x = h.numpy().astype(np.float64)
    deep = np_mlp(s.dnn, x)
    ref = np_linear(s.lr, x)[:, 0] + np_linear(s.head, deep)[:, 0]
    logit, last = s(h)
    np.testing.assert_allclose(logit.detach().numpy(), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(last.detach().numpy(), deep, rtol=1e-5, atol=1e-6)


def test_fm_term_by_hand():
    # e1 = (1, 2), e2 = (3, -1), e3 = (0.5, 4): <e1,e2> = 1, <e1,e3> = 8.5, <e2,e3> = -2.5 -> 7
    e = torch.tensor([[[1.0, 2.0], [3.0, -1.0], [0.5, 4.0]]])
    assert fm_product_sum(e).item() == pytest.approx(7.0)
    e = torch.randn(4, 5, 3, generator=gen(2), dtype=torch.float64)
    en = e.numpy()
    ref = np.array([sum(en[b, i] @ en[b, j] for i in range(5) for j in range(i + 1, 5)) for b in range(4)])
    np.testing.assert_allclose(fm_product_sum(e).numpy(), ref, rtol=1e-12)


def test_deepfm_forward_reference():
    s = build("deepfm", {"hidden_units": [5], "batch_norm": False}).eval()
    h = h_input()
    x = h.numpy().astype(np.float64)
    e = x.reshape(B, F, D)
    fm = np.array([sum(e[b, i] @ e[b, j] for i in range(F) for j in range(i + 1, F)) for b in range(B)])
    ref = np_linear(s.lr, x)[:, 0] + fm + np_linear(s.head, np_mlp(s.dnn, x))[:, 0]
    np.testing.assert_allclose(s(h)[0].detach().numpy(), ref, rtol=1e-5, atol=1e-5)


def np_self_attention(layer, x: np.ndarray, heads: int, scale: bool, residual: bool) -> np.ndarray:
    """Multi-head self-attention over fields, one sample and one head at a time: ``(B, F, D_in)`` -> ``(B, F, A)``."""
    wq, wk, wv = (getattr(layer, p).weight.detach().numpy().astype(np.float64) for p in ("query", "key", "value"))
    a = wq.shape[0]
    dh = a // heads
    out = np.zeros((x.shape[0], x.shape[1], a))
    for b in range(x.shape[0]):
        q, k, v = x[b] @ wq.T, x[b] @ wk.T, x[b] @ wv.T  # (F, A)
        for n in range(heads):
            cols = slice(n * dh, (n + 1) * dh)
            scores = q[:, cols] @ k[:, cols].T / (math.sqrt(dh) if scale else 1.0)  # (F, F)
            p = np.exp(scores - scores.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            out[b, :, cols] = p @ v[:, cols]
        if residual:
            out[b] += x[b] @ layer.residual.weight.detach().numpy().T if layer.residual is not None else x[b]
    return np.maximum(out, 0.0)


@pytest.mark.parametrize("args", [
    {"attention_dim": 4, "num_heads": 2, "use_scale": True},  # A = D: identity residual
    {"attention_dim": 6, "num_heads": 3, "use_scale": False},  # A != D: W_res on layer 0
    {"attention_dim": 4, "num_heads": 1, "use_residual": False},
])
def test_autoint_attention_reference(args):
    s = build("autoint", {"hidden_units": [5], "batch_norm": False, **args}).eval()
    h = h_input()
    hidden: Dict[str, torch.Tensor] = {}
    logit, last = s(h, hidden)
    x = h.numpy().astype(np.float64).reshape(B, F, D)
    heads, scale, residual = args["num_heads"], args.get("use_scale", True), args.get("use_residual", True)
    for i, layer in enumerate(s.attention):
        x = np_self_attention(layer, x, heads, scale, residual)
        np.testing.assert_allclose(hidden[f"attention.{i}"].detach().numpy(), x.reshape(B, -1), rtol=1e-5, atol=1e-6)
    deep = np_mlp(s.dnn, h.numpy().astype(np.float64))
    ref = np_linear(s.attention_head, x.reshape(B, -1))[:, 0] + np_linear(s.head, deep)[:, 0]
    np.testing.assert_allclose(logit.detach().numpy(), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(last.detach().numpy(), np.concatenate([x.reshape(B, -1), deep], 1), rtol=1e-5,
                               atol=1e-6)


def identity_bn(bn) -> None:
    """Eval-mode BatchNorm that is exactly the identity: running mean 0, running variance 1 - eps."""
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0 - bn.eps)


def test_afn_logarithmic_neurons_by_hand():
    """With identity BatchNorms, neuron l of dimension d is Π_f |e_{f,d}|^{W_{l,f}}."""
    inp = StudentInput(num_fields=3, embedding_dim=2)
    s = build("afn", {"hidden_units": [], "afn_hidden_units": [], "logarithmic_neurons": 2}, inp=inp).double().eval()
    identity_bn(s.log_bn)
    identity_bn(s.exp_bn)
    with torch.no_grad():
        s.coefficient.weight.copy_(torch.tensor([[1.0, 1.0, 0.0], [0.5, 0.0, -1.0]]))
    # fields e1 = (2, -4), e2 = (3, 0.5), e3 = (-8, 0)
    h = torch.tensor([[2.0, -4.0, 3.0, 0.5, -8.0, 0.0]], dtype=torch.float64)
    u = s.logarithmic(h)[0].detach().numpy()  # neuron-major: (y_1d1, y_1d2, y_2d1, y_2d2)
    expected = [2 * 3, 4 * 0.5, math.sqrt(2) / 8, math.sqrt(4) / 1e-5]  # |0| -> the 1e-5 floor
    np.testing.assert_allclose(u, expected, rtol=1e-9)


def test_afn_forward_reference_train_mode():
    """The whole AFN+ forward in training mode (batch statistics: BatchNorm1d(F) pools batch and D per field)."""
    s = build("afn", {"hidden_units": [5], "afn_hidden_units": [4], "logarithmic_neurons": 3, "batch_norm": False})
    s = s.double().train()
    h = h_input().double()
    logit, last = s(h)

    def bn_train(x: np.ndarray, bn) -> np.ndarray:  # (B, C, L): statistics per channel over (B, L), biased var
        mean = x.mean(axis=(0, 2), keepdims=True)
        var = x.var(axis=(0, 2), keepdims=True)
        w = bn.weight.detach().numpy()[None, :, None]
        return (x - mean) / np.sqrt(var + bn.eps) * w + bn.bias.detach().numpy()[None, :, None]

    e = h.numpy().reshape(B, F, D)
    g = bn_train(np.log(np.maximum(np.abs(e), 1e-5)), s.log_bn)
    w = s.coefficient.weight.detach().numpy()  # (L, F)
    y = np.exp(np.einsum("lf,bfd->bld", w, g))
    u = bn_train(y, s.exp_bn).reshape(B, -1)
    a_afn, a_dnn = np_mlp(s.afn_dnn, u), np_mlp(s.dnn, h.numpy())
    z = np.stack([np_linear(s.afn_head, a_afn)[:, 0], np_linear(s.head, a_dnn)[:, 0]], 1)
    np.testing.assert_allclose(logit.detach().numpy(), np_linear(s.fc, z)[:, 0], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(last.detach().numpy(), np.concatenate([a_afn, a_dnn], 1), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("name,args,key", [
    *[(n, {"hidden_unit": [8]}, "hidden_unit") for n in NAMES],
    *[(n, {"hidden_units": [8, -1]}, "hidden_units") for n in NAMES],
    *[(n, {"net_dropout": 1.0}, "net_dropout") for n in NAMES],
    *[(n, {"hidden_units": "400"}, "hidden_units") for n in NAMES],
    ("autoint", {"attention_dim": 5, "num_heads": 2}, "attention_dim"),
    ("autoint", {"num_heads": 0}, "num_heads"),
    ("autoint", {"attention_layers": -1}, "attention_layers"),
    ("autoint", {"use_scale": "yes"}, "use_scale"),
    ("afn", {"logarithmic_neurons": 0}, "logarithmic_neurons"),
    ("afn", {"afn_hidden_units": [0]}, "afn_hidden_units"),
    ("afn", {"afn_dropout": 1.0}, "afn_dropout"),
])
def test_bad_arguments(name, args, key):
    with pytest.raises(UserError, match=key) as info:
        build(name, args)
    assert "\n" not in str(info.value)


def test_dataclass_arguments_are_validated_too():
    from collapse_lab.models.students.afn import AFNArgs

    with pytest.raises(UserError, match="afn_dropout"):
        build_student("afn", INP, AFNArgs(afn_dropout=1.5), gen(0))
