"""The same checks on every device this machine has: CPU always, CUDA when present (``-m gpu`` selects those).

On a CPU-only machine the ``cuda`` cases are skipped and the ``cpu`` cases check the test logic itself; on a
GPU machine (``bench/gpu_check.sh``) the ``cuda`` cases check the CUDA paths: both student forms agree there
and with the CPU, a run trains end to end on the device, and its checkpoint is read back on the CPU (safetensors,
no pickle) by the spectral analysis and the results table.
"""

from __future__ import annotations

import json

import pytest
import torch
from train_fixtures import make_dataset, tiny_config

from collapse_lab.data.feature_map import FeatureMap, FieldInfo
from collapse_lab.models import build_ensemble

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=[pytest.mark.gpu, CUDA])]

FM = FeatureMap("toy", [FieldInfo("user", "categorical", 0, 1, 50), FieldInfo("item", "categorical", 1, 1, 40),
                        FieldInfo("age", "numeric", 0, 0, 1, padding_idx=None)])


def _inputs(device: str, rows: int = 128):
    g = torch.Generator().manual_seed(0)
    ids = torch.cat([torch.randint(1, 50, (rows, 1), generator=g), torch.randint(1, 40, (rows, 1), generator=g)], 1)
    return ids.to(device), torch.randn(rows, 1, generator=g).to(device)


@pytest.fixture(autouse=True)
def _exact_fp32_matmul():
    """TF32 would make CUDA GEMMs differ from the CPU by ~1e-3; these checks compare fp32 with fp32."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = previous


@pytest.mark.parametrize("device", DEVICES)
def test_both_forms_agree_on_the_device_and_with_the_cpu(device):
    kw = dict(num_students=3, hidden_units=(32, 16), embedding_dim=4, net_dropout=0.0, fusion="mean", seed=5,
              embedding_init_std=0.05)
    loop, batched = build_ensemble(FM, form="loop", **kw), build_ensemble(FM, form="batched", **kw)
    reference = build_ensemble(FM, form="loop", **kw).eval()
    ids, values = _inputs(device)
    with torch.no_grad():
        expected = reference(ids.cpu(), values.cpu())["logits"]
        for model in (loop, batched):
            out = model.to(device).eval()(ids, values)["logits"]
            assert out.device.type == device
            assert (out.cpu() - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize("device", DEVICES)
def test_a_run_trains_on_the_device_and_is_analysed_on_the_cpu(device, tmp_path):
    from collapse_lab.results import collect_results
    from collapse_lab.spectral import analyze
    from collapse_lab.spectral.analysis import default_out_dir
    from collapse_lab.training.api import train

    data = make_dataset(tmp_path, rows=4000)
    config = tiny_config(data, method="kdef", n=2, max_epochs=3, seed=11)
    run = tmp_path / "runs" / f"kdef-{device}"
    result = train(config, run, device=device, progress=False, console=False)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and str(manifest["device"]).startswith(device)
    auc = manifest["results"]["test"]["ensemble"]["auc"]
    assert 0.6 < auc <= 1.0 and result.run_dir == run
    analyze(run, out_dir=default_out_dir(run), progress=False)  # reads the safetensors checkpoint on the CPU
    table = collect_results(tmp_path / "runs").results
    row = table[table["member"] == "ensemble"].iloc[0]
    assert row["ensemble_auc"] == pytest.approx(auc) and row["best_ka_layer1"] >= 0.0
    assert 0.2 < row["best_erank_ratio_layer1"] < 2.0


@CUDA
@pytest.mark.gpu
def test_cuda_and_cpu_runs_reach_the_same_auc(tmp_path):
    """Different kernels and reduction orders: not bit-equal, but the same model to within seed-noise size."""
    from collapse_lab.training.api import train

    data = make_dataset(tmp_path, rows=4000)
    aucs = {}
    for device in ("cpu", "cuda"):
        run = tmp_path / device
        train(tiny_config(data, method="kdef", n=2, max_epochs=3, seed=11), run, device=device, progress=False,
              console=False)
        aucs[device] = json.loads((run / "manifest.json").read_text())["results"]["test"]["ensemble"]["auc"]
    assert abs(aucs["cuda"] - aucs["cpu"]) < 0.02, aucs
