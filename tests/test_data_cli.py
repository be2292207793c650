"""``collapse-lab data list|fetch|prepare|info`` on the built-in synthetic dataset and the presets."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from collapse_lab.cli import cli, main
from collapse_lab.data.api import BUILTINS, preset_names


def test_list_shows_builtins_and_presets_with_descriptions(tmp_path):
    result = CliRunner().invoke(cli, ["data", "list", "--data-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "PREPARED", "DESCRIPTION"]
    names = [line.split()[0] for line in lines[1:]]
    assert names == list(BUILTINS) + preset_names()
    assert {"Criteo_x4", "ML_1M_7_x1", "KDD12_x10", "iPinYou_x1", "KKBox_x1", "Avazu_x1", "Frappe_x1",
            "MovielensLatest_x1"} <= set(names)
    assert all(len(line.split(None, 3)) == 4 for line in lines[1:])  # every entry has a description


def test_prepare_synthetic_info_and_env_data_root(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLLAPSE_LAB_DATA", str(tmp_path))
    main(["data", "prepare", "synthetic"])
    assert f"synthetic: prepared in {tmp_path / 'synthetic'}" in capsys.readouterr().out
    main(["data", "prepare", "synthetic"])
    assert "synthetic: up to date" in capsys.readouterr().out
    main(["data", "info", "synthetic", "--json"])
    info = json.loads(capsys.readouterr().out)
    assert info["rows"] == 20000 and [s["rows"] for s in info["splits"].values()] == [16000, 2000, 2000]
    assert [f["name"] for f in info["fields"]] == [f"C{i}" for i in range(1, 9)]
    assert all(f["vocab_size"] == 102 for f in info["fields"])
    assert 0.5 < info["oracle"]["test"]["auc"] < 1.0
    main(["data", "info", str(tmp_path / "synthetic")])  # a directory works too
    text = capsys.readouterr().out
    assert "oracle AUC" in text and "train" in text and "C8" in text
    listing = CliRunner().invoke(cli, ["data", "list"], env={"COLLAPSE_LAB_DATA": str(tmp_path)}).output
    assert [line.split()[2] for line in listing.splitlines() if line.startswith("synthetic")] == ["yes"]


def test_fetch_messages(tmp_path, capsys):
    main(["data", "fetch", "synthetic", "--data-root", str(tmp_path)])
    assert "generated locally" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["data", "fetch", "Criteo_x4", "--data-root", str(tmp_path)])
    assert exc.value.code == 2 and "is a preset: download its files yourself" in capsys.readouterr().err
