"""bench/perf_goals.py: every goal of the performance issue rendered from result files (hand-made here)."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rows(n, prec, ratio, frac):
    return {"n": n, "precision": prec, "ratio_vs_ektf_fp32": ratio, "fraction_of_peak": frac}


def test_goals_from_result_files(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import perf_goals

    table = {"rows": [_rows(1, "fp32", 1.12, 0.64), _rows(2, "fp32", 1.10, 0.64), _rows(10, "fp32", 1.25, 0.68),
                      _rows(1, "bf16", 2.28, 0.33), _rows(10, "bf16", 2.61, 0.41)]}
    (tmp_path / "perf-table.json").write_text(json.dumps(table))
    (tmp_path / "bf16-auc.csv").write_text("seed,precision,test_auc\n1,fp32,0.7800\n1,bf16,0.7790\n"
                                           "2,fp32,0.7800\n2,bf16,0.7810\n3,fp32,0.7800\n3,bf16,0.7797\n")
    share = {"case": "ml100k", "train_rows": 80000,
             "reported": {"epoch": 2, "share": {"data": 0.01, "step": 0.9, "eval": 0.03, "other": 0.06,
                                                "data_plus_eval": 0.04}}}
    (tmp_path / "epoch-share.json").write_text(json.dumps({"cases": [share]}))
    (tmp_path / "mmap-rss.json").write_text(json.dumps({
        "rows": 45_000_000, "fields": 39, "max_steps": 300, "data_bytes_on_disk": 8 * 2**30,
        "peak_bytes": {"RssAnon": 2**30, "RssFile": 3 * 2**30, "VmHWM": 4 * 2**30}}))
    (tmp_path / "spectral-stream.json").write_text(json.dumps({"stream": {
        "shape": [45_000_000, 16], "gflop_per_s": 9.0, "wall_s": 2.5, "fraction_of_square_f64_gemm": 0.5,
        "fraction_of_same_shape_f64_gemm": 0.9}}))
    rows = {r["goal"]: r for r in perf_goals.goals(tmp_path)}
    assert rows["fp32 >= 1.5x EKTF-eq. at N = 1"]["verdict"] == "not met: short by 0.38x"
    assert rows["fp32 >= 1.2x EKTF-eq. at N = 10"]["verdict"] == "met"
    assert rows["student GEMMs >= 85% of square fp32 GEMM, N >= 2"]["verdict"] == \
        "not met: short by 21 points (whole step)"
    assert rows["bf16 >= 2.5x fp32 EKTF-eq. at N = 10"]["measured"] == "2.61x"
    assert rows["bf16 >= 70% of bf16 GEMM"]["verdict"] == "not met: short by 29–37 points"
    auc = rows["bf16 test AUC within 0.001 of fp32 (ML-100K, paired seeds)"]
    assert auc["measured"].startswith("mean -0.0001 over 3 seeds")  # (-0.0010 + 0.0010 - 0.0003) / 3
    assert rows["eval + data <= 10% of an epoch (ml100k, 80,000 training rows)"]["verdict"] == "met"
    rss = next(r for g, r in rows.items() if g.startswith("peak RSS"))
    assert rss["verdict"] == "memory-mapped, not loaded" and "1.00 GiB = 12% of the 8.00 GiB" in rss["measured"]
    stream = next(r for g, r in rows.items() if g.startswith("spectra"))
    assert stream["verdict"] == "not met: short by 30 points (square GEMM); met against the same-shape GEMM"
    gpu = rows["GPU >= 2M samples/s at N = 16 on an H200"]
    assert gpu["verdict"] == "not measurable here"
    md = perf_goals.goals_markdown(tmp_path)
    assert md.count("\n| ") == len(rows) + 1  # header + one line per goal


def test_missing_files_say_not_measured(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import perf_goals

    rows = perf_goals.goals(tmp_path)
    assert all(r["verdict"] in ("not measured", "not measurable here") for r in rows)
    assert len(rows) == 10  # 5 throughput goals, AUC, share, RSS, spectra, GPU
