"""Resumable sweeps: skip finished runs, rerun failed/interrupted ones, record errors, executors, CLI."""

from __future__ import annotations

import json
import math
import os

import pytest
from click.testing import CliRunner
from sweep_fixtures import FAKE_TRAINER, fake_grid, write_fake_dataset

from collapse_lab.cli import cli, main
from collapse_lab.errors import UserError
from collapse_lab.io.contract import run_dataset_hash
from collapse_lab.sweep.executor import EXECUTORS, LocalExecutor, make_executor
from collapse_lab.sweep.runner import RunTask, execute_run, run_status, run_sweep

FAKE = FAKE_TRAINER  # shorter at the many call sites
GRID = fake_grid()


@pytest.fixture()
def grid(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(GRID)
    return path


def _calls(sweep_dir):
    path = sweep_dir / "calls.txt"
    return path.read_text().split() if path.exists() else []


def _record(sweep_dir):
    state = json.loads((sweep_dir / "sweep.json").read_text())
    return state, {r["name"]: r for r in state["runs"]}


def test_sweep_trains_every_point_then_skips_finished_runs(grid, tmp_path):
    out = tmp_path / "sw"
    report = run_sweep(grid, out_dir=out, trainer=FAKE, progress=False)
    assert len(report.runs) == 3 and sorted(report.completed) == sorted(report.runs)
    assert not report.skipped and not report.failed
    assert sorted(_calls(out)) == sorted(report.runs)
    for name in report.runs:
        assert run_status(out / "runs" / name) == "complete"
    state, runs = _record(out)
    assert state["kind"] == "collapse-lab-sweep" and state["id"] == report.sweep_id
    assert state["id"].startswith("fake-") and {r["status"] for r in runs.values()} == {"complete"}
    assert all(r["attempts"] == 1 and r["error"] is None for r in runs.values())

    again = run_sweep(grid, out_dir=out, trainer=FAKE, progress=False)
    assert sorted(again.skipped) == sorted(report.runs) and not again.completed
    assert len(_calls(out)) == 3  # nothing was trained a second time
    assert again.sweep_id == report.sweep_id


def test_off_a_terminal_each_finished_run_is_logged_with_an_eta(grid, tmp_path, capsys):
    """progress=None under pytest (stderr is not a terminal): no bar, one line per run instead."""
    report = run_sweep(grid, out_dir=tmp_path / "sw", trainer=FAKE, progress=None)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3
    assert [line.split(" ")[1] for line in lines] == ["[1/3]", "[2/3]", "[3/3]"]
    assert sorted(line.split(" ")[2] for line in lines) == sorted(report.runs)
    assert all(" complete in " in line and "eta" in line for line in lines) and lines[-1].endswith("eta 0 min")
    run_sweep(grid, out_dir=tmp_path / "quiet", trainer=FAKE, progress=False)
    assert capsys.readouterr().err == ""  # progress=False: silent


def test_eta_prices_the_students_left_with_finished_runs_durations():
    from collapse_lab.sweep.runner import RunOutcome, RunTask, _RunLog

    tasks = [RunTask(f"r{n}", {"n": n}, "", "", "cpu") for n in (1, 4, 10)]
    log = _RunLog(tasks, enabled=False, jobs=2)
    assert math.isnan(log.eta())
    log.finished(1, RunOutcome("r4", "complete", 80.0))  # 20 s per student-training
    assert log.eta() == pytest.approx(20.0 * (1 + 10) / 2)  # 11 student-trainings left, two at a time
    log.finished(0, RunOutcome("r1", "complete", 30.0))  # now 110 s for 5 students
    assert log.eta() == pytest.approx(110.0 / 5 * 10 / 2)


def test_failing_run_is_recorded_and_the_sweep_goes_on(grid, tmp_path):
    out = tmp_path / "sw"
    out.mkdir()
    (out / "fail-kdef-n2").write_text("")
    report = run_sweep(grid, out_dir=out, trainer=FAKE, progress=False)
    (failed,) = report.failed
    assert failed.startswith("kdef-mean-n2-")
    assert report.failed[failed] == "RuntimeError: planned failure for kdef n=2"
    assert len(report.completed) == 2
    _, runs = _record(out)
    assert runs[failed]["status"] == "failed" and "planned failure" in runs[failed]["traceback"]

    (out / "fail-kdef-n2").unlink()
    rerun = run_sweep(grid, out_dir=out, trainer=FAKE, progress=False)
    assert rerun.completed == [failed] and len(rerun.skipped) == 2
    _, runs = _record(out)
    assert runs[failed]["status"] == "complete" and runs[failed]["attempts"] == 2 and runs[failed]["error"] is None


def test_interrupted_and_corrupt_runs_are_trained_again(grid, tmp_path):
    out = tmp_path / "sw"
    first = run_sweep(grid, out_dir=out, trainer=FAKE, progress=False)
    a, b = first.runs[0], first.runs[1]
    manifest = out / "runs" / a / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "status": "running"}))
    (out / "runs" / b / "manifest.json").write_text("{not json")
    assert run_status(out / "runs" / a) == "running" and run_status(out / "runs" / b) == "corrupt"
    again = run_sweep(grid, out_dir=out, trainer=FAKE, progress=False)
    assert sorted(again.completed) == sorted([a, b])
    assert again.statuses[a] == "running" and again.statuses[b] == "corrupt"
    assert run_status(out / "runs" / a) == "complete"



