"""Bad input: one line naming file/line/column (or key), exit code 2, no traceback, nothing left behind."""

from __future__ import annotations

import pytest
from data_fixtures import GOOD, HEADER, write_toy_spec

from collapse_lab.cli import main


def setup_dataset(tmp_path, train=GOOD, valid=GOOD, test=GOOD, header=HEADER, **overrides):
    for name, rows in (("train", train), ("valid", valid), ("test", test)):
        if rows is not None:
            (tmp_path / f"{name}.csv").write_text("\n".join([header, *rows]) + "\n")
    return write_toy_spec(tmp_path, **overrides)


def run_bad(tmp_path, capsys, spec_path):
    root = tmp_path / "root"
    with pytest.raises(SystemExit) as exc:
        main(["data", "prepare", str(spec_path), "--data-root", str(root)])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not root.exists() or list(root.iterdir()) == []  # nothing half-written
    return err.strip()


def test_good_input_prepares(tmp_path, capsys):
    main(["data", "prepare", str(setup_dataset(tmp_path)), "--data-root", str(tmp_path / "root")])
    assert "toy: prepared in" in capsys.readouterr().out
    assert (tmp_path / "root" / "toy" / "feature_map.json").exists()


def test_missing_file(tmp_path, capsys):
    err = run_bad(tmp_path, capsys, setup_dataset(tmp_path, test=None))
    assert f"{tmp_path / 'test.csv'}: file not found" in err


def test_missing_column(tmp_path, capsys):
    err = run_bad(tmp_path, capsys, setup_dataset(tmp_path, header="label,I1,C2"))
    assert f"{tmp_path / 'train.csv'}: line 1: column 'C1' not found" in err and "label, I1, C2" in err


@pytest.mark.parametrize("row, got", [("0,1,b,extra", 4), ("0,1", 2)])
def test_wrong_column_count(tmp_path, capsys, row, got):
    err = run_bad(tmp_path, capsys, setup_dataset(tmp_path, valid=GOOD + [row]))
    assert f"{tmp_path / 'valid.csv'}: line 5: expected 3 columns, got {got}" in err


@pytest.mark.parametrize("label, message", [
    ("", "label is missing or NaN (got a missing value)"),
    ("nan", "label is missing or NaN (got 'nan')"),
    ("2", "expected a label 0 or 1, got '2'"),
    ("yes", "expected a number, got 'yes'"),
])
def test_bad_labels(tmp_path, capsys, label, message):
    err = run_bad(tmp_path, capsys, setup_dataset(tmp_path, train=GOOD + [f"{label},1,a"]))
    assert f"{tmp_path / 'train.csv'}: line 5, column 'label': {message}" in err


@pytest.mark.parametrize("split", ["train", "test"])  # train fails in pass 1, test only while encoding (pass 2)
def test_non_numeric_value_in_numeric_field(tmp_path, capsys, split):
    err = run_bad(tmp_path, capsys, setup_dataset(tmp_path, **{split: ["1,3,a", "0,abc,b"]}))
    assert f"{tmp_path / (split + '.csv')}: line 3, column 'I1': expected a number, got 'abc'" in err


def test_empty_split(tmp_path, capsys):
    err = run_bad(tmp_path, capsys, setup_dataset(tmp_path, valid=[]))
    assert f"{tmp_path / 'valid.csv'}: no data rows; the valid split must not be empty" in err


def test_empty_file(tmp_path, capsys):
    spec = setup_dataset(tmp_path)
    (tmp_path / "train.csv").write_text("")
    assert "line 1: empty file" in run_bad(tmp_path, capsys, spec)


def test_unknown_spec_keys_list_the_valid_ones(tmp_path, capsys):
    err = run_bad(tmp_path, capsys, setup_dataset(tmp_path, min_count=3))
    assert "unknown key 'min_count'; valid keys: dataset_id," in err and "min_categr_count" in err
    spec = setup_dataset(tmp_path, feature_cols=[{"name": "C1", "type": "categorical", "splitr": "|"}])
    err = run_bad(tmp_path, capsys, spec)
    assert "feature_cols[0] (C1): unknown key 'splitr'" not in err  # reported before expansion, by position
    assert "feature_cols[0]: unknown key 'splitr'; valid keys: name, active" in err


def test_bad_types_and_yaml(tmp_path, capsys):
    spec = setup_dataset(tmp_path, feature_cols=[{"name": "C1", "type": "meta"}])
    assert "type 'meta' is not supported; valid types: categorical, numeric, sequence" in run_bad(
        tmp_path, capsys, spec)
    (tmp_path / "broken.yaml").write_text("toy:\n  train_data: [unclosed\n")
    assert "broken.yaml: line 3, column 1: invalid YAML" in run_bad(tmp_path, capsys, tmp_path / "broken.yaml")


def test_unknown_dataset_name_lists_builtins_and_presets(tmp_path, capsys):
    err = run_bad(tmp_path, capsys, "no-such-dataset")
    assert "unknown dataset 'no-such-dataset'" in err and "synthetic, movielens-100k" in err and "Criteo_x4" in err
    assert "spec file not found" in run_bad(tmp_path, capsys, tmp_path / "missing.yaml")


def test_info_on_unprepared_dataset(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["data", "info", "nothing-here", "--data-root", str(tmp_path)])
    assert exc.value.code == 2
    assert "is not prepared" in capsys.readouterr().err
