"""compile / data_on_device config keys, the resident batch path and the trainer's phase timing.

The CUDA paths themselves run in bench/gpu_check.sh; here: neutral defaults keep config hashes, the compile
fallback is one log line and an eager run, the resident iterator yields exactly the host iterator's batches (its
code forced onto the CPU), and the phase times add up within an epoch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_fixtures import make_dataset, tiny_config

from collapse_lab.config import config_hash, resolve_config
from collapse_lab.data.dataset import BatchIterator, ProcessedDataset
from collapse_lab.errors import UserError
from collapse_lab.training.api import train

CFG = {"method": "kdef", "n": 2, "max_epochs": 2, "probe_rows": 0, "spectra_every": 0}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("key", ["compile", "data_on_device"])
def test_neutral_defaults_keep_the_config_hash(key):
    assert config_hash(resolve_config([])) == config_hash(resolve_config([f"{key}=false"]))
    assert config_hash(resolve_config([])) != config_hash(resolve_config([f"{key}=true"]))


def test_non_boolean_compile_is_a_user_error():
    with pytest.raises(UserError, match="compile"):
        resolve_config(["compile=sometimes"])


def test_compile_fallback_is_one_line_and_the_eager_run(dataset, tmp_path, monkeypatch, caplog):
    import collapse_lab.training.compiling as compiling

    monkeypatch.setattr(compiling, "compile_support", lambda device: "no C++ compiler for the CPU backend")
    eager = train(tiny_config(dataset, **CFG), tmp_path / "eager", device="cpu", console=False)
    fallback = train(tiny_config(dataset, compile=True, **CFG), tmp_path / "fallback", device="cpu", console=False)
    assert fallback.results["test"] == eager.results["test"]  # bit-identical metrics: nothing was compiled
    assert fallback.manifest["model"]["compiled"] is False and "compiled" not in eager.manifest["model"]
    log = (tmp_path / "fallback" / "train.log").read_text()
    line = "compile=true requested but no C++ compiler for the CPU backend: training without torch.compile"
    assert log.count(line) == 1


@pytest.mark.parametrize("shuffle,drop_last", [(True, False), (True, True), (False, False)])
def test_resident_batches_equal_host_batches(dataset, shuffle, drop_last):
    split = ProcessedDataset(dataset).split("train")
    host = BatchIterator(split, 96, shuffle=shuffle, seed=3, drop_last=drop_last)
    resident = BatchIterator(split, 96, shuffle=shuffle, seed=3, drop_last=drop_last)
    resident.resident, resident.device = True, "cpu"  # the CUDA-only path, forced onto the CPU
    assert resident._on_device is None
    for epoch in (0, 1):
        host.set_epoch(epoch)
        resident.set_epoch(epoch)
        pairs = list(zip(host, resident, strict=True))
        assert len(pairs) == len(host)
        for a, b in pairs:
            assert b.ids.dtype == torch.int64 and torch.equal(a.ids, b.ids) and torch.equal(a.labels, b.labels)
            np.testing.assert_array_equal(a.index, b.index)
    assert resident._on_device["ids"].dtype == torch.int32  # the split is held once, as int32


def test_resident_is_ignored_without_a_cuda_device(dataset):
    split = ProcessedDataset(dataset).split("train")
    assert not BatchIterator(split, 64, resident=True).resident
    assert not BatchIterator(split, 64, device="cpu", resident=True).resident


def test_phase_seconds_add_up_within_each_epoch(dataset, tmp_path):
    seen = {}

    def grab(event, info):
        seen["trainer"] = info["trainer"]

    train(tiny_config(dataset, **CFG), tmp_path / "run", device="cpu", console=False, callbacks=[grab])
    phases = seen["trainer"].phase_seconds
    assert sorted(phases) == [1, 2]
    for p in phases.values():
        assert p["data"] > 0 and p["step"] > 0 and p["eval"] > 0
        assert p["data"] + p["step"] + p["eval"] <= p["epoch"]


@pytest.mark.slow
def test_compile_compiles_the_students_and_trains(dataset, tmp_path):
    import collapse_lab.training.compiling as compiling

    if compiling.compile_support("cpu") is not None:
        pytest.skip(compiling.compile_support("cpu"))
    from torch._dynamo.utils import counters

    counters.clear()
    cfg = {**CFG, "form": "batched", "max_epochs": 1}
    eager = train(tiny_config(dataset, **cfg), tmp_path / "eager", device="cpu", console=False)
    compiled = train(tiny_config(dataset, compile=True, **cfg), tmp_path / "compiled", device="cpu", console=False)
    assert compiled.manifest["model"]["compiled"] is True
    assert counters["stats"]["unique_graphs"] >= 2  # the stacked students' forward: training and evaluation
    assert not any("recompile_limit" in k for k in counters["misc"])
    # different dropout random bits and fused rounding: close to the eager run, not equal
    a, b = eager.results["test"]["ensemble"]["auc"], compiled.results["test"]["ensemble"]["auc"]
    assert abs(a - b) < 0.02 and 0.5 < b < 1
