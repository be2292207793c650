"""Smoke test: every form x fusion x method builds, runs forward and backward, and returns the interface dict."""

from __future__ import annotations

import pytest
import torch

from collapse_lab.data.feature_map import FeatureMap, FieldInfo
from collapse_lab.models import build_ensemble
from collapse_lab.strategies import build_strategy

FM = FeatureMap("toy", [FieldInfo("user", "categorical", 0, 1, 7), FieldInfo("genres", "sequence", 1, 3, 6, max_len=3),
                        FieldInfo("age", "numeric", 0, 0, 1, padding_idx=None)])


@pytest.mark.parametrize("form", ["loop", "batched"])
@pytest.mark.parametrize("fusion", ["mean", "sum", "concat"])
@pytest.mark.parametrize("method", ["vanilla", "kd", "dml", "kdef"])
def test_every_form_fusion_method_trains_one_step(form: str, fusion: str, method: str) -> None:
    torch.manual_seed(0)
    model = build_ensemble(FM, num_students=3, hidden_units=(8, 4), fusion=fusion, form=form, seed=5)
    task = build_strategy(method, num_students=3)
    ids = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [6, 1, 1, 1], [2, 0, 0, 0]])
    values = torch.tensor([[0.5], [2.0], [-1.0], [0.0]])
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0])
    out = model(ids, values)
    assert out["logits"].shape == (4, 3) and out["fused_logit"].shape == (4,)
    parts = task(out, labels)
    assert set(parts) == {"loss", "task_loss", "kd_loss", "mutual_loss", "lambda", "mu"}
    assert torch.isfinite(parts["loss"])
    parts["loss"].backward()
    assert model.embedding.tables["user"].weight.grad.abs().sum() > 0
    assert (parts["lambda"] is None) == (method in ("vanilla", "dml"))
    assert (parts["mu"] is None) == (method in ("vanilla", "kd"))
