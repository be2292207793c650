"""Consistency losses and the examination mechanism against numpy arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from collapse_lab.errors import UserError
from collapse_lab.strategies import CONSISTENCY, exam_scores, examination, selective_weights, tailored_weights

P = np.array([0.9, 0.2, 0.5, 1e-9, 0.999])
T = np.array([0.6, 0.2, 0.0, 0.3, 1.0])


def np_cons(name: str, p: np.ndarray, t: np.ndarray) -> np.ndarray:
    d = p - t
    pc = np.clip(p, 1e-7, 1 - 1e-7)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_log_t = np.where(t > 0, t * np.log(np.where(t > 0, t, 1)), 0.0)
        q_log_q = np.where(t < 1, (1 - t) * np.log(np.where(t < 1, 1 - t, 1)), 0.0)
    return {"mse": d ** 2, "mae": np.abs(d), "huber": 0.5 * d ** 2,
            "kl": t_log_t - t * np.log(pc) + q_log_q - (1 - t) * np.log(1 - pc),
            "bce": -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log(1 - p), -100))}[name]


@pytest.mark.parametrize("name", ["mse", "mae", "huber", "kl", "bce"])
def test_consistency_losses_match_numpy(name: str) -> None:
    got = CONSISTENCY.get(name)(torch.tensor(P), torch.tensor(T)).numpy()
    np.testing.assert_allclose(got, np_cons(name, P, T), rtol=1e-10, atol=1e-12)


def test_kl_and_bce_between_bernoullis_by_hand() -> None:
    p, t = torch.tensor([0.25]), torch.tensor([0.5])
    # KL(t || p) = 0.5 log(0.5/0.25) + 0.5 log(0.5/0.75) = 0.5 log 2 + 0.5 log(2/3)
    assert CONSISTENCY.get("kl")(p, t).item() == pytest.approx(0.5 * np.log(2) + 0.5 * np.log(2 / 3), rel=1e-6)
    # BCE(p; t) = -(0.5 log 0.25 + 0.5 log 0.75) = KL + H(t), H(0.5) = log 2
    assert CONSISTENCY.get("bce")(p, t).item() == pytest.approx(-(0.5 * np.log(0.25) + 0.5 * np.log(0.75)), rel=1e-6)
    assert CONSISTENCY.get("kl")(t, t).item() == pytest.approx(0.0, abs=1e-7)
    # same gradient in p for kl and bce (they differ by the target's entropy)
    q = torch.tensor([0.3], requires_grad=True)
    g_kl = torch.autograd.grad(CONSISTENCY.get("kl")(q, t).sum(), q)[0]
    g_bce = torch.autograd.grad(CONSISTENCY.get("bce")(q, t).sum(), q)[0]
    torch.testing.assert_close(g_kl, g_bce)
    torch.testing.assert_close(g_kl, torch.tensor([-(0.5 / 0.3) + 0.5 / 0.7]))
    with pytest.raises(UserError, match="unknown consistency loss 'l2'; valid: bce, huber, kl, mae, mse"):
        CONSISTENCY.get("l2")


def test_examination_weights_match_the_formulas() -> None:
    probs = np.array([[0.9, 0.6, 0.3], [0.2, 0.5, 0.1], [0.7, 0.7, 0.4], [0.4, 0.1, 0.8]])  # (B, N)
    y = np.array([1.0, 0.0, 1.0, 0.0])
    s = 1 - np.abs(y[:, None] - probs).mean(axis=0)  # S_k = 1 - mean|y - p_k|
    np.testing.assert_allclose(s, [1 - (0.1 + 0.2 + 0.3 + 0.4) / 4, 1 - (0.4 + 0.5 + 0.3 + 0.1) / 4,
                                   1 - (0.7 + 0.1 + 0.6 + 0.8) / 4])
    lam = np.exp(-s) / np.exp(-s).sum()
    mu = np.zeros((3, 3))
    for k in range(3):
        others = [j for j in range(3) if j != k]
        e = np.exp([s[j] - s[k] for j in others])
        mu[k, others] = e / e.sum()
    tp = torch.tensor(probs)
    np.testing.assert_allclose(exam_scores(tp, torch.tensor(y)).numpy(), s, rtol=1e-12)
    np.testing.assert_allclose(tailored_weights(torch.tensor(s)).numpy(), lam, rtol=1e-12)
    np.testing.assert_allclose(selective_weights(torch.tensor(s)).numpy(), mu, rtol=1e-12, atol=0)
    # the weakest student (k = 2, lowest S) gets the largest lambda; rows of mu sum to 1
    assert lam.argmax() == s.argmin() and np.allclose(mu.sum(1), 1)
    assert selective_weights(torch.tensor([0.4])).tolist() == [[0.0]]
    assert tailored_weights(torch.tensor([0.4])).tolist() == [1.0]


def test_examination_gradient_flows_unless_detached() -> None:
    probs = torch.tensor([[0.9, 0.6], [0.2, 0.5]], requires_grad=True)
    y = torch.tensor([1.0, 0.0])
    lam, mu = examination(probs, y)
    g = torch.autograd.grad(lam[0] + mu[0, 1] * 0, probs)[0]
    # d lambda_0 / d S_0 = -lambda_0 lambda_1; d S_0 / d p_{i,0} = -sign(p - y)/B = (+1/2 for y=1, -1/2 for y=0)
    l0, l1 = lam.detach().tolist()
    dl_ds0, dl_ds1 = -l0 * l1, l0 * l1
    expected = torch.tensor([[dl_ds0 * 0.5, dl_ds1 * 0.5], [dl_ds0 * -0.5, dl_ds1 * -0.5]])
    torch.testing.assert_close(g, expected)
    lam_d, mu_d = examination(probs, y, detach=True)
    assert not lam_d.requires_grad and not mu_d.requires_grad
    torch.testing.assert_close(lam_d, lam.detach())
