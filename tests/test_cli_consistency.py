"""The CLI behaves the same everywhere: --json on data list / sweep / figures / reproduce, --threads on train,
unknown options reported as click does, and shell completion (README "Shell completion")."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from sweep_fixtures import FAKE_TRAINER, fake_grid, make_fake_sweep

from collapse_lab.cli import cli, main
from collapse_lab.data.api import BUILTINS, preset_names
from collapse_lab.plotting.figures import FIGURES
from collapse_lab.sweep.runner import run_sweep

FAKE = FAKE_TRAINER  # shorter at the many call sites
GRID = fake_grid()
ONE_RUN = """
name: one
base: {{dataset: synthetic, data_root: {data}, hidden_units: [8], embedding_dim: 4, batch_size: 1024, max_epochs: 1,
        probe_rows: 64}}
grid:
  n: [2]
"""


@pytest.fixture()
def grid(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(GRID)
    return path


def test_data_list_json(tmp_path):
    (tmp_path / "synthetic").mkdir()
    (tmp_path / "synthetic" / "feature_map.json").write_text("{}")
    result = CliRunner().invoke(cli, ["data", "list", "--data-root", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == list(BUILTINS) + preset_names()
    assert all(set(r) == {"name", "kind", "prepared", "description"} and r["description"] for r in rows)
    assert [r["name"] for r in rows if r["prepared"]] == ["synthetic"]
    assert {r["kind"] for r in rows} == {"built-in", "preset"}


def test_sweep_dry_run_json_lists_every_status(grid, tmp_path):
    out = tmp_path / "sw"
    (out).mkdir()
    (out / "fail-kdef-n2").touch()
    run_sweep(grid, out_dir=out, trainer=FAKE, progress=False)  # vanilla n1, n2 complete; kdef n2 failed early
    result = CliRunner().invoke(cli, ["sweep", str(grid), "--out", str(out), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["dry_run"] is True and payload["sweep_dir"] == str(out) and payload["sweep_id"].startswith("fake-")
    statuses = {r["name"].split("-s")[0]: r["status"] for r in payload["runs"]}
    assert statuses == {"vanilla-mean-n1": "complete", "vanilla-mean-n2": "complete", "kdef-mean-n2": "missing"}
    assert payload["statuses"] == {"complete": 2, "missing": 1} and payload["to_train"] == 1
    assert all("outcome" not in r for r in payload["runs"])


def test_sweep_report_json_after_a_run(grid, tmp_path):
    out = tmp_path / "sw"
    out.mkdir()
    run_sweep(grid, out_dir=out, overrides=["method=vanilla"], trainer=FAKE, progress=False)
    (out / "fail-kdef-n2").touch()
    report = run_sweep(grid, out_dir=out, trainer=FAKE, progress=False)
    payload = json.loads(json.dumps(report.to_json()))
    outcome = {r["name"].split("-s")[0]: (r["status"], r["outcome"]) for r in payload["runs"]}
    assert outcome == {"vanilla-mean-n1": ("complete", "skipped"), "vanilla-mean-n2": ("complete", "skipped"),
                       "kdef-mean-n2": ("missing", "failed")}
    failed = next(r for r in payload["runs"] if r["outcome"] == "failed")
    assert "planned failure for kdef n=2" in failed["error"]
    assert (payload["trained"], payload["skipped"], payload["failed"]) == (0, 2, 1)


@pytest.mark.parametrize("command", ["sweep", "reproduce"])
def test_unknown_option_is_reported_as_click_does(grid, tmp_path, capsys, command):
    argv = ["sweep", str(grid)] if command == "sweep" else ["reproduce", "--preset", str(grid)]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", str(tmp_path / "sw"), "n=1", "--foo", "--dry-run"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    # click >= 8.2 writes "No such option '--foo'", older releases "No such option: --foo"
    assert re.search(r"No such option:? '?--foo", err) and "grid override" not in err
    assert not (tmp_path / "sw").exists()


def test_overrides_between_options_still_parse(grid, tmp_path):
    result = CliRunner().invoke(cli, ["sweep", str(grid), "lr=1e-3,1e-2", "-j", "1", "--out", str(tmp_path / "sw"),
                                      "n=2", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert len(runs) == 4 and all("-n2-" in r["name"] for r in runs)  # 2 methods x 2 learning rates, n = 2


def test_figures_json(tmp_path):
    sweep = make_fake_sweep(tmp_path / "sweep", seeds=(0,))
    out = tmp_path / "figs"
    result = CliRunner().invoke(cli, ["figures", str(sweep), "--out", str(out), "--only", "fig1,fig3",
                                      "--format", "png", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["out_dir"] == str(out) and payload["sweep_id"].startswith("fake-")
    assert payload["written"] == {"fig1_ensemble_auc": [str(out / "fig1_ensemble_auc.png")],
                                  "fig3_gap": [str(out / "fig3_gap.png")]}
    assert all(Path(p).is_file() for paths in payload["written"].values() for p in paths)
    assert payload["skipped"] == {}


def test_reproduce_json_on_one_real_run(tmp_path):
    grid = tmp_path / "one.yaml"
    grid.write_text(ONE_RUN.format(data=tmp_path / "data"))
    sweep = tmp_path / "sw"
    result = CliRunner().invoke(cli, ["reproduce", "--preset", str(grid), "--out", str(sweep), "--threads", "1",
                                      "--device", "cpu", "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    payload = json.loads(result.stdout)
    assert payload["preset"] == str(grid) and payload["failed"] is False and payload["prepared"] == ["synthetic"]
    (run,) = payload["sweep"]["runs"]
    assert run["status"] == "missing" and run["outcome"] == "trained" and payload["sweep"]["trained"] == 1
    assert (sweep / "runs" / run["name"] / "manifest.json").is_file()
    assert payload["spectra"] == {"analysed": [run["name"]], "already": [], "failed": {}}
    assert payload["results"]["runs"] == 1 and Path(payload["results"]["files"]["results"]).is_file()
    written = payload["figures"]["written"]
    assert set(written) | set(payload["figures"]["skipped"]) == {f.stem for f in FIGURES}
    assert all(Path(p).is_file() for paths in written.values() for p in paths)
    assert set(payload["seconds"]) == {"data", "sweep", "spectra", "results", "figures"}


def test_train_threads_option_sets_and_restores_torch_threads(monkeypatch, capsys):
    import collapse_lab.training.api as api

    seen = {}

    class Result:
        def to_dict(self):
            return {"threads": seen["threads"]}

    def fake_train(items, out_dir, **kwargs):
        seen["threads"] = torch.get_num_threads()
        return Result()

    monkeypatch.setattr(api, "train", fake_train)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        main(["train", "dataset=synthetic", "--threads", "1", "--json"])
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    assert json.loads(capsys.readouterr().out) == {"threads": 1}


def test_train_threads_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "dataset=synthetic", "--threads", "0"])
    assert exc.value.code == 2 and "Invalid value for '--threads'" in capsys.readouterr().err


@pytest.mark.parametrize("shell, marker", [
    ("bash", "complete -o nosort -F _collapse_lab_completion collapse-lab"),
    ("zsh", "compdef _collapse_lab_completion collapse-lab"),
    ("fish", "complete --no-files --command collapse-lab"),
])
def test_completion_script_generates_as_the_readme_says(shell, marker):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"_COLLAPSE_LAB_COMPLETE={shell}_source collapse-lab" in readme
    env = {**os.environ, "_COLLAPSE_LAB_COMPLETE": f"{shell}_source"}
    done = subprocess.run([sys.executable, "-m", "collapse_lab"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert marker in done.stdout


@pytest.mark.parametrize("words, cword, expected", [
    ("collapse-lab spe", 1, "plain,spectrum"),
    ("collapse-lab sweep g.yaml --dry", 3, "plain,--dry-run"),
    ("collapse-lab data li", 2, "plain,list"),
])
def test_bash_completion_completes_commands_and_options(words, cword, expected):
    env = {"_COLLAPSE_LAB_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    result = CliRunner().invoke(cli, [], prog_name="collapse-lab", env=env)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [expected]
