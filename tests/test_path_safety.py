"""User-given names and recorded paths never lead outside their root (issue 12 item 1): dataset_id, --dataset-id,
sweep name, spectrum --checkpoint and the checkpoint/probe paths of a run manifest."""

from __future__ import annotations

import json

import pytest
import yaml

from collapse_lab.cli import main
from collapse_lab.errors import UserError
from collapse_lab.io.paths import check_name, child, inside
from collapse_lab.sweep.runner import plan_sweep

HEADER = "label,I1,C1"
ROWS = ["1,3,a", "0,4,b", "1,,a"]


def write_spec(tmp_path, dataset_id, fuxictr=False):
    for name in ("train", "valid", "test"):
        (tmp_path / f"{name}.csv").write_text("\n".join([HEADER, *ROWS]) + "\n")
    body = {"train_data": str(tmp_path / "train.csv"), "valid_data": str(tmp_path / "valid.csv"),
            "test_data": str(tmp_path / "test.csv"),
            "feature_cols": [{"name": "I1", "type": "numeric", "dtype": "float"},
                             {"name": "C1", "type": "categorical", "dtype": "str"}],
            "label_col": {"name": "label", "dtype": "float"}}
    spec = {dataset_id: body} if fuxictr else {"dataset_id": dataset_id, **body}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def victim(tmp_path):
    """A directory beside the data root with a file that must survive every attempt."""
    root = tmp_path / "work" / "root"
    root.mkdir(parents=True)
    target = tmp_path / "work" / "victim"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    (target / "meta.json").write_text('{"dataset_id": "x"}')  # looks prepared-ish: --overwrite would take it
    return root, target


def _refused(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "nested", "fuxictr-key"])
def test_prepare_overwrite_with_a_hostile_dataset_id_deletes_nothing(tmp_path, capsys, victim, kind):
    root, target = victim
    dataset_id = {"dotdot": "../victim", "absolute": str(target), "nested": "a/b", "fuxictr-key": "../victim"}[kind]
    spec = write_spec(tmp_path, dataset_id, fuxictr=kind == "fuxictr-key")
    err = _refused(capsys, ["data", "prepare", str(spec), "--data-root", str(root), "--overwrite"])
    assert f"{spec}: dataset_id {dataset_id!r} is not a safe name" in err
    assert (target / "precious.txt").read_text() == "keep me"
    assert list(root.iterdir()) == []  # nothing written under the root either


def test_dataset_id_option_is_checked_too(tmp_path, capsys, victim):
    root, target = victim
    spec = tmp_path / "multi.yaml"
    write_spec(tmp_path, "x")
    body = yaml.safe_load((tmp_path / "spec.yaml").read_text())
    del body["dataset_id"]
    spec.write_text(yaml.safe_dump({"../victim": body, "other": body}))
    err = _refused(capsys, ["data", "prepare", str(spec), "--data-root", str(root), "--overwrite",
                            "--dataset-id", "../victim"])
    assert "dataset_id '../victim' is not a safe name" in err
    assert (target / "precious.txt").exists()


def test_a_safe_dataset_id_still_prepares(tmp_path, capsys, victim):
    root, _ = victim
    main(["data", "prepare", str(write_spec(tmp_path, "toy.v2_x-1")), "--data-root", str(root)])
    assert (root / "toy.v2_x-1" / "feature_map.json").exists()


def test_a_symlinked_dataset_dir_pointing_outside_is_refused(tmp_path, victim):
    root, target = victim
    (root / "toy").symlink_to(target)
    with pytest.raises(UserError, match="dataset_id resolves outside"):
        child(root, "toy", "dataset_id")


@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a/b", "..", ".hidden", "", "x" * 129, "a..b", "sp ace",
                                  "tab\t", 5, None])
def test_unsafe_names_are_refused(name):
    with pytest.raises(UserError, match="is not a safe name"):
        check_name(name, "sweep name", "grid.yaml")


@pytest.mark.parametrize("name", ["quick", "ml100k-kd-dml-n4", "Criteo_x4", "a.b", "x" * 128, "9"])
def test_safe_names_pass(name):
    assert check_name(name, "sweep name") == name


def test_inside_follows_dotdot_and_accepts_the_root_itself(tmp_path):
    assert inside(tmp_path, tmp_path) == tmp_path
    with pytest.raises(UserError, match="resolves outside"):
        inside(tmp_path / "a", tmp_path / "a" / ".." / "b")


def test_sweep_name_escaping_the_working_directory_is_refused(tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    grid = work / "grid.yaml"
    grid.write_text("name: ../../x\nbase: {dataset: synthetic}\ngrid: {n: [1]}\n")
    err = _refused(capsys, ["sweep", str(grid), "--dry-run"])
    assert f"{grid}: sweep name '../../x' is not a safe name" in err
    with pytest.raises(UserError, match="not a safe name"):
        plan_sweep(grid)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["grid.yaml", "work"]  # nothing written anywhere


@pytest.fixture
def spectral_run(tmp_path):
    """A small run directory (manifest + best checkpoint + probe) and a copy of its weights OUTSIDE it."""
    from spectral_fixtures import make_run

    run = make_run(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.safetensors").write_bytes((run / "checkpoints" / "best" / "model.safetensors").read_bytes())
    return run, outside


@pytest.mark.parametrize("value", ["../outside/model.safetensors", "/tmp/../x", "."])
def test_spectrum_checkpoint_option_is_a_name_never_a_path(spectral_run, capsys, value):
    run, _ = spectral_run
    err = _refused(capsys, ["spectrum", str(run), "--checkpoint", value])
    assert f"--checkpoint {value!r} is not a safe name" in err
    assert not (run / "spectrum").exists()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_spectrum_refuses_a_manifest_checkpoint_path_outside_the_run(spectral_run, capsys, kind):
    run, outside = spectral_run
    manifest = json.loads((run / "manifest.json").read_text())
    value = {"dotdot": "../outside/model.safetensors", "absolute": str(outside / "model.safetensors"),
             "symlink": "checkpoints/linked/model.safetensors"}[kind]
    if kind == "symlink":
        (run / "checkpoints" / "linked").symlink_to(outside)
    manifest["checkpoints"].append({"name": "epoch_0001", "path": value, "epoch": 1, "step": 1})
    (run / "manifest.json").write_text(json.dumps(manifest))
    err = _refused(capsys, ["spectrum", str(run), "--checkpoint", "epoch_0001"])
    assert f"manifest.json: checkpoint 'epoch_0001'.path {value!r} resolves outside the run directory {run}" in err
    assert not (run / "spectrum").exists()
    main(["spectrum", str(run), "--checkpoint", "best", "--json"])  # the entries inside the run still work
    assert json.loads(capsys.readouterr().out)["rows"]


def test_spectrum_refuses_a_probe_path_outside_the_run(spectral_run, capsys):
    run, _ = spectral_run
    manifest = json.loads((run / "manifest.json").read_text())
    (run.parent / "outside" / "probe.safetensors").write_bytes((run / "probe.safetensors").read_bytes())
    manifest["probe"]["path"] = "../outside/probe.safetensors"
    (run / "manifest.json").write_text(json.dumps(manifest))
    err = _refused(capsys, ["spectrum", str(run)])
    assert "manifest.json: probe.path '../outside/probe.safetensors' resolves outside the run directory" in err
