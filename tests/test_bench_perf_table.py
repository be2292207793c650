"""bench/perf_table.py at a tiny size: it runs, writes the table and its JSON (not its numbers)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_perf_table_writes_one_row_per_n_and_precision(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import perf_table

    perf_table.main(["--students", "1,2", "--batch-size", "64", "--hidden", "8,8", "--cell-seconds", "0.05",
                     "--peak-size", "64", "--threads", "1", "--ektf", "off", "--out-dir", str(tmp_path)])
    info = json.loads((tmp_path / "perf-table.json").read_text())
    rows = [(r["n"], r["precision"]) for r in info["rows"]]
    assert rows == [(1, "fp32"), (1, "bf16"), (2, "fp32"), (2, "bf16")]
    assert info["weights_per_student"] == 8 * 16 * 8 + 8 * 8 + 8  # 128 -> 8 -> 8 -> 1
    assert all(r["steps"] >= 3 and r["samples_per_s"] > 0 and r["ratio_vs_ektf_fp32"] is None for r in info["rows"])
    for r in info["rows"]:  # GFLOP/s is 6 B N W / median step seconds
        median = sorted(r["step_seconds"])[len(r["step_seconds"]) // 2] if len(r["step_seconds"]) % 2 else None
        if median is not None:
            assert abs(r["gflop_per_s"] - 6 * 64 * r["n"] * info["weights_per_student"] / median / 1e9) < 1e-9
    assert len(info["load_average_start"]) == 3 and len(info["load_average_end"]) == 3
    assert info["machine"]["cores"] >= 1 and info["machine"]["torch"]
    md = (tmp_path / "perf-table.md").read_text()
    assert "| N | precision | collapse-lab samples/s |" in md and md.count("\n| 2 | ") == 2
    assert "EKTF-equivalent not measured" in md
    assert sys.modules["perf_table"] is perf_table
    import torch  # the bench flushes denormals while it measures; the process gets IEEE floats back (hypothesis)

    assert torch.tensor([1e-40], dtype=torch.float32).item() != 0.0

