"""precision=bf16: students under bf16 autocast, the loss path in fp32 (collapse_lab/training/precision.py)."""

from __future__ import annotations

import pytest
import torch
from train_fixtures import make_dataset, tiny_config

from collapse_lab.config import config_hash, resolve_config
from collapse_lab.data.dataset import BatchIterator, ProcessedDataset
from collapse_lab.errors import UserError
from collapse_lab.models import build_ensemble
from collapse_lab.strategies import build_strategy
from collapse_lab.training.api import train
from collapse_lab.training.precision import bf16_support, install_precision, resolve_precision
from collapse_lab.training.trainer import training_step

HAS_BF16 = bf16_support("cpu")[0]
CFG = {"method": "kdef", "n": 2, "max_epochs": 3, "probe_rows": 0, "spectra_every": 0}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data"))


def test_bad_precision_is_a_user_error_naming_the_key():
    with pytest.raises(UserError, match="'precision'.*fp32, bf16"):
        resolve_config(["precision=fp16"])


def test_default_precision_keeps_the_config_hash():
    assert config_hash(resolve_config([])) == config_hash(resolve_config(["precision=fp32"]))
    assert config_hash(resolve_config([])) != config_hash(resolve_config(["precision=bf16"]))


def test_fallback_without_bf16_units(monkeypatch):
    import collapse_lab.training.precision as precision

    monkeypatch.setattr(precision, "bf16_support", lambda device: (False, "cpu AVX2 has no avx512_bf16/amx units"))
    effective, note = precision.resolve_precision("bf16", "cpu")
    assert effective == "fp32"
    assert note == "precision=bf16 requested but cpu AVX2 has no avx512_bf16/amx units: training in fp32"
    assert precision.resolve_precision("fp32", "cpu") == ("fp32", None)


@pytest.mark.skipif(not HAS_BF16, reason="no bf16 units on this CPU")
@pytest.mark.parametrize("form", ["loop", "batched"])
def test_loss_path_is_fp32_and_gemms_are_bf16(dataset, form):
    data = ProcessedDataset(dataset)
    model = build_ensemble(data.feature_map, num_students=3, embedding_dim=4, hidden_units=[16, 16], form=form)
    install_precision(model, "bf16", "cpu")
    task = build_strategy("kdef", num_students=3)
    seen = {}
    task.register_forward_pre_hook(lambda mod, args: seen.update(logits=args[0]["logits"].dtype,
                                                                 fused=args[0]["fused_logit"].dtype,
                                                                 labels=args[1].dtype))
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if linear:  # loop form: the Linear layers' outputs are bf16 (autocast active inside the student)
        linear[0].register_forward_hook(lambda mod, args, out: seen.update(gemm=out.dtype))
    emb_out = {}
    model.embedding.register_forward_hook(lambda mod, args, out: emb_out.update(dtype=out.dtype))
    batch = next(iter(BatchIterator(data.split("train"), 256, shuffle=True, seed=1)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    parts = training_step(model, task, opt, batch, 1e-5, 10.0)
    assert (seen["logits"], seen["fused"], seen["labels"]) == (torch.float32,) * 3
    assert emb_out["dtype"] == torch.float32
    if linear:
        assert seen["gemm"] == torch.bfloat16
    assert parts["loss"].dtype == torch.float32 and torch.isfinite(parts["loss"])
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp32 master weights
    assert not torch.is_autocast_enabled("cpu")  # the hook left autocast after the student


@pytest.mark.skipif(not HAS_BF16, reason="no bf16 units on this CPU")
def test_bf16_run_is_close_to_fp32_and_recorded(dataset, tmp_path):
    runs = {p: train(tiny_config(dataset, precision=p, **CFG), tmp_path / p, device="cpu", console=False)
            for p in ("fp32", "bf16")}
    auc = {p: r.results["test"]["ensemble"]["auc"] for p, r in runs.items()}
    assert all(0.5 < a < 1 for a in auc.values())
    assert abs(auc["bf16"] - auc["fp32"]) < 0.02  # loose: a tiny model, 3 epochs
    assert runs["bf16"].manifest["model"]["precision"] == "bf16"
    assert runs["fp32"].manifest["model"]["precision"] == "fp32"
    assert runs["bf16"].manifest["config"]["precision"] == "bf16"


def test_resolve_precision_bf16_on_this_machine():
    effective, note = resolve_precision("bf16", "cpu")
    assert (effective == "bf16") == HAS_BF16 and (note is None) == HAS_BF16
