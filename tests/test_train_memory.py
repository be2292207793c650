"""Issue 12 item 6: the model size is estimated before anything is allocated and refused when it cannot fit."""

from __future__ import annotations

import pytest
from train_fixtures import make_dataset, tiny_config

from collapse_lab.cli import main
from collapse_lab.data.dataset import ProcessedDataset
from collapse_lab.errors import UserError
from collapse_lab.models import build_ensemble
from collapse_lab.training import memory
from collapse_lab.training.memory import check_training_memory, estimate_training_memory


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("memory"), rows=600)


@pytest.mark.parametrize("n, hidden, batch_norm, fusion, form", [
    (3, [16, 16], True, "mean", "loop"),
    (2, [7, 5, 3], False, "concat", "batched"),
    (1, [9], True, "concat", "loop"),
])
def test_parameter_count_matches_the_built_model(dataset, n, hidden, batch_norm, fusion, form):
    fmap = ProcessedDataset(dataset).feature_map
    model = build_ensemble(fmap, num_students=n, hidden_units=hidden, embedding_dim=4, batch_norm=batch_norm,
                           fusion=fusion, form=form)
    est = estimate_training_memory(fmap, n, hidden, 4, 128, batch_norm, fusion)
    assert est.parameters == sum(p.numel() for p in model.parameters())
    assert est.buffers == sum(b.numel() for b in model.buffers() if b.dtype.is_floating_point)
    assert est.total_bytes == 4 * (4 * est.parameters + est.buffers) + 4 * est.activations


def test_meminfo_is_parsed(tmp_path):
    (tmp_path / "meminfo").write_text("MemTotal:  16000000 kB\nMemFree: 100 kB\nMemAvailable:   2048 kB\n")
    assert memory._meminfo_available(tmp_path / "meminfo") == 2048 * 1024
    (tmp_path / "memory.max").write_text("1000000\n")
    (tmp_path / "memory.current").write_text("250000\n")
    assert memory._cgroup_available(tmp_path) == 750000
    (tmp_path / "memory.max").write_text("max\n")
    assert memory._cgroup_available(tmp_path) is None


def test_refused_with_the_numbers_when_it_does_not_fit(dataset, monkeypatch):
    from collapse_lab.config import resolve_config

    fmap = ProcessedDataset(dataset).feature_map
    cfg = resolve_config(tiny_config(dataset))
    need = check_training_memory(fmap, cfg).total_bytes  # fits on any machine
    monkeypatch.setattr(memory, "available_memory", lambda device: (need - 1, "a test limit"))
    with pytest.raises(UserError, match=r"model too large for this machine: n=3, hidden_units=\[16, 16\], "
                                        r"embedding_dim=4 give [\d,]+ parameters .* available \(a test limit\)"):
        check_training_memory(fmap, cfg)
    monkeypatch.setattr(memory, "available_memory", lambda device: (need, "a test limit"))
    assert check_training_memory(fmap, cfg).total_bytes == need


@pytest.mark.parametrize("override", ["n=100000000", "hidden_units=[1000000000]", "embedding_dim=1000000000",
                                      "n=1 method=vanilla width_match_n=100000000"])
def test_huge_models_stop_at_once(dataset, tmp_path, capsys, override):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        main(["train", f"dataset={dataset}", *override.split(), "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: model too large for this machine") and err.count("\n") == 1
    assert "needed" in err and "available" in err
    assert not out.exists()


def test_cuda_memory_is_the_free_device_memory(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3 << 30, 80 << 30))
    assert memory.available_memory("cuda:0") == (3 << 30, "free memory of cuda:0 (torch.cuda.mem_get_info)")
