"""Locks (issue 12 item 2): a run or sweep held by a live process is left alone, a dead holder's lock is taken over,
two sweeps on one directory train every run exactly once, and killing a ``-j 2`` sweep ends its workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from collapse_lab.errors import UserError
from collapse_lab.io.lock import DirLock, LockBusy, is_locked, lock_run, run_lock_path
from collapse_lab.sweep.runner import DEFAULT_TRAINER, run_status, run_sweep

TESTS = Path(__file__).parent
ROOT = TESTS.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")]),
       "OMP_NUM_THREADS": "1"}
GRID = """
name: locks
base: {hidden_units: [8], max_epochs: 1}
grid:
  method: [vanilla, kdef]
  n: [1, 2, 3]
  seed: [1, 2]
exclude:
  - {method: kdef, n: 1}
"""


@pytest.fixture()
def grid(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(GRID)
    return path


def hold(lock_file):
    """A separate live process holding ``lock_file`` (killed by the caller)."""
    proc = subprocess.Popen([sys.executable, str(TESTS / "lock_fixtures.py"), "hold", str(lock_file)], env=ENV,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def kill(proc):
    proc.kill()
    proc.wait(timeout=10)


def test_lock_is_exclusive_names_its_holder_and_is_taken_over_after_kill_9(tmp_path):
    path = tmp_path / ".r.lock"
    holder = hold(path)
    try:
        assert is_locked(path)
        with pytest.raises(LockBusy, match=f"r: in use by process {holder.pid}") as exc:
            DirLock(path, "r").acquire()
        assert exc.value.holder == holder.pid
    finally:
        kill(holder)  # SIGKILL: no cleanup code runs in the holder
    assert not is_locked(path)
    with DirLock(path, "r"):  # the stale lock is simply free: the kernel released it with the process
        assert is_locked(path)
        with DirLock(path, "r"):  # re-entrant in one process (a sweep worker, then train inside it)
            pass
        assert is_locked(path)
    assert not is_locked(path) and not path.exists()  # released and removed


def test_waiting_acquire_gets_the_lock_when_the_holder_dies(tmp_path):
    path = tmp_path / ".r.lock"
    holder = hold(path)
    threading.Timer(0.5, holder.kill).start()
    start = time.monotonic()
    with DirLock(path, "r", wait=True):
        assert time.monotonic() - start >= 0.4
    holder.wait(timeout=10)


def test_train_refuses_a_run_directory_another_process_holds(tmp_path):
    from train_fixtures import make_dataset, tiny_config

    from collapse_lab.training.api import train

    data = make_dataset(tmp_path, rows=2000)
    out = tmp_path / "runs" / "a"
    holder = hold(run_lock_path(out))
    try:
        with pytest.raises(UserError, match=f"run directory .*a: in use by process {holder.pid}"):
            train(tiny_config(data, max_epochs=1), out, device="cpu", console=False)
        assert not out.exists()
    finally:
        kill(holder)
    with lock_run(out):  # free again
        pass


def _record(sweep_dir):
    state = json.loads((sweep_dir / "sweep.json").read_text())
    return {r["name"]: r for r in state["runs"]}, state


def test_a_running_run_held_by_a_live_process_is_waited_for_then_resumed(grid, tmp_path):
    out = tmp_path / "sw"
    first = run_sweep(grid, out_dir=out, trainer="sweep_fixtures:fake_train", progress=False)
    live = first.runs[0]
    run_dir = out / "runs" / live
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (run_dir / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    assert run_status(run_dir) == "running"
    (out / "calls.txt").unlink()
    holder = hold(run_lock_path(run_dir))
    released = []

    def release():
        released.append(time.monotonic())
        kill(holder)

    threading.Timer(1.0, release).start()
    again = run_sweep(grid, out_dir=out, trainer="sweep_fixtures:fake_train", progress=False)
    assert released and again.completed == [live]  # waited for the live holder, then took the stale run over
    assert (out / "calls.txt").read_text().split() == [live]
    runs, _ = _record(out)
    assert runs[live]["status"] == "complete" and run_status(run_dir) == "complete"


SWEEP = """
import os, sys, time
from collapse_lab.sweep.runner import run_sweep
import lock_fixtures
if len(sys.argv) > 5:  # start together: wait for the go file once imported
    print("ready", flush=True)
    while not os.path.exists(sys.argv[5]):
        time.sleep(0.01)
