"""Dropout with the integer-threshold mask (collapse_lab/models/shard.py, docs/performance.md §3.1)."""

from __future__ import annotations

import math

import pytest
import torch

from collapse_lab.models import shard


def test_keep_mask_is_the_threshold_of_the_generators_32_bit_halves():
    torch.manual_seed(3)
    keep = shard.keep_mask((3, 5), 0.25)
    torch.manual_seed(3)
    draws = torch.empty(8, dtype=torch.int64).random_(-2**63, None)  # ceil(15 / 2) 64-bit draws
    halves = [(int(d) & 0xFFFFFFFF, (int(d) >> 32) & 0xFFFFFFFF) for d in draws]  # little-endian int32 halves
    u = [h - 2**32 if h >= 2**31 else h for pair in halves for h in pair][:15]
    expected = torch.tensor([x >= round(0.25 * 2**32) - 2**31 for x in u]).view(3, 5)
    assert torch.equal(keep, expected)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keep_rate_is_one_minus_p_within_binomial_noise(p):
    torch.manual_seed(0)
    n = 1_000_000
    rate = shard.keep_mask((n,), p).double().mean().item()
    assert abs(rate - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)


def test_dropout_scales_survivors_keeps_the_gradient_mask_and_is_seeded():
    x = (torch.rand(64, 10) + 0.5).requires_grad_(True)
    torch.manual_seed(1)
    y = shard.dropout(x, 0.2, True)
    y.sum().backward()
    kept = y.detach() != 0
    torch.testing.assert_close(y.detach()[kept], x.detach()[kept] * 1.25)
    assert torch.equal(x.grad, kept.float() * 1.25)  # d y_i / d x_i = m_i / (1 - p)
    torch.manual_seed(1)
    assert torch.equal(shard.dropout(x, 0.2, True), y)  # same seed -> same mask
    assert shard.dropout(x, 0.2, False) is x and shard.dropout(x, 0.0, True) is x


def test_bf16_dropout_scales_in_float():
    x = torch.full((4096,), 1.0, dtype=torch.bfloat16)
    torch.manual_seed(2)
    y = shard.dropout(x, 0.1, True)
    assert y.dtype == torch.bfloat16
    kept = y[y != 0]
    assert torch.equal(kept, torch.full_like(kept, 1.0 / 0.9))  # rounded once per element, from float
