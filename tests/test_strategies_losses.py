"""The four methods against numpy arithmetic: values, lambda and mu, stop-gradients and the EM gradient.

``reference(method, z, z0, ...)`` writes each loss out in numpy. Everything the method detaches (the teacher
sigma(mean z), the peers sigma(z_l), and the exam scores when ``detach_exam``) is computed from the frozen
logits ``z0``; the live terms from ``z``. Its finite-difference gradient in ``z`` at ``z = z0`` is therefore
exactly the gradient the stop-gradients allow, which autograd must reproduce.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from collapse_lab.errors import UserError
from collapse_lab.strategies import STRATEGIES, build_strategy

CONS = ("mse", "mae", "huber", "kl", "bce")


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def bce_logit(z: np.ndarray, y: np.ndarray) -> float:
    # -[y log sigma(z) + (1 - y) log(1 - sigma(z))], with log sigma(z) = -log(1 + e^-z)
    return float(np.mean(y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z)))


def cons(name: str, p: np.ndarray, t: np.ndarray) -> float:
    d, pc = p - t, np.clip(p, 1e-7, 1 - 1e-7)
    value = {"mse": d ** 2, "mae": np.abs(d), "huber": 0.5 * d ** 2,
             "kl": t * np.log(t / pc) + (1 - t) * np.log((1 - t) / (1 - pc)),
             "bce": -(t * np.log(p) + (1 - t) * np.log(1 - p))}[name]
    return float(np.mean(value))


def em(p: np.ndarray, y: np.ndarray):
    s = 1 - np.abs(y[:, None] - p).mean(axis=0)
    lam = np.exp(-s) / np.exp(-s).sum()
    n = len(s)
    mu = np.zeros((n, n))
    for k in range(n):
        for j in range(n):
            if j != k:
                mu[k, j] = np.exp(s[j] - s[k]) / sum(np.exp(s[m] - s[k]) for m in range(n) if m != k)
    return lam, mu


def reference(method, z, z0, y, name="mse", exam=None, detach_exam=False, kd_weight=1.0, mutual_weight=None):
    """(loss, task, kd, mutual, lambda, mu) in numpy; detached quantities come from z0."""
    n = z.shape[1]
    p, peers, teacher = sigmoid(z), sigmoid(z0), sigmoid(z0.mean(axis=1))
    exam = (method == "kdef") if exam is None else exam
    if exam:
        lam, mu = em(peers if detach_exam else p, y)
    else:
        lam = np.full(n, kd_weight)
        mu_value = mutual_weight if mutual_weight is not None else (1.0 / n if method == "dml" else 1.0)
        mu = mu_value * (1 - np.eye(n))
    per_student = [bce_logit(z[:, k], y) for k in range(n)]
    kd = sum(lam[k] * cons(name, p[:, k], teacher) for k in range(n))
    pairs = sum(mu[k, j] * cons(name, p[:, k], peers[:, j]) for k in range(n) for j in range(n) if j != k)
    if method == "vanilla":
        task = bce_logit(z.mean(axis=1), y)
        return task, task, 0.0, 0.0, None, None
    if method == "kd":
        task = bce_logit(z.mean(axis=1), y)
        return task + kd, task, kd, 0.0, lam, None
    if method == "dml":
        task = sum(per_student)
        return task + pairs, task, 0.0, pairs, None, mu
    task = np.mean(per_student)
    return task + kd + pairs / n, task, kd, pairs / n, lam, mu


def torch_parts(method, z0, y, **kw):
    z = torch.tensor(z0, requires_grad=True)
    task = build_strategy(method, num_students=z0.shape[1], **kw)
    parts = task({"logits": z, "fused_logit": z.mean(dim=1)}, torch.tensor(y))
    grad = torch.autograd.grad(parts["loss"], z)[0].numpy()
    return parts, grad


def data(n: int, b: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1.5, size=(b, n)), rng.integers(0, 2, size=b).astype(np.float64)


def finite_difference(method, z0, y, h=1e-6, **kw):
    g = np.zeros_like(z0)
    for idx in np.ndindex(*z0.shape):
        e = np.zeros_like(z0)
        e[idx] = h
        g[idx] = (reference(method, z0 + e, z0, y, **kw)[0] - reference(method, z0 - e, z0, y, **kw)[0]) / (2 * h)
    return g


@pytest.mark.parametrize("method", ["vanilla", "kd", "dml", "kdef"])
@pytest.mark.parametrize("name", CONS)
def test_values_and_stop_gradients_match_numpy(method: str, name: str) -> None:
    z0, y = data(3, seed=len(name))
    parts, grad = torch_parts(method, z0, y, cons=name)
    loss, task, kd, mutual, lam, mu = reference(method, z0, z0, y, name=name)
    for key, value in (("loss", loss), ("task_loss", task), ("kd_loss", kd), ("mutual_loss", mutual)):
        assert parts[key].item() == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert not parts["task_loss"].requires_grad and not parts["kd_loss"].requires_grad
    for key, value in (("lambda", lam), ("mu", mu)):
        if value is None:
            assert parts[key] is None
        else:
            np.testing.assert_allclose(parts[key].numpy(), value, rtol=1e-10, atol=1e-15)
            assert not parts[key].requires_grad
    np.testing.assert_allclose(grad, finite_difference(method, z0, y, name=name), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("method,extra", [("kdef", {}), ("kdef", {"exam": False}), ("kd", {"exam": True}),
                                          ("dml", {"exam": True}), ("dml", {"mutual_weight": 0.3}),
                                          ("kd", {"kd_weight": 0.5})])
@pytest.mark.parametrize("detach_exam", [False, True])
def test_weights_options_and_the_em_gradient(method: str, extra: dict, detach_exam: bool) -> None:
    z0, y = data(4, b=5, seed=3)
    parts, grad = torch_parts(method, z0, y, detach_exam=detach_exam, **extra)
    loss, *_ , lam, mu = reference(method, z0, z0, y, detach_exam=detach_exam, **extra)
    assert parts["loss"].item() == pytest.approx(loss, rel=1e-10)
    if lam is not None:
        np.testing.assert_allclose(parts["lambda"].numpy(), lam, rtol=1e-10)
    if mu is not None:
        np.testing.assert_allclose(parts["mu"].numpy(), mu, rtol=1e-10)
    np.testing.assert_allclose(grad, finite_difference(method, z0, y, detach_exam=detach_exam, **extra),
                               rtol=1e-5, atol=1e-8)


def test_em_gradient_flows_only_when_not_detached() -> None:
    z0, y = data(3, seed=5)
    _, live = torch_parts("kdef", z0, y)
    _, frozen = torch_parts("kdef", z0, y, detach_exam=True)
    assert np.abs(live - frozen).max() > 1e-6  # the EM weights carry gradient in the authors' version
    # the difference is exactly the gradient through lambda and mu, with the consistency values held fixed
    p, t = sigmoid(z0), sigmoid(z0.mean(1))
    kd_vals = np.array([cons("mse", p[:, k], t) for k in range(3)])
    c = np.array([[cons("mse", p[:, k], p[:, j]) for j in range(3)] for k in range(3)])

    def weights_only(z):
        lam, mu = em(sigmoid(z), y)
        return float(lam @ kd_vals + (mu * c).sum() / 3)

    h, g = 1e-6, np.zeros_like(z0)
    for idx in np.ndindex(*z0.shape):
        e = np.zeros_like(z0)
        e[idx] = h
        g[idx] = (weights_only(z0 + e) - weights_only(z0 - e)) / (2 * h)
    np.testing.assert_allclose(live - frozen, g, rtol=1e-5, atol=1e-9)


def test_kdef_by_hand() -> None:
    # z = [[0, ln 3], [ln 3, 0]] -> p_0 = [0.5, 0.75], p_1 = [0.75, 0.5]; y = [1, 0]
    z = torch.tensor([[0.0, np.log(3)], [np.log(3), 0.0]], dtype=torch.float64)
    y = torch.tensor([1.0, 0.0], dtype=torch.float64)
    parts = build_strategy("kdef", num_students=2)({"logits": z, "fused_logit": z.mean(1)}, y)
    # S_0 = 1 - (0.5 + 0.75)/2 = 0.375, S_1 = 1 - (0.25 + 0.5)/2 = 0.625; lambda = softmin(S); mu = [[0,1],[1,0]]
    lam0 = np.exp(-0.375) / (np.exp(-0.375) + np.exp(-0.625))
    np.testing.assert_allclose(parts["lambda"].numpy(), [lam0, 1 - lam0], rtol=1e-12)
    assert parts["mu"].tolist() == [[0.0, 1.0], [1.0, 0.0]]
    # task = mean_k BCE_k = ((-ln 0.5 - ln 0.25)/2 + (-ln 0.75 - ln 0.5)/2) / 2
    task = ((-np.log(0.5) - np.log(0.25)) / 2 + (-np.log(0.75) - np.log(0.5)) / 2) / 2
    # teacher T = sigma(ln(3)/2) = sqrt(3)/(1 + sqrt(3)); both students: ((0.5 - T)^2 + (0.75 - T)^2)/2
    t = np.sqrt(3) / (1 + np.sqrt(3))
    kd = (lam0 + (1 - lam0)) * ((0.5 - t) ** 2 + (0.75 - t) ** 2) / 2
    mutual = (1.0 * ((0.5 - 0.75) ** 2 + (0.75 - 0.5) ** 2) / 2) * 2 / 2  # (mu_01 C_01 + mu_10 C_10) / K
    assert parts["task_loss"].item() == pytest.approx(task, rel=1e-12)
    assert parts["kd_loss"].item() == pytest.approx(kd, rel=1e-12)
    assert parts["mutual_loss"].item() == pytest.approx(0.0625, rel=1e-12) == mutual
    assert parts["loss"].item() == pytest.approx(task + kd + mutual, rel=1e-12)
    assert parts["loss"].item() == pytest.approx(0.765068 + 0.015706 + 0.0625, abs=2e-6)  # the rounded terms


def test_no_gradient_reaches_the_teacher_or_the_peers() -> None:
    z0, y = data(3, seed=7)
    z = torch.tensor(z0, requires_grad=True)
    fused = torch.tensor(z0.mean(1), requires_grad=True)  # a separate leaf that only feeds the teacher
    out = {"logits": z, "fused_logit": fused}
    kdef = build_strategy("kdef", num_students=3, detach_exam=True)(out, torch.tensor(y))["loss"]
    assert torch.autograd.grad(kdef, fused, allow_unused=True)[0] is None  # no ensemble BCE, teacher detached
    kd = build_strategy("kd", num_students=3)(out, torch.tensor(y))["loss"]
    g = torch.autograd.grad(kd, fused)[0].numpy()
    np.testing.assert_allclose(g, (sigmoid(z0.mean(1)) - y) / len(y), rtol=1e-10)  # only the ensemble BCE
    # DML, 2 students, mse, mu = 1/2: d/dz_0 = [dBCE_0 + 1/2 * 2 (p_0 - p_1)/B] p_0(1 - p_0)-chain; peer frozen
    z2 = torch.tensor(z0[:, :2], requires_grad=True)
    dml = build_strategy("dml", num_students=2)({"logits": z2, "fused_logit": z2.mean(1)}, torch.tensor(y))["loss"]
    g2 = torch.autograd.grad(dml, z2)[0].numpy()
    p = sigmoid(z0[:, :2])
    b = len(y)
    expected0 = (p[:, 0] - y) / b + 0.5 * 2 * (p[:, 0] - p[:, 1]) / b * p[:, 0] * (1 - p[:, 0])
    np.testing.assert_allclose(g2[:, 0], expected0, rtol=1e-10)


@pytest.mark.parametrize("method", ["vanilla", "kd", "dml", "kdef"])
def test_a_single_student(method: str) -> None:
    z0, y = data(1, seed=2)
    parts, grad = torch_parts(method, z0, y)
    assert parts["loss"].item() == pytest.approx(bce_logit(z0[:, 0], y), rel=1e-12)
    assert parts["mutual_loss"].item() == 0.0 and parts["kd_loss"].item() == pytest.approx(0.0, abs=1e-15)
    if method in ("kd", "kdef"):
        assert parts["lambda"].tolist() == [1.0]
    if method in ("dml", "kdef"):
        assert parts["mu"].tolist() == [[0.0]]
    np.testing.assert_allclose(grad[:, 0], (sigmoid(z0[:, 0]) - y) / len(y), rtol=1e-10)


def test_other_fusions_feed_the_teacher_and_the_vanilla_loss() -> None:
    z0, y = data(2, seed=9)
    fused = z0.sum(1) + 0.3  # e.g. a sum or concat fusion
    out = {"logits": torch.tensor(z0), "fused_logit": torch.tensor(fused)}
    assert build_strategy("vanilla", 2)(out, torch.tensor(y))["loss"].item() == pytest.approx(bce_logit(fused, y))
    kd = build_strategy("kd", 2)(out, torch.tensor(y))
    t = sigmoid(fused)
    assert kd["kd_loss"].item() == pytest.approx(sum(cons("mse", sigmoid(z0[:, k]), t) for k in range(2)))


def test_bad_arguments() -> None:
    assert STRATEGIES.names() == ["dml", "kd", "kdef", "vanilla"]
    with pytest.raises(UserError, match="unknown method 'ktf'; valid: dml, kd, kdef, vanilla"):
        build_strategy("ktf", num_students=2)
    with pytest.raises(UserError, match="unknown consistency loss 'cos'"):
        build_strategy("kdef", num_students=2, cons="cos")
    with pytest.raises(UserError, match="integer >= 1"):
        build_strategy("kdef", num_students=0)
    with pytest.raises(UserError, match="kd_weight must be a finite number >= 0"):
        build_strategy("kd", num_students=2, kd_weight=-1.0)
    with pytest.raises(UserError, match="built for 3 students"):
        build_strategy("kd", num_students=3)({"logits": torch.zeros(4, 2), "fused_logit": torch.zeros(4)},
                                             torch.zeros(4))
