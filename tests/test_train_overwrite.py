"""``train --overwrite`` (issue 12 item 4): only a collapse-lab run is replaced, and only once the new run is
complete; a failing or killed new run leaves the old run as it was."""

from __future__ import annotations

import json

import pytest
from kill_fixtures import start_training
from train_fixtures import make_dataset, tiny_config

import collapse_lab.io.rundir as rundir
from collapse_lab.cli import main
from collapse_lab.errors import UserError
from collapse_lab.io.rundir import recover_run_dir, staging_dir, swap_in
from collapse_lab.training.api import train

CFG = {"method": "kd", "n": 2, "max_epochs": 2, "probe_rows": 32}


class Interrupt(Exception):
    """A simulated interruption."""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data"), rows=2000)


def snapshot(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture()
def old_run(dataset, tmp_path):
    out = tmp_path / "runs" / "a"
    train(tiny_config(dataset, **CFG), out, device="cpu", console=False)
    return out, snapshot(out)


def test_a_folder_with_someone_elses_manifest_json_is_never_deleted(dataset, tmp_path, capsys):
    app = tmp_path / "webapp"
    app.mkdir()
    (app / "manifest.json").write_text('{"name": "My App", "icons": []}')
    (app / "index.html").write_text("<html></html>")
    with pytest.raises(SystemExit) as exc:
        main(["train", f"dataset={dataset}", "hidden_units=[8]", "max_epochs=1", "--out", str(app), "--overwrite",
              "--device", "cpu"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert f"{app}: exists and is not a collapse-lab run directory" in err and "refusing to overwrite" in err
    assert sorted(p.name for p in app.iterdir()) == ["index.html", "manifest.json"]


def test_a_failing_new_run_leaves_the_old_run_intact(dataset, old_run):
    out, before = old_run

    def fail(event, info):
        if event == "epoch_end":
            raise Interrupt("the new run dies")

    with pytest.raises(Interrupt):
        train(tiny_config(dataset, **CFG, seed=7), out, overwrite=True, device="cpu", console=False,
              callbacks=[fail])
    assert snapshot(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["a"]  # no staging directory or lock left


def test_a_successful_overwrite_replaces_the_run_only_at_the_end(dataset, old_run):
    out, before = old_run
    seen = []

    def look(event, info):  # while the new run trains, the old one is still complete in place
        if event == "epoch_end":
            seen.append(json.loads((out / "manifest.json").read_text())["config"]["seed"])

    result = train(tiny_config(dataset, **CFG, seed=7), out, overwrite=True, device="cpu", console=False,
                   callbacks=[look])
    assert seen == [2024, 2024] and result.run_dir == out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["config"]["seed"] == 7
    assert snapshot(out) != before and sorted(p.name for p in out.parent.iterdir()) == ["a"]
    assert "training " + str(out) in (out / "train.log").read_text()  # logs name the final directory


def test_a_killed_new_run_leaves_the_old_run_intact_and_its_staging_is_cleaned_next_time(dataset, old_run):
    out, before = old_run
    proc, conn = start_training(tiny_config(dataset, **CFG, seed=7), out, overwrite=True, delay=0.01)
    while conn.recv() != "pair":  # the new run has finished an epoch in its staging directory
        pass
    proc.kill()
    proc.join()
    assert snapshot(out) == before
    assert any(".staging-" in p.name for p in out.parent.iterdir())  # what the killed process left
    train(tiny_config(dataset, **CFG), out, resume=True, device="cpu", console=False)  # complete: a no-op read
    train(tiny_config(dataset, **CFG, seed=7), out, overwrite=True, device="cpu", console=False)
    assert sorted(p.name for p in out.parent.iterdir()) == ["a"]


def test_swap_interrupted_between_the_renames_restores_the_old_run(tmp_path, monkeypatch):
    out = tmp_path / "a"
    out.mkdir()
    (out / "manifest.json").write_text('{"kind": "collapse-lab-run", "v": "old"}')
    staged = staging_dir(out)
    (staged / "manifest.json").write_text('{"kind": "collapse-lab-run", "v": "new"}')
    real_replace = rundir.os.replace

    def crash_before_the_new_run_lands(src, dst):
        if str(dst) == str(out.absolute()):
            raise Interrupt
        real_replace(src, dst)

    monkeypatch.setattr(rundir.os, "replace", crash_before_the_new_run_lands)
    with pytest.raises(Interrupt):
        swap_in(staged, out)
    monkeypatch.undo()
    assert not out.exists()
    recover_run_dir(out)
    assert json.loads((out / "manifest.json").read_text())["v"] == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_recover_leaves_the_staging_of_a_run_with_a_longer_name_alone(tmp_path):
    theirs = staging_dir(tmp_path / "a.b")  # ".a.b.staging-XXXX.tmp" also matches ".a.*"
    mine = staging_dir(tmp_path / "a")
    recover_run_dir(tmp_path / "a")
    assert theirs.exists() and not mine.exists()


def test_overwrite_and_resume_exclude_each_other(dataset, tmp_path):
    with pytest.raises(UserError, match="exclude each other"):
        train(tiny_config(dataset, **CFG), tmp_path / "x", resume=True, overwrite=True, device="cpu", console=False)


def test_a_symlinked_run_directory_is_overwritten_on_its_own_disk_and_stays_a_link(dataset, tmp_path):
    """Runs kept on another disk: each overwrite replaces the link's target; the link, and nothing else, stays."""
    target, link = tmp_path / "disk2" / "a", tmp_path / "runs" / "a"
    link.parent.mkdir()
    train(tiny_config(dataset, **CFG), target, device="cpu", console=False)
    link.symlink_to(target, target_is_directory=True)
    for seed in (7, 8):  # the second swap used to fail on the link moved aside by the first
        train(tiny_config(dataset, **CFG, seed=seed), link, overwrite=True, device="cpu", console=False)
        assert link.is_symlink() and link.resolve() == target.resolve()
        assert json.loads((target / "manifest.json").read_text())["config"]["seed"] == seed
        assert json.loads((target / "manifest.json").read_text())["status"] == "complete"
        assert sorted(p.name for p in link.parent.iterdir() if not p.name.endswith(".lock")) == ["a"]
        assert sorted(p.name for p in target.parent.iterdir()) == ["a"]


def test_recover_unlinks_a_link_left_aside_and_never_deletes_through_it(tmp_path):
    """An older version moved a symlinked run aside as ``.<name>.old``: recovery unlinks it, the target's files
    (and the complete run now in place) stay."""
    elsewhere = tmp_path / "disk2" / "a"
    elsewhere.mkdir(parents=True)
    (elsewhere / "manifest.json").write_text('{"kind": "collapse-lab-run", "v": "old"}')
    out = tmp_path / "runs" / "a"
    out.mkdir(parents=True)
    (out / "manifest.json").write_text('{"kind": "collapse-lab-run", "v": "new"}')
    (out.parent / ".a.old").symlink_to(elsewhere, target_is_directory=True)
    recover_run_dir(out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["a"]
    assert json.loads((out / "manifest.json").read_text())["v"] == "new"
    assert (elsewhere / "manifest.json").exists()
    staged = staging_dir(out)
    (staged / "manifest.json").write_text('{"kind": "collapse-lab-run", "v": "newer"}')
    (out.parent / ".a.old").symlink_to(elsewhere, target_is_directory=True)
    swap_in(staged, out)  # used to raise: rmtree cannot remove a link
    assert json.loads((out / "manifest.json").read_text())["v"] == "newer" and (elsewhere / "manifest.json").exists()


def test_a_dangling_run_directory_link_is_a_one_line_error(dataset, tmp_path):
    link = tmp_path / "runs" / "a"
    link.parent.mkdir()
    link.symlink_to(tmp_path / "unmounted" / "a", target_is_directory=True)
    with pytest.raises(UserError, match=r"runs/a: run directory is a symbolic link to .*unmounted/a, which is not "
                                        r"an existing directory"):
        train(tiny_config(dataset, **CFG), link, device="cpu", console=False)
    assert not (tmp_path / "unmounted").exists()
