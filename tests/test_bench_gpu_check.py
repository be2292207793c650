"""bench/gpu_check.sh in CPU mode with tiny sizes: its bf16 roofline step (bench/gpu_roofline.py) runs, prints
samples/s per N and the fraction of the bf16 GEMM peak, and its JSON follows the formulas of the script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_roofline_step_in_cpu_mode(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "GPU_CHECK_DEVICE": "cpu", "GPU_CHECK_STEPS": "roofline",
           "PYTHON": sys.executable, "OMP_NUM_THREADS": "1",
           "GPU_CHECK_ROOFLINE_ARGS": "--students 1,2 --batch-size 64 --hidden 16,16 --steps 2 --warmup 1 "
                                      "--peak-size 128 --compile off --threads 1"}
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "== bf16 roofline on cpu: N = 1, 4, 16" in proc.stdout and "== done: 0 step(s) failed" in proc.stdout
    assert "CUDA tests" not in proc.stdout  # only the selected step ran
    info = json.loads((tmp_path / "roofline-cpu.json").read_text())
    assert [r["n"] for r in info["rows"]] == [1, 2]
    assert info["form"] == "batched" and info["compile"] is False and info["data_on_device"] is False
    peak = max(info["bf16_peak_gflop_per_s"]["before"], info["bf16_peak_gflop_per_s"]["after"])
    w = 24 * 16 * 16 + 16 * 16 + 16  # 384 -> 16 -> 16 -> 1
    for r in info["rows"]:
        assert r["weights_per_student"] == w
        assert abs(r["samples_per_s"] - 64 / r["step_s"]) < 1e-6 * r["samples_per_s"]
        assert abs(r["gflop_per_s"] - 6 * 64 * r["n"] * w / r["step_s"] / 1e9) < 1e-9 * max(1.0, r["gflop_per_s"])
        assert abs(r["fraction_of_bf16_peak"] - r["gflop_per_s"] / peak) < 1e-12
        assert r["compiled"] is False and r["loss"] > 0
        assert f"N={r['n']:<3} bf16 batched:" in proc.stdout
    assert proc.stdout.count("% of the bf16 GEMM peak") == 2
    assert "goal_n16" not in info  # no N = 16 row at these sizes