def _interrupt(out, name):
    manifest = out / "runs" / name / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "status": "running"}))


def _failing_resume(monkeypatch, scratch_error=None):
    """Patch the fake trainer: resuming raises, training from scratch works (or raises ``scratch_error``)."""
    import sweep_fixtures

    real = sweep_fixtures.fake_train

    def trainer(config, resume=False, **kwargs):
        if resume:
            raise OSError("checkpoints/last/trainer_state.pt is truncated")
        if scratch_error is not None:
            raise scratch_error
        return real(config, resume=resume, **kwargs)

    monkeypatch.setattr(sweep_fixtures, "fake_train", trainer)


def test_a_resume_error_is_kept_when_training_again_from_scratch_works(grid, tmp_path, monkeypatch, capsys):
    out = tmp_path / "sw"
    first = run_sweep(grid, out_dir=out, trainer=FAKE, progress=False)
    name = first.runs[0]
    _interrupt(out, name)
    _failing_resume(monkeypatch)
    again = run_sweep(grid, out_dir=out, trainer=FAKE, progress=None)
    first_error = "OSError: checkpoints/last/trainer_state.pt is truncated"
    assert again.completed == [name] and not again.failed
    assert again.resume_errors == {name: first_error}
    assert run_status(out / "runs" / name) == "complete"
    _, runs = _record(out)
    assert runs[name]["status"] == "complete" and runs[name]["error"] is None
    assert runs[name]["resume_error"] == first_error and "is truncated" in runs[name]["resume_traceback"]
    (entry,) = [e for e in again.to_json()["runs"] if e["name"] == name]
    assert entry["outcome"] == "trained" and entry["resume_error"] == first_error
    (line,) = capsys.readouterr().err.strip().splitlines()  # the log line of the run names it
    assert f"{name} complete from scratch (resuming failed: {first_error}) in " in line

    monkeypatch.undo()  # a later attempt without a resume clears it from the record
    (out / "runs" / name / "manifest.json").unlink()
    run_sweep(grid, out_dir=out, trainer=FAKE, progress=False)
    _, runs = _record(out)
    assert runs[name]["resume_error"] is None and runs[name]["attempts"] == 3