r = run_sweep(sys.argv[1], out_dir=sys.argv[2], jobs=int(sys.argv[3]), trainer=sys.argv[4], progress=False)
print(len(r.completed), len(r.skipped), len(r.failed))
"""


def test_two_sweeps_started_together_train_every_run_exactly_once(grid, tmp_path):
    out = tmp_path / "sw"
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", SWEEP, str(grid), str(out), str(jobs),
                               "lock_fixtures:slow_train", str(go)], env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for jobs in (1, 1)]
    assert [p.stdout.readline().strip() for p in procs] == ["ready", "ready"]
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    runs, state = _record(out)
    names = sorted(runs)
    assert len(names) == 10
    calls = (out / "calls.txt").read_text().split()
    assert sorted(calls) == names  # every run trained, none twice
    counts = [tuple(map(int, r[0].split())) for r in results]
    print("trained/skipped/failed per sweep:", counts)
    assert sum(c[0] for c in counts) == 10 and all(c[0] + c[1] == 10 and c[2] == 0 for c in counts)
    assert all(r["status"] == "complete" and r["error"] is None for r in runs.values())
    assert all(run_status(out / "runs" / n) == "complete" for n in names)
    assert sum(r["attempts"] for r in runs.values()) == 10  # one recorded attempt per run, across both sweeps
    assert sorted(p.name for p in (out / "runs").iterdir()) == names  # no lock or temporary left behind
    assert not (out / ".sweep.lock").exists() and state["kind"] == "collapse-lab-sweep"
    assert yaml.safe_load(grid.read_text())["name"] == state["name"]


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited already
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_the_parent_of_a_jobs_2_sweep_ends_its_workers(grid, tmp_path):
    out = tmp_path / "sw"
    parent = subprocess.Popen([sys.executable, "-c", SWEEP, str(grid), str(out), "2", "lock_fixtures:sleepy_train"],
                              env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(out.glob("worker-*"))) < 2:
        assert time.monotonic() < deadline and parent.poll() is None, "workers did not start"
        time.sleep(0.1)
    workers = [int(p.read_text()) for p in out.glob("worker-*")]
    assert all(_alive(pid) for pid in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)
    # the runs they held are free again: a new sweep takes them over
    assert not any(is_locked(run_lock_path(p)) for p in (out / "runs").iterdir() if p.is_dir())


def test_two_real_sweeps_on_one_directory_leave_complete_runs_with_all_their_files(tmp_path):
    """The issue's symptom with the real trainer: runs 'complete' without checkpoints or metrics.csv."""
    from train_fixtures import make_dataset

    data = make_dataset(tmp_path, rows=2000)
    grid = tmp_path / "real.yaml"
    grid.write_text(yaml.safe_dump({"name": "real", "base": {
        "dataset": str(data), "hidden_units": [8], "embedding_dim": 4, "max_epochs": 1, "probe_rows": 32,
        "num_threads": 1}, "grid": {"n": [1, 2], "seed": [1, 2]}}))
    out, go = tmp_path / "sw", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", SWEEP, str(grid), str(out), "1", DEFAULT_TRAINER, str(go)],
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    assert [p.stdout.readline().strip() for p in procs] == ["ready", "ready"]
    go.touch()
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    print("trained/skipped/failed per sweep:", [r[0].split() for r in results])
    runs, _ = _record(out)
    assert len(runs) == 4 and all(r["status"] == "complete" for r in runs.values())
    for name in runs:
        run = out / "runs" / name
        files = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}
        assert {"manifest.json", "metrics.csv", "checkpoints/best/model.safetensors",
                "checkpoints/last/model.safetensors", "checkpoints/last/trainer_state.pt"} <= files
        assert json.loads((run / "manifest.json").read_text())["status"] == "complete"
        log = (run / "train.log").read_text()
        assert log.count("INFO training ") == 1 and "resuming" not in log  # trained exactly once
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(runs)


def test_a_sweep_resumes_an_interrupted_run_whose_lock_is_free(tmp_path):
    """A run left ``running`` by a killed process (lock free) continues from its last epoch, not from scratch."""
    from train_fixtures import make_dataset

    from collapse_lab.sweep.runner import plan_sweep
    from collapse_lab.training.api import train

    data = make_dataset(tmp_path, rows=2000)
    grid = tmp_path / "one.yaml"
    grid.write_text(yaml.safe_dump({"name": "one", "base": {
        "dataset": str(data), "hidden_units": [8], "embedding_dim": 4, "max_epochs": 2, "probe_rows": 32,
        "num_threads": 1}, "grid": {"n": [2]}}))
    out = tmp_path / "sw"
    _, (point,), _ = plan_sweep(grid, out)
    run_dir = out / "runs" / point.name

    def stop(event, info):
        if event == "epoch_end":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(point.config, run_dir, device="cpu", console=False, callbacks=[stop])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (run_dir / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))  # as after kill -9
    report = run_sweep(grid, out_dir=out, device="cpu", progress=False)
    assert report.completed == [point.name] and run_status(run_dir) == "complete"
    log = (run_dir / "train.log").read_text()
    assert "resuming" in log and "after epoch 1" in log and log.count("INFO training ") == 1
