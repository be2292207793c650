"""The Ray executor on a local two-worker Ray instance: the same runs, metrics and sweep.json as the local executor,
shared filesystem and copy-back, resumption, resources and errors (README "Running on a cluster")."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the Ray executor needs the distributed extra (make install has it)")

from click.testing import CliRunner  # noqa: E402

from collapse_lab.cli import cli  # noqa: E402
from collapse_lab.errors import UserError  # noqa: E402
from collapse_lab.sweep.executor import LocalExecutor, make_executor  # noqa: E402
from collapse_lab.sweep.ray_executor import RayExecutor  # noqa: E402
from collapse_lab.sweep.runner import run_status, run_sweep  # noqa: E402

GRID = """
name: raytiny
base: {{dataset: {dataset}, hidden_units: [16, 16], embedding_dim: 4, batch_size: 256, lr: 0.01, max_epochs: 2,
        probe_rows: 64}}
grid:
  method: [vanilla, kdef]
  n: [1, 2]
exclude:
  - {{method: kdef, n: 1}}
"""


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance with two one-CPU workers (started once for this module)."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, cluster):
    """A synthetic dataset, a 3-run grid, and that grid trained once with ``--executor local`` (the reference)."""
    from train_fixtures import make_dataset

    root = tmp_path_factory.mktemp("ray")
    dataset = make_dataset(root, rows=2000)
    grid = root / "grid.yaml"
    grid.write_text(GRID.format(dataset=dataset))
    local = run_sweep(grid, out_dir=root / "local", executor=LocalExecutor(jobs=1, threads=1), progress=False)
    assert len(local.completed) == 3 and not local.failed
    return {"root": root, "grid": grid, "local": root / "local", "runs": sorted(local.runs)}


def _runs(sweep_dir: Path):
    return sorted(p.name for p in (sweep_dir / "runs").iterdir() if not p.name.startswith("."))


def _record(sweep_dir: Path):
    state = json.loads((sweep_dir / "sweep.json").read_text())
    return state, {r["name"]: r for r in state["runs"]}


def _assert_same_as_local(setup, sweep_dir: Path) -> None:
    assert _runs(sweep_dir) == setup["runs"]
    for name in setup["runs"]:
        assert run_status(sweep_dir / "runs" / name) == "complete"
        ours = (sweep_dir / "runs" / name / "metrics.csv").read_text()
        assert ours == (setup["local"] / "runs" / name / "metrics.csv").read_text(), name
        for file in ("config.yaml", "checkpoints/best/model.safetensors"):
            assert (sweep_dir / "runs" / name / file).is_file()


def test_ray_sweep_on_a_shared_filesystem_matches_local_and_resumes(setup):
    out = setup["root"] / "shared"
    executor = RayExecutor(threads=1)
    report = run_sweep(setup["grid"], out_dir=out, executor=executor, progress=False)
    assert sorted(report.completed) == setup["runs"] and not report.failed and not report.skipped
    assert executor.copy_back is False and executor.nodes_without_sweep_dir == []  # one machine: detected shared
    assert executor.jobs == 2  # two one-CPU slots
    _assert_same_as_local(setup, out)
    state, runs = _record(out)
    assert state["executor"] == {"executor": "RayExecutor", "jobs": 2, "threads": 1, "gpus_per_run": 0.0,
                                 "address": None, "copy_back": False}
    assert state["id"] == _record(setup["local"])[0]["id"] == report.sweep_id
    assert all(r["status"] == "complete" and r["attempts"] == 1 and r["error"] is None for r in runs.values())
    assert not list(out.glob("runs/.shared-filesystem-probe-*"))

    stamps = {n: (out / "runs" / n / "metrics.csv").stat().st_mtime_ns for n in setup["runs"]}
    again = run_sweep(setup["grid"], out_dir=out, executor=RayExecutor(threads=1), progress=False)
    assert sorted(again.skipped) == setup["runs"] and not again.completed  # a rerun trains nothing
    assert {n: (out / "runs" / n / "metrics.csv").stat().st_mtime_ns for n in setup["runs"]} == stamps

    import shutil

    lost = setup["runs"][1]
    shutil.rmtree(out / "runs" / lost)
    third = run_sweep(setup["grid"], out_dir=out, executor=RayExecutor(threads=1, jobs=1), progress=False)
    assert third.completed == [lost] and sorted(third.skipped) == sorted(set(setup["runs"]) - {lost})
    _assert_same_as_local(setup, out)
    assert _record(out)[1][lost]["attempts"] == 2


def test_cli_ray_with_copy_back_matches_local(setup):
    """--copy-back: each run trains in a scratch directory on its worker and comes back as a tar archive."""
    out = setup["root"] / "copied"
    result = CliRunner().invoke(cli, ["sweep", str(setup["grid"]), "--out", str(out), "--executor", "ray",
                                      "--threads", "1", "--copy-back"])
    assert result.exit_code == 0, result.output
    assert "3 runs, 3 trained, 0 already complete, 0 failed" in result.output
    _assert_same_as_local(setup, out)
    state, runs = _record(out)
    assert state["executor"]["copy_back"] is True and state["executor"]["executor"] == "RayExecutor"
    assert {r["status"] for r in runs.values()} == {"complete"}
    assert not [p for p in (out / "runs").iterdir() if p.name.startswith(".")]  # no temporaries or locks left
    again = CliRunner().invoke(cli, ["sweep", str(setup["grid"]), "--out", str(out), "--executor", "ray",
                                     "--copy-back"])
    assert "3 runs, 0 trained, 3 already complete, 0 failed" in again.output


def test_ray_executor_yields_task_exceptions_in_completion_order(cluster):
    outcomes = dict(RayExecutor(threads=1, jobs=1).run(int, ["1", "x", "3"]))
    assert outcomes[0] == 1 and outcomes[2] == 3
    assert isinstance(outcomes[1], ValueError) and "invalid literal" in str(outcomes[1])


def test_ray_resources_that_no_node_has_are_a_user_error(cluster, tmp_path):
    with pytest.raises(UserError, match=r"no node of the Ray cluster has the 1 CPU\(s\) and 0.25 GPU\(s\)"):
        RayExecutor(gpus_per_run=0.25).prepare(tmp_path)
    with pytest.raises(UserError, match=r"the 3 CPU\(s\) and 0 GPU\(s\).*the largest has 2 CPUs, 0 GPUs"):
        RayExecutor(threads=3).prepare(tmp_path)


def test_ray_options_and_device(cluster):
    executor = make_executor("ray", jobs=None, threads=2, address=None, gpus_per_run=0.5, copy_back=True)
    assert isinstance(executor, RayExecutor)
    assert (executor.threads, executor.gpus_per_run, executor.requested_copy_back) == (2, 0.5, True)
    assert executor.task_device("auto") == "cuda" and executor.task_device("cpu") == "cpu"
    assert RayExecutor().task_device("auto") == "cpu"  # a run without reserved GPUs never takes one
    for bad in (-0.5, 1.5, float("nan")):
        with pytest.raises(UserError, match="--gpus-per-run must be a fraction in"):
            RayExecutor(gpus_per_run=bad)
    assert RayExecutor(gpus_per_run=2).gpus_per_run == 2.0


def test_an_address_where_nothing_listens_fails_at_once():
    import socket
    import time

    from collapse_lab.sweep.ray_executor import _check_reachable

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(UserError, match=rf"--address 127.0.0.1:{port}: no Ray cluster answers there \(Connection ref"):
        _check_reachable(f"127.0.0.1:{port}")
    assert time.monotonic() - start < 5
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        _check_reachable(f"127.0.0.1:{sock.getsockname()[1]}")  # something listens: left to Ray
    for address in (None, "auto", "ray://head:10001"):
        _check_reachable(address)