def test_a_run_another_process_finished_clears_the_old_resume_error(grid, tmp_path, monkeypatch):
    """The record of a run found complete (trained by another sweep) keeps no resume error of an earlier attempt:
    it would describe a run that is no longer there."""
    import collapse_lab.sweep.runner as runner

    out = tmp_path / "sw"
    name = run_sweep(grid, out_dir=out, trainer=FAKE, progress=False).runs[0]
    _interrupt(out, name)
    _failing_resume(monkeypatch)
    run_sweep(grid, out_dir=out, trainer=FAKE, progress=False)
    assert _record(out)[1][name]["resume_error"] is not None
    monkeypatch.undo()
    _interrupt(out, name)
    monkeypatch.setattr(runner, "execute_run",
                        lambda task: runner.RunOutcome(task.name, "complete", 0.0, trained=False))
    report = run_sweep(grid, out_dir=out, trainer=FAKE, progress=False)
    assert report.skipped.count(name) == 1 and not report.completed
    run = _record(out)[1][name]
    assert (run["status"], run["error"], run["resume_error"], run["resume_traceback"]) == ("complete", None, None,
                                                                                           None)


def test_both_errors_are_kept_when_training_again_from_scratch_fails_too(grid, tmp_path, monkeypatch):
    out = tmp_path / "sw"
    first = run_sweep(grid, out_dir=out, trainer=FAKE, progress=False)
    name = first.runs[0]
    _interrupt(out, name)
    _failing_resume(monkeypatch, scratch_error=RuntimeError("CUDA out of memory"))
    again = run_sweep(grid, out_dir=out, trainer=FAKE, progress=False)
    first_error = "OSError: checkpoints/last/trainer_state.pt is truncated"
    assert again.failed == {name: f"RuntimeError: CUDA out of memory (when trained again from scratch, after "
                                  f"resuming had failed with {first_error})"}
    assert again.resume_errors == {name: first_error}
    _, runs = _record(out)
    assert runs[name]["status"] == "failed" and runs[name]["error"] == again.failed[name]
    assert runs[name]["resume_error"] == first_error
    assert "CUDA out of memory" in runs[name]["traceback"] and "is truncated" in runs[name]["resume_traceback"]


def test_command_line_axes_extend_the_sweep_record(grid, tmp_path):
    out = tmp_path / "sw"
    first = run_sweep(grid, out_dir=out, trainer=FAKE, progress=False)
    more = run_sweep(grid, out_dir=out, overrides=["seed=2024,7"], trainer=FAKE, progress=False)
    assert len(more.runs) == 6 and len(more.skipped) == 3  # the default seed is 2024: those runs exist
    state, runs = _record(out)
    assert set(first.runs) < set(runs) and len(runs) == 6
    assert state["id"] == more.sweep_id != first.sweep_id


def test_dry_run_writes_nothing(grid, tmp_path):
    out = tmp_path / "sw"
    report = run_sweep(grid, out_dir=out, trainer=FAKE, dry_run=True)
    assert set(report.statuses.values()) == {"missing"} and not out.exists()


