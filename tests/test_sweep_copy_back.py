"""Copy-back (runs trained away from the sweep directory and unpacked into place) and the executor options,
without Ray: a local executor stands in for the remote one, and Ray's absence is simulated."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest
from sweep_fixtures import fake_config, fake_grid, write_fake_dataset, write_fake_run

from collapse_lab.cli import main
from collapse_lab.errors import UserError
from collapse_lab.io.contract import run_dataset_hash
from collapse_lab.io.lock import run_lock_path
from collapse_lab.sweep.copy_back import RemoteRun, execute_run_elsewhere, pack_dir, unpack_dir
from collapse_lab.sweep.executor import EXECUTORS, LocalExecutor, make_executor
from collapse_lab.sweep.runner import RunTask, run_status, run_sweep

TESTS = Path(__file__).parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")])}
GRID = fake_grid("cb")


class CopyBackLocal(LocalExecutor):
    """The local executor with copy-back on: every run trains in a scratch directory (as on a remote worker)."""

    copy_back = True


def resume_trainer(config: Any, out_dir: Any = None, resume: bool = False, overwrite: bool = False,
                   **kwargs: Any) -> Any:
    """Record what the trainer found in its directory (``seen.json``), then write a complete fake run there."""
    out = Path(out_dir)
    seen = {"resume": resume, "overwrite": overwrite, "marker": (out / "marker.txt").is_file(),
            "status": run_status(out)}
    write_fake_run(out, dict(config))
    (out / "seen.json").write_text(json.dumps(seen))
    return {"run_dir": out}


def failing_trainer(config: Any, out_dir: Any = None, **kwargs: Any) -> Any:
    """Leave a failed run directory behind and raise (as ``train`` does when training breaks)."""
    write_fake_run(Path(out_dir), dict(config), status="failed")
    raise RuntimeError("planned failure")


@pytest.fixture()
def grid(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(GRID)
    return path


def _record(sweep_dir):
    return {r["name"]: r for r in json.loads((sweep_dir / "sweep.json").read_text())["runs"]}


def test_pack_and_unpack_round_trip_and_replace_atomically(tmp_path):
    src = tmp_path / "src"
    (src / "checkpoints" / "best").mkdir(parents=True)
    (src / "metrics.csv").write_text("epoch,value\n1,0.5\n")
    (src / "checkpoints" / "best" / "model.safetensors").write_bytes(bytes(range(256)) * 40)
    dest = tmp_path / "runs" / "r"
    dest.mkdir(parents=True)
    (dest / "stale.txt").write_text("old")
    assert unpack_dir(pack_dir(src), dest) == dest
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert files == ["checkpoints/best/model.safetensors", "metrics.csv"]  # replaced, not merged
    assert (dest / "checkpoints/best/model.safetensors").read_bytes() == bytes(range(256)) * 40
    assert (dest / "metrics.csv").read_text() == "epoch,value\n1,0.5\n"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["r"]  # no temporary siblings left


@pytest.mark.parametrize("member", ["../escape.txt", "/abs.txt", "link"])
def test_unpack_refuses_members_outside_the_run_and_leaves_it_untouched(tmp_path, member):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(member)
        if member == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    dest = tmp_path / "runs" / "r"
    dest.mkdir(parents=True)
    (dest / "keep.txt").write_text("kept")
    with pytest.raises(ValueError, match="refusing archive member"):
        unpack_dir(buffer.getvalue(), dest)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"] and not (tmp_path / "escape.txt").exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["r"]


def test_worker_side_trains_in_scratch_and_returns_the_run(tmp_path):
    task = RunTask("r", fake_config("kdef", n=2), str(tmp_path / "nowhere" / "runs" / "r"),
                   "sweep_fixtures:fake_train", "cpu")
    outcome, archive = execute_run_elsewhere(RemoteRun(task))
    assert outcome.status == "complete" and outcome.error is None
    assert not (tmp_path / "nowhere").exists()  # the task's own path was never written on the worker
    unpack_dir(archive, tmp_path / "home")
    assert run_status(tmp_path / "home") == "complete"
    assert json.loads((tmp_path / "home" / "manifest.json").read_text())["config"]["n"] == 2


def test_copy_back_sweep_trains_elsewhere_unpacks_in_place_and_resumes(grid, tmp_path):
    out = tmp_path / "sw"
    report = run_sweep(grid, out_dir=out, trainer="sweep_fixtures:fake_train", executor=CopyBackLocal(),
                       progress=False)
    assert len(report.completed) == 3 and not report.failed
    assert not (out / "calls.txt").exists()  # fake_train logs beside its run directory: it ran in scratch
    for name in report.runs:
        assert run_status(out / "runs" / name) == "complete"
        assert not run_lock_path(out / "runs" / name).exists()  # every lock released
    assert {r["status"] for r in _record(out).values()} == {"complete"}
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(report.runs)  # no temporaries
    again = run_sweep(grid, out_dir=out, trainer="sweep_fixtures:fake_train", executor=CopyBackLocal(),
                      progress=False)
    assert sorted(again.skipped) == sorted(report.runs) and not again.completed


def test_an_interrupted_run_is_shipped_to_the_worker_and_resumed_there(grid, tmp_path):
    out = tmp_path / "sw"
    first = run_sweep(grid, out_dir=out, trainer="sweep_fixtures:fake_train", progress=False)
    interrupted, failed = first.runs[0], first.runs[1]
    write_fake_run(out / "runs" / interrupted, _record(out)[interrupted]["config"], status="running")
    (out / "runs" / interrupted / "marker.txt").write_text("epoch 1 checkpoint")
    write_fake_run(out / "runs" / failed, _record(out)[failed]["config"], status="failed")
    (out / "runs" / failed / "marker.txt").write_text("from the failed attempt")
    again = run_sweep(grid, out_dir=out, trainer="test_sweep_copy_back:resume_trainer", executor=CopyBackLocal(),
                      progress=False)
    assert sorted(again.completed) == sorted([interrupted, failed]) and len(again.skipped) == 1
    seen = json.loads((out / "runs" / interrupted / "seen.json").read_text())
    assert seen == {"resume": True, "overwrite": False, "marker": True, "status": "running"}
    seen = json.loads((out / "runs" / failed / "seen.json").read_text())  # a failed run starts afresh
    assert seen == {"resume": False, "overwrite": True, "marker": False, "status": "missing"}
    assert not (out / "runs" / failed / "marker.txt").exists() and run_status(out / "runs" / failed) == "complete"


def test_a_failed_attempt_never_replaces_an_earlier_run_but_is_kept_when_there_was_none(grid, tmp_path):
    out = tmp_path / "sw"
    first = run_sweep(grid, out_dir=out, trainer="sweep_fixtures:fake_train", progress=False)
    old = first.runs[0]
    write_fake_run(out / "runs" / old, _record(out)[old]["config"], status="running")
    (out / "runs" / old / "marker.txt").write_text("partial")
    fresh = first.runs[1]
    shutil.rmtree(out / "runs" / fresh)
    again = run_sweep(grid, out_dir=out, trainer="test_sweep_copy_back:failing_trainer", executor=CopyBackLocal(),
                      progress=False)
    assert sorted(again.failed) == sorted([old, fresh])
    assert "planned failure" in again.failed[old]
    assert (out / "runs" / old / "marker.txt").read_text() == "partial"  # the earlier run is untouched
    assert run_status(out / "runs" / old) == "running"
    assert run_status(out / "runs" / fresh) == "failed"  # nothing was there: the failed run comes home
    assert _record(out)[old]["status"] == "failed"


def test_a_stale_run_is_trained_elsewhere_and_replaced_only_by_a_complete_one(tmp_path):
    write_fake_dataset(tmp_path / "data", "toy", "a" * 64)
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID.replace("base: {", f"base: {{dataset: toy, data_root: {tmp_path / 'data'}, "))
    out = tmp_path / "sw"
    first = run_sweep(grid, out_dir=out, trainer="sweep_fixtures:fake_train", progress=False)
    write_fake_dataset(tmp_path / "data", "toy", "b" * 64)  # prepared again
    failed = run_sweep(grid, out_dir=out, trainer="test_sweep_copy_back:failing_trainer", executor=CopyBackLocal(),
                       progress=False)
    assert sorted(failed.failed) == sorted(first.runs)
    assert {(run_status(out / "runs" / n), run_dataset_hash(out / "runs" / n)) for n in first.runs} == {
        ("complete", "a" * 64)}  # the failed attempts never replaced the old runs
    again = run_sweep(grid, out_dir=out, trainer="sweep_fixtures:fake_train", executor=CopyBackLocal(),
                      progress=False)
    assert sorted(again.completed) == sorted(first.runs) and {again.statuses[n] for n in first.runs} == {"stale"}
    assert {run_dataset_hash(out / "runs" / n) for n in first.runs} == {"b" * 64}


def test_copy_back_leaves_a_run_another_process_holds_then_waits_for_it(grid, tmp_path):
    out = tmp_path / "sw"
    first = run_sweep(grid, out_dir=out, trainer="sweep_fixtures:fake_train", progress=False)
    held = first.runs[0]
    write_fake_run(out / "runs" / held, _record(out)[held]["config"], status="running")
    holder = subprocess.Popen([sys.executable, str(TESTS / "lock_fixtures.py"), "hold",
                               str(run_lock_path(out / "runs" / held))], env=ENV, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    timer = threading.Timer(1.0, holder.kill)
    timer.start()
    try:
        again = run_sweep(grid, out_dir=out, trainer="test_sweep_copy_back:resume_trainer",
                          executor=CopyBackLocal(), progress=False)
    finally:
        timer.cancel()
        holder.kill()
        holder.wait(timeout=10)
    assert again.completed == [held]  # waited for the holder, then resumed the run on the "worker"
    assert json.loads((out / "runs" / held / "seen.json").read_text())["resume"] is True


def test_tasks_name_absolute_run_directories_for_workers_that_start_elsewhere(grid, tmp_path, monkeypatch):
    seen = []

    class Recording(LocalExecutor):
        def run(self, fn, tasks):
            seen.extend(task.run_dir for task in tasks)
            return super().run(fn, tasks)

    monkeypatch.chdir(tmp_path)
    report = run_sweep(grid, out_dir="sw", trainer="sweep_fixtures:fake_train", executor=Recording(), progress=False)
    assert len(report.completed) == 3
    assert sorted(seen) == sorted(str(tmp_path / "sw" / "runs" / name) for name in report.runs)


def test_without_ray_the_ray_executor_is_a_one_line_install_hint(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID)
    with pytest.raises(UserError, match=r"needs Ray, which is not installed: pip install 'collapse-lab\[distrib"):
        make_executor("ray")
    for command in (["sweep", str(grid)], ["reproduce", "--preset", str(grid)]):
        with pytest.raises(SystemExit) as exc:
            main([*command, "--out", str(tmp_path / "sw"), "--executor", "ray"])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err == ("error: --executor ray needs Ray, which is not installed: "
                       "pip install 'collapse-lab[distributed]'\n")
    assert not (tmp_path / "sw").exists()


@pytest.mark.parametrize("argv, message", [
    (["--address", "auto"], "error: --address: not an option of --executor local (valid with: ray)"),
    (["--gpus-per-run", "0.5", "--copy-back"],
     "error: --copy-back, --gpus-per-run: not an option of --executor local (valid with: ray)"),
    (["--executor", "dask"], "error: unknown executor 'dask'; valid: local, ray"),
    (["--executor", "ray", "--gpus-per-run", "1.5"],
     "error: --gpus-per-run must be a fraction in [0, 1] or a whole number, got 1.5"),
])
def test_executor_options_are_checked_before_anything_runs(grid, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(grid), "--out", str(tmp_path / "sw"), *argv])
    assert exc.value.code == 2
    assert capsys.readouterr().err == message + "\n"
    assert not (tmp_path / "sw").exists()


def test_ray_is_registered_and_local_ignores_unset_options():
    assert EXECUTORS.names() == ["local", "ray"]
    local = make_executor("local", jobs=None, threads=1, address=None, gpus_per_run=None, copy_back=None)
    assert isinstance(local, LocalExecutor) and local.jobs == 1 and local.copy_back is False
    assert local.task_device("auto") == "auto"



MANY = """
import resource, sys
from test_sweep_copy_back import CopyBackLocal
from collapse_lab.sweep.runner import run_sweep
resource.setrlimit(resource.RLIMIT_NOFILE, (40, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
report = run_sweep(sys.argv[1], out_dir=sys.argv[2], trainer="sweep_fixtures:fake_train", executor=CopyBackLocal(),
                   progress=False)
print(len(report.completed), len(report.failed), resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 50)
"""


@pytest.mark.slow
def test_copy_back_holds_more_run_locks_than_the_default_open_file_limit(tmp_path):
    """Every run's lock is held from submission on (one descriptor each): 50 runs under a soft limit of 40."""
    grid = tmp_path / "grid.yaml"
    grid.write_text("name: many\nbase: {hidden_units: [8], max_epochs: 1, method: vanilla}\n"
                    f"grid: {{n: [1, 2], seed: {list(range(25))}}}\n")
    proc = subprocess.run([sys.executable, "-c", MANY, str(grid), str(tmp_path / "sw")], env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["50", "0", "True"]
