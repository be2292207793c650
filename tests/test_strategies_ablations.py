"""KDEF's ablations with KDEF's own normalisation: KD term only, DML term only, uniform weights; the config keys.

Values are written out by hand on two students and two rows (the numbers of ``test_kdef_by_hand`` in
test_strategies_losses.py), and each ablation is held equal to the full KDEF loss minus the term it drops,
in value and in gradient (the examination weights stay live, as in the authors' code).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from collapse_lab.config import resolve_config
from collapse_lab.errors import UserError
from collapse_lab.recipes import DEFAULT_WEIGHTS
from collapse_lab.strategies import STRATEGIES, build_strategy

# z = [[0, ln 3], [ln 3, 0]] -> p_0 = [0.5, 0.75], p_1 = [0.75, 0.5]; y = [1, 0]
Z = torch.tensor([[0.0, np.log(3)], [np.log(3), 0.0]], dtype=torch.float64)
Y = torch.tensor([1.0, 0.0], dtype=torch.float64)
TASK = ((-np.log(0.5) - np.log(0.25)) / 2 + (-np.log(0.75) - np.log(0.5)) / 2) / 2  # mean student BCE
T = np.sqrt(3) / (1 + np.sqrt(3))  # teacher sigma(mean z) = sigma(ln(3)/2) on both rows
KD_EACH = ((0.5 - T) ** 2 + (0.75 - T) ** 2) / 2  # cons(p_k, T), the same for both students
PAIR = ((0.5 - 0.75) ** 2 + (0.75 - 0.5) ** 2) / 2  # cons(p_0, p_1) = cons(p_1, p_0) = 0.0625
LAM0 = np.exp(-0.375) / (np.exp(-0.375) + np.exp(-0.625))  # softmin of the exam scores S = [0.375, 0.625]


def parts(z: torch.Tensor = Z, **kw):
    return build_strategy("kdef", num_students=z.shape[1], **kw)({"logits": z, "fused_logit": z.mean(1)}, Y)


def test_kd_term_only_by_hand():
    p = parts(kdef_terms=["kd"])
    kd = (LAM0 + (1 - LAM0)) * KD_EACH
    assert p["mutual_loss"].item() == 0.0 and p["mu"] is None
    assert p["kd_loss"].item() == pytest.approx(kd, rel=1e-12)
    assert p["loss"].item() == pytest.approx(TASK + kd, rel=1e-12)
    np.testing.assert_allclose(p["lambda"].numpy(), [LAM0, 1 - LAM0], rtol=1e-12)


def test_dml_term_only_by_hand():
    p = parts(kdef_terms=["dml"])
    mutual = (1.0 * PAIR + 1.0 * PAIR) / 2  # (mu_01 C_01 + mu_10 C_10) / K with mu = [[0, 1], [1, 0]]
    assert p["kd_loss"].item() == 0.0 and p["lambda"] is None
    assert p["mutual_loss"].item() == pytest.approx(mutual, rel=1e-12) == 0.0625
    assert p["loss"].item() == pytest.approx(TASK + mutual, rel=1e-12)
    assert p["mu"].tolist() == [[0.0, 1.0], [1.0, 0.0]]


def test_no_transfer_term_is_the_mean_student_bce():
    p = parts(kdef_terms=[])
    assert p["loss"].item() == pytest.approx(TASK, rel=1e-12)
    assert p["lambda"] is None and p["mu"] is None


def test_uniform_weights_by_hand_on_three_students():
    # three students: p_k = sigma(z_k); lambda_k = 1/3, mu_kl = 1/2 (k != l)
    z = torch.tensor([[0.0, np.log(3), -np.log(3)], [np.log(3), 0.0, 0.0]], dtype=torch.float64)
    p = parts(z, exam_weights="uniform")
    probs = torch.sigmoid(z).numpy()
    t = 1 / (1 + np.exp(-z.mean(1).numpy()))
    bce = np.mean([-(np.log(probs[0, k]) + np.log(1 - probs[1, k])) / 2 for k in range(3)])
    kd = sum(np.mean((probs[:, k] - t) ** 2) for k in range(3)) / 3
    mutual = sum(np.mean((probs[:, k] - probs[:, j]) ** 2) / 2 for k in range(3) for j in range(3) if j != k) / 3
    np.testing.assert_allclose(p["lambda"].numpy(), [1 / 3] * 3, rtol=1e-15)
    np.testing.assert_allclose(p["mu"].numpy(), 0.5 * (1 - np.eye(3)), rtol=1e-15)
    assert p["task_loss"].item() == pytest.approx(bce, rel=1e-12)
    assert p["kd_loss"].item() == pytest.approx(kd, rel=1e-12)
    assert p["mutual_loss"].item() == pytest.approx(mutual, rel=1e-12)
    assert p["loss"].item() == pytest.approx(bce + kd + mutual, rel=1e-12)
    # the EM weights have the same sums: softmin sums to 1 and every softmax row to 1
    em = parts(z)
    assert em["lambda"].sum().item() == pytest.approx(1.0) and p["lambda"].sum().item() == pytest.approx(1.0)
    np.testing.assert_allclose(em["mu"].sum(1).numpy(), p["mu"].sum(1).numpy(), rtol=1e-12)


def test_w_o_em_is_unchanged_constant_weights():
    # exam=false keeps the paper's Table V ablation: lambda = mu = 1 (sums N and N - 1)
    for kw in ({"exam": False}, {"exam_weights": "constant"}, {"exam": False, "exam_weights": "constant"}):
        p = parts(**kw)
        assert p["lambda"].tolist() == [1.0, 1.0] and p["mu"].tolist() == [[0.0, 1.0], [1.0, 0.0]]
        assert p["loss"].item() == pytest.approx(TASK + 2 * KD_EACH + PAIR, rel=1e-12)


@pytest.mark.parametrize("detach_exam", [False, True])
def test_each_ablation_is_the_full_loss_minus_the_dropped_term(detach_exam):
    rng = np.random.default_rng(4)
    z0 = rng.normal(0, 1.5, size=(7, 4))
    y = torch.tensor(rng.integers(0, 2, size=7), dtype=torch.float64)

    def run(drop=None, **kw):
        z = torch.tensor(z0, requires_grad=True)
        task = build_strategy("kdef", 4, detach_exam=detach_exam, **kw)
        out = task({"logits": z, "fused_logit": z.mean(1)}, y)
        if drop is None:
            loss = out["loss"]
        else:  # recompute the full loss without one term, keeping its autograd graph
            full = build_strategy("kdef", 4, detach_exam=detach_exam)
            probs = torch.sigmoid(z)
            lam, mu = full.weights(probs, y, default_mu=1.0)
            from collapse_lab.strategies.base import distillation_terms, mutual_terms, student_bce

            kd = (lam * distillation_terms(full.cons, probs, torch.sigmoid(z.mean(1)))).sum()
            mutual = (mu * mutual_terms(full.cons, probs)).sum() / 4
            loss = student_bce(z, y).mean() + (mutual if drop == "kd" else kd)
        return loss.item(), torch.autograd.grad(loss, z)[0].numpy()

    for kept, drop in ((["kd"], "dml"), (["dml"], "kd")):
        value, grad = run(kdef_terms=kept)
        ref_value, ref_grad = run(drop=drop)
        assert value == pytest.approx(ref_value, rel=1e-13)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-12, atol=1e-15)
    full = build_strategy("kdef", 4)({"logits": torch.tensor(z0), "fused_logit": torch.tensor(z0).mean(1)}, y)
    kd_only = build_strategy("kdef", 4, kdef_terms=["kd"])({"logits": torch.tensor(z0),
                                                             "fused_logit": torch.tensor(z0).mean(1)}, y)
    assert kd_only["loss"].item() == pytest.approx((full["loss"] - full["mutual_loss"]).item(), rel=1e-13)


def test_uniform_applies_to_kd_and_dml_too():
    z = torch.tensor(np.random.default_rng(1).normal(size=(5, 3)))
    out = {"logits": z, "fused_logit": z.mean(1)}
    y = torch.tensor([1.0, 0, 1, 1, 0], dtype=torch.float64)
    assert build_strategy("kd", 3, exam_weights="uniform")(out, y)["lambda"].tolist() == pytest.approx([1 / 3] * 3)
    mu = build_strategy("dml", 3, exam_weights="uniform")(out, y)["mu"].numpy()
    np.testing.assert_allclose(mu, 0.5 * (1 - np.eye(3)))
    assert build_strategy("kd", 3, exam_weights="em")(out, y)["lambda"].sum().item() == pytest.approx(1.0)


def test_default_weights_table_matches_the_strategies():
    for name in STRATEGIES.names():
        assert STRATEGIES.get(name).default_exam == (DEFAULT_WEIGHTS[name] == "em"), name


@pytest.mark.parametrize("override,message", [
    (["exam_weights=softmax"], "config key 'exam_weights': expected null or one of em, uniform, constant, got "
                               "'softmax'"),
    (["exam=true", "exam_weights=uniform"], "agrees with exam=true (em)"),
    (["exam=false", "exam_weights=em"], "agrees with exam=false (uniform or constant)"),
    (["method=vanilla", "exam_weights=uniform"], "expected null with method 'vanilla'"),
    (["exam_weights=uniform", "kd_weight=0.5"], "config key 'exam_weights': expected constant (or null) when "
                                                 "kd_weight or mutual_weight is set"),
    (["kdef_terms=[kd,kl]"], "config key 'kdef_terms': expected a list of distinct terms from kd, dml"),
    (["kdef_terms=[kd,kd]"], "distinct terms"),
    (["method=kd", "kdef_terms=[kd]"], "config key 'kdef_terms': expected [kd, dml] unless method is kdef"),
])
def test_bad_ablation_keys_are_one_line_errors(override, message):
    with pytest.raises(UserError) as exc:
        resolve_config(override)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_ablation_keys_resolve_and_canonicalise():
    cfg = resolve_config(["kdef_terms=[dml,kd]", "exam_weights=em"])
    assert cfg.kdef_terms == ["kd", "dml"] and cfg.exam_weights == "em"
    assert resolve_config(["kdef_terms=[]"]).kdef_terms == []
    assert resolve_config(["exam=false", "exam_weights=uniform"]).exam_weights == "uniform"
    with pytest.raises(UserError, match="unless method is kdef"):
        build_strategy("dml", 2, kdef_terms=["dml"])