def test_process_pool_executor_runs_tasks_in_spawned_workers(grid, tmp_path):
    out = tmp_path / "sw"
    (tmp_path / "sw").mkdir()
    (out / "fail-vanilla-n1").write_text("")
    report = run_sweep(grid, out_dir=out, trainer=FAKE, jobs=2, progress=False)
    assert len(report.completed) == 2 and len(report.failed) == 1
    state, _ = _record(out)
    assert state["executor"] == {"executor": "LocalExecutor", "jobs": 2, "threads": max(1, (os.cpu_count() or 1) // 2)}


def test_local_executor_reports_exceptions_as_outcomes():
    outcomes = dict(LocalExecutor(jobs=1).run(int, ["1", "x", "3"]))
    assert outcomes[0] == 1 and outcomes[2] == 3 and isinstance(outcomes[1], ValueError)


def test_executor_registry_and_bad_jobs():
    assert EXECUTORS.names() == ["local", "ray"]
    with pytest.raises(UserError, match="unknown executor 'dask'; valid: local, ray"):
        make_executor("dask")
    with pytest.raises(UserError, match="--jobs must be at least 1, got 0"):
        make_executor("local", jobs=0)


def test_cli_dry_run_lists_runs(grid, tmp_path):
    result = CliRunner().invoke(cli, ["sweep", str(grid), "--out", str(tmp_path / "sw"), "--dry-run", "n=2"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("missing   vanilla-mean-n2-s2024-")
    # n=2 leaves the grid's rule {method: kdef, n: 1} nothing to drop: said on stderr, the listing is unchanged
    assert result.stderr.splitlines() == [f"warning: {grid}: exclude rule {{method: kdef, n: 1}} matches no point "
                                          "of the grid"]
    assert lines[-1].startswith("sweep fake-") and "2 runs (2 missing), 2 to train" in lines[-1]
    run_sweep(grid, out_dir=tmp_path / "sw", overrides=["n=2", "method=kdef"], trainer=FAKE, progress=False)
    again = CliRunner().invoke(cli, ["sweep", str(grid), "--out", str(tmp_path / "sw"), "--dry-run", "n=2"])
    assert "2 runs (1 complete, 1 missing), 1 to train" in again.output.strip().splitlines()[-1]


@pytest.mark.parametrize("argv, message", [
    (["n=1,2", "nn=3"], "error: {grid}: unknown config key 'nn' in the command-line grid; valid keys: batch_norm"),
    (["--jobs", "0"], "error: --jobs must be at least 1, got 0"),
    (["n="], "error: grid override 'n=': no values after '='"),
])
def test_cli_bad_input_is_one_line_exit_2(grid, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(grid), "--out", str(tmp_path / "sw"), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(message.format(grid=grid))
    assert not (tmp_path / "sw").exists()


def test_cli_empty_grid_file(tmp_path, capsys):
    path = tmp_path / "empty.yaml"
    path.write_text("name: x\n")
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(path)])
    assert exc.value.code == 2
    assert "the grid is empty" in capsys.readouterr().err


def test_unprepared_dataset_is_caught_before_anything_runs(tmp_path, capsys):
    grid = tmp_path / "g.yaml"
    grid.write_text(f"base: {{dataset: nope, data_root: {tmp_path / 'data'}}}\ngrid: {{n: [1, 2]}}\n")
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(grid), "--out", str(tmp_path / "sw")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: dataset 'nope' is not prepared") and "collapse-lab reproduce" in err
    assert err.count("\n") == 1 and not (tmp_path / "sw").exists()


OLD, NEW = "a" * 64, "b" * 64  # content hashes of two preparations of one dataset


@pytest.fixture()
def data_grid(tmp_path):
    """The fake grid on a dataset ``toy`` prepared under ``tmp_path/data`` (content hash ``OLD``)."""
    write_fake_dataset(tmp_path / "data", "toy", OLD)
    path = tmp_path / "grid.yaml"
    path.write_text(GRID.replace("base: {", f"base: {{dataset: toy, data_root: {tmp_path / 'data'}, "))
    return path


def test_a_run_trained_on_an_older_preparation_of_its_dataset_is_stale_and_trained_again(data_grid, tmp_path):
    out = tmp_path / "sw"
    first = run_sweep(data_grid, out_dir=out, trainer=FAKE, progress=False)
    assert len(first.completed) == 3 and {run_dataset_hash(out / "runs" / n) for n in first.runs} == {OLD}
    write_fake_dataset(tmp_path / "data", "toy", NEW)  # prepared again, e.g. with another sequence pooling

    dry = run_sweep(data_grid, out_dir=out, trainer=FAKE, dry_run=True)
    assert dry.statuses == {n: "stale" for n in first.runs} and not dry.unverified
    assert dry.to_json(dry_run=True)["statuses"] == {"stale": 3} and dry.to_json(dry_run=True)["to_train"] == 3
    assert len(_calls(out)) == 3  # a dry run trains nothing

    again = run_sweep(data_grid, out_dir=out, trainer=FAKE, progress=False)
    assert sorted(again.completed) == sorted(first.runs) and not again.skipped and not again.failed
    assert len(_calls(out)) == 6 and {run_dataset_hash(out / "runs" / n) for n in first.runs} == {NEW}
    assert ", 3 trained (3 stale: trained again on the dataset prepared now), 0 already complete" in \
        again.summary_line()
    _, runs = _record(out)
    assert {(r["status"], r["previous_status"], r["attempts"]) for r in runs.values()} == {("complete", "stale", 2)}

    third = run_sweep(data_grid, out_dir=out, trainer=FAKE, progress=False)
    assert sorted(third.skipped) == sorted(first.runs) and len(_calls(out)) == 6
    assert "stale" not in third.summary_line()


def test_a_stale_run_whose_new_training_fails_keeps_the_old_run(data_grid, tmp_path):
    out = tmp_path / "sw"
    first = run_sweep(data_grid, out_dir=out, trainer=FAKE, progress=False)
    write_fake_dataset(tmp_path / "data", "toy", NEW)
    (out / "fail-vanilla-n1").write_text("")
    again = run_sweep(data_grid, out_dir=out, trainer=FAKE, progress=False)
    [failed] = again.failed
    assert failed.startswith("vanilla-mean-n1-") and len(again.completed) == 2
    assert run_status(out / "runs" / failed) == "complete" and run_dataset_hash(out / "runs" / failed) == OLD
    assert run_sweep(data_grid, out_dir=out, trainer=FAKE, dry_run=True).statuses == {
        n: "stale" if n == failed else "complete" for n in first.runs}


def test_a_complete_run_without_a_recorded_dataset_hash_is_kept_and_flagged(data_grid, tmp_path):
    write_fake_dataset(tmp_path / "data", "toy", None)  # a dataset directory without a content hash
    out = tmp_path / "sw"
    first = run_sweep(data_grid, out_dir=out, trainer=FAKE, progress=False)
    assert {run_dataset_hash(out / "runs" / n) for n in first.runs} == {None}
    write_fake_dataset(tmp_path / "data", "toy", NEW)
    dry = run_sweep(data_grid, out_dir=out, trainer=FAKE, dry_run=True)
    assert set(dry.statuses.values()) == {"complete"} and sorted(dry.unverified) == sorted(first.runs)
    assert all(r["dataset_unverified"] is True for r in dry.to_json(dry_run=True)["runs"])
    result = CliRunner().invoke(cli, ["sweep", str(data_grid), "--out", str(out), "--dry-run"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 0 and len(lines) == 5, result.output
    assert all(line.startswith("complete  ") and line.endswith("(no dataset hash recorded: kept, not checked)")
               for line in lines[:3])
    assert lines[3] == "3 complete runs record no dataset hash (trained before it was recorded, or on a dataset " \
        "without meta.json): kept as complete; delete a run directory to train it again"
    again = run_sweep(data_grid, out_dir=out, trainer=FAKE, progress=False)
    assert sorted(again.skipped) == sorted(first.runs) and len(_calls(out)) == 3


def test_cli_dry_run_shows_stale_runs(data_grid, tmp_path):
    out = tmp_path / "sw"
    run_sweep(data_grid, out_dir=out, overrides=["n=2", "method=kdef"], trainer=FAKE, progress=False)
    write_fake_dataset(tmp_path / "data", "toy", NEW)
    result = CliRunner().invoke(cli, ["sweep", str(data_grid), "--out", str(out), "--dry-run", "n=2"])
    lines = result.stdout.strip().splitlines()
    assert result.exit_code == 0 and lines[0].startswith("missing   vanilla-mean-n2-s2024-"), result.output
    assert lines[1].startswith("stale     kdef-mean-n2-s2024-")
    assert "2 runs (1 missing, 1 stale), 2 to train" in lines[-1]


def test_execute_run_checks_staleness_again_under_the_run_lock(data_grid, tmp_path):
    """Another sweep may have trained the stale run again meanwhile: then it is not trained a second time."""
    out = tmp_path / "sw"
    name = run_sweep(data_grid, out_dir=out, trainer=FAKE, progress=False).runs[0]
    _, runs = _record(out)
    task = RunTask(name, runs[name]["config"], str(out / "runs" / name), FAKE, dataset_hash=OLD)
    assert execute_run(task).trained is False and len(_calls(out)) == 3  # records OLD: up to date
    write_fake_dataset(tmp_path / "data", "toy", NEW)
    outcome = execute_run(RunTask(name, task.config, task.run_dir, FAKE, dataset_hash=NEW))
    assert (outcome.status, outcome.trained) == ("complete", True) and _calls(out)[-1] == name
    assert run_dataset_hash(task.run_dir) == NEW


def test_keep_stale_counts_stale_runs_as_complete_and_results_warn_about_mixed_hashes(data_grid, tmp_path):
    out = tmp_path / "sw"
    first = run_sweep(data_grid, out_dir=out, trainer=FAKE, progress=False)
    write_fake_dataset(tmp_path / "data", "toy", NEW)
    dry = CliRunner().invoke(cli, ["sweep", str(data_grid), "--out", str(out), "--dry-run", "--keep-stale"])
    lines = dry.stdout.strip().splitlines()
    assert dry.exit_code == 0 and all(line.endswith("(kept: --keep-stale)") for line in lines[:3]), dry.output
    assert "3 runs (3 stale), 0 to train" in lines[-1]
    kept = run_sweep(data_grid, out_dir=out, trainer=FAKE, progress=False, keep_stale=True)
    assert sorted(kept.kept_stale) == sorted(kept.skipped) == sorted(first.runs) and not kept.completed
    assert len(_calls(out)) == 3 and "3 already complete (3 stale kept)" in kept.summary_line()
    assert {run_dataset_hash(out / "runs" / n) for n in first.runs} == {OLD}
    # one more seed trains on the dataset prepared now: the results mix two preparations of toy, and say so
    more = run_sweep(data_grid, out_dir=out, overrides=["seed=2024,7"], trainer=FAKE, progress=False,
                     keep_stale=True)
    assert len(more.completed) == 3 and len(more.kept_stale) == 3
    result = CliRunner().invoke(cli, ["results", str(out)])
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("warning:")] == [
        f"warning: dataset toy: the runs record 2 dataset hashes (3 runs: {OLD[:12]}, 3 runs: {NEW[:12]}); they "
        "were trained on different preparations of it"]


def test_a_run_recording_another_hash_than_planned_is_reported_and_not_trained_forever(data_grid, tmp_path,
                                                                                        monkeypatch):
    """Training hashes the data itself; when that disagrees with meta.json the run would be stale after every
    training. The mismatch is reported once, recorded in sweep.json, and the run is kept from then on."""
    import sweep_fixtures

    monkeypatch.setattr(sweep_fixtures, "_prepared_hash", lambda config: "c" * 64)
    out = tmp_path / "sw"
    first = run_sweep(data_grid, out_dir=out, trainer=FAKE, progress=False)
    text = (f"dataset hash mismatch: trained on {'c' * 12}, planned {OLD[:12]} (prepared again meanwhile, or "
            "meta.json disagrees with the data); kept, not trained again")
    assert len(first.completed) == 3 and first.dataset_mismatches == {n: text for n in first.runs}
    _, runs = _record(out)
    assert {json.dumps(r["dataset_mismatch"]) for r in runs.values()} == {
        json.dumps({"planned": OLD, "recorded": "c" * 64})}
    again = run_sweep(data_grid, out_dir=out, trainer=FAKE, progress=False)
    assert len(_calls(out)) == 3 and sorted(again.kept_stale) == sorted(first.runs) and not again.completed
    write_fake_dataset(tmp_path / "data", "toy", NEW)  # prepared again for real: trained again
    assert len(run_sweep(data_grid, out_dir=out, trainer=FAKE, progress=False).completed) == 3
