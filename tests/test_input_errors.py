"""Issue 12 items 5, 7, 8: inputs that used to raise tracebacks, be accepted, or give unhelpful messages.

Every case goes through the CLI in-process and must end with exit code 2, one ``error:`` line naming the file
(or config key) and saying what was expected, with nothing left behind.
"""

from __future__ import annotations

import gzip
import os
import pickle

import numpy as np
import pytest
import torch
from data_fixtures import GOOD, HEADER, write_toy_spec

from collapse_lab.cli import main
from collapse_lab.errors import UserError


def write_spec(tmp_path, train_text=None, header=HEADER, rows=GOOD, **overrides):
    for name in ("train", "valid", "test"):
        (tmp_path / f"{name}.csv").write_text("\n".join([header, *rows]) + "\n")
    if train_text is not None:
        (tmp_path / "train.csv").write_bytes(train_text)
    return write_toy_spec(tmp_path, **overrides)


def fails(capsys, argv, *expected, leftovers=None):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert "\x1b" not in err and "\r" not in err, err
    for text in expected:
        assert text in err, err
    if leftovers is not None:
        assert not leftovers.exists() or not any(leftovers.iterdir()), list(leftovers.iterdir())
    return err


def prepare_fails(tmp_path, capsys, spec, *expected):
    root = tmp_path / "root"
    return fails(capsys, ["data", "prepare", str(spec), "--data-root", str(root)], *expected, leftovers=root)


# ---- item 5: tracebacks -------------------------------------------------------------------------------------


def test_truncated_gzip_csv(tmp_path, capsys):
    blob = gzip.compress(("\n".join([HEADER, *GOOD * 200]) + "\n").encode())
    (tmp_path / "cut.csv.gz").write_bytes(blob[: len(blob) // 2])
    spec = write_spec(tmp_path, train_data=str(tmp_path / "cut.csv.gz"))
    prepare_fails(tmp_path, capsys, spec, f"{tmp_path / 'cut.csv.gz'}: ", "gzip")


def test_non_gzip_bytes_named_csv_gz(tmp_path, capsys):
    (tmp_path / "plain.csv.gz").write_text("\n".join([HEADER, *GOOD]) + "\n")
    spec = write_spec(tmp_path, test_data=str(tmp_path / "plain.csv.gz"))
    prepare_fails(tmp_path, capsys, spec, f"{tmp_path / 'plain.csv.gz'}: not a readable gzip file")


@pytest.mark.parametrize("key, value, message", [
    ("sep", "", "sep must be a single character"),
    ("sep", ";;", "sep must be a single character"),
    ("min_categr_count", True, "min_categr_count must be a positive integer, got True"),
])
def test_bad_spec_values(tmp_path, capsys, key, value, message):
    spec = write_spec(tmp_path, **{key: value})
    prepare_fails(tmp_path, capsys, spec, f"{spec}: ", message)


@pytest.mark.parametrize("column, message", [
    ({"name": "C1", "type": "sequence", "splitter": ""}, "splitter must be a non-empty string"),
    ({"name": "C1", "type": "sequence", "max_len": True}, "max_len must be a positive integer, got True"),
    ({"name": "I1", "type": "numeric", "fill_na": "abc"}, "fill_na of a float column must be a finite number"),
    ({"name": "I1", "type": "numeric", "fill_na": float("inf")}, "fill_na of a float column must be a finite"),
])
def test_bad_column_values(tmp_path, capsys, column, message):
    spec = write_spec(tmp_path, feature_cols=[column])
    prepare_fails(tmp_path, capsys, spec, f"{spec}: feature_cols[0]", message)


def test_carriage_return_inside_the_header(tmp_path, capsys):
    spec = write_spec(tmp_path, train_text=b"label,I\r1,C1\n1,3,a\n")
    prepare_fails(tmp_path, capsys, spec, f"{tmp_path / 'train.csv'}: line 1: carriage return inside the header")


def test_crlf_header_is_fine(tmp_path, capsys):
    spec = write_spec(tmp_path, train_text=b"label,I1,C1\r\n1,3,a\r\n0,4,b\r\n")
    main(["data", "prepare", str(spec), "--data-root", str(tmp_path / "root")])
    assert "prepared" in capsys.readouterr().out


def test_header_field_over_the_csv_limit(tmp_path, capsys):
    spec = write_spec(tmp_path, train_text=("label,I1,C1," + "x" * (200 * 1024) + "\n1,3,a,b\n").encode())
    prepare_fails(tmp_path, capsys, spec, f"{tmp_path / 'train.csv'}: line 1: unreadable header")


def test_header_without_line_end(tmp_path, capsys):
    spec = write_spec(tmp_path, train_text=b"\0" * (3 << 20))
    prepare_fails(tmp_path, capsys, spec, f"{tmp_path / 'train.csv'}: line 1: no end of line in the first 1 MiB")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_device_as_data_file(tmp_path, capsys):
    spec = write_spec(tmp_path, test_data="/dev/zero")
    prepare_fails(tmp_path, capsys, spec, "/dev/zero: not a regular file")


def test_yaml_parse_error_in_an_override(capsys):
    fails(capsys, ["train", "hidden_units=[32,"], "override 'hidden_units=[32,': cannot parse the value as YAML")


def test_empty_trainer_state_is_a_user_error(tmp_path):
    from collapse_lab.io.checkpoint import load_trainer_state

    (tmp_path / "trainer_state.pt").write_bytes(b"")
    with pytest.raises(UserError, match="trainer_state.pt: empty file"):
        load_trainer_state(tmp_path / "trainer_state.pt")
    (tmp_path / "trainer_state.pt").write_bytes(b"PK\x03\x04")  # a zip header and nothing else
    with pytest.raises(UserError, match="trainer_state.pt: not a readable trainer state"):
        load_trainer_state(tmp_path / "trainer_state.pt")


TAUS = [("-1", "tau must be >= 0, got -1.0"), ("nan", "tau must be a finite number, got nan"),
        ("inf", "tau must be a finite number, got inf")]


@pytest.mark.parametrize("tau, message", TAUS)
def test_figures_tau_must_be_finite_and_non_negative(tmp_path, capsys, tau, message):
    fails(capsys, ["figures", str(tmp_path), "--tau", tau], message, leftovers=tmp_path)


@pytest.mark.parametrize("tau, message", TAUS)
def test_spectrum_tau_must_be_finite_and_non_negative(tmp_path, capsys, tau, message):
    np.save(tmp_path / "m.npy", np.eye(3))
    fails(capsys, ["spectrum", str(tmp_path / "m.npy"), "--tau", tau], message)
    assert not (tmp_path / "m_spectrum").exists()


# ---- item 7: bad values accepted ----------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["inf", "-inf", "1e400", "Infinity"])
def test_infinite_numbers_in_numeric_columns(tmp_path, capsys, cell):
    spec = write_spec(tmp_path, rows=["1,3,a", f"0,{cell},b"])
    prepare_fails(tmp_path, capsys, spec, f"{tmp_path / 'train.csv'}: line 3, column 'I1': expected a finite number, "
                  f"got {cell!r}")


def test_numbers_beyond_float32_in_numeric_fields(tmp_path, capsys):
    spec = write_spec(tmp_path, rows=["1,3,a", "0,1e300,b"])  # finite in float64, inf once stored as float32
    prepare_fails(tmp_path, capsys, spec, f"{tmp_path / 'train.csv'}: line 3, column 'I1': 1e+300 is beyond the "
                  "float32 range")


def test_numbers_below_the_bucket_range(tmp_path, capsys):
    spec = write_spec(tmp_path, rows=["1,3,a", "0,-1e19,b"],
                      feature_cols=[{"name": "I1", "preprocess": "convert_to_bucket"}])
    prepare_fails(tmp_path, capsys, spec, f"{tmp_path / 'train.csv'}: line 3, column 'I1': -1e+19 is below")


def test_infinite_numbers_in_parquet(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"label": [1.0, 0.0], "I1": [1.0, float("inf")], "C1": ["a", "b"]})
    for name in ("train", "valid", "test"):
        pq.write_table(table, tmp_path / f"{name}.parquet")
    spec = write_spec(tmp_path, **{f"{n}_data": str(tmp_path / f"{n}.parquet") for n in ("train", "valid", "test")})
    prepare_fails(tmp_path, capsys, spec, f"{tmp_path / 'train.parquet'}: row 2, column 'I1': expected a finite")


@pytest.mark.parametrize("override, key", [("lr=.inf", "lr"), ("lr=1e400", "lr"), ("net_dropout=.nan", "net_dropout"),
                                           ("kd_weight=-.inf", "kd_weight"), ("embedding_init_std=.nan",
                                                                              "embedding_init_std")])
def test_non_finite_float_config_keys(capsys, override, key):
    err = fails(capsys, ["train", override], f"config key {key!r}: expected a finite number")
    assert "checkpoints" not in err


def test_matrix_without_rows_is_an_error_naming_the_file(tmp_path, capsys):
    np.save(tmp_path / "empty.npy", np.zeros((0, 5)))
    fails(capsys, ["spectrum", str(tmp_path / "empty.npy")], f"{tmp_path / 'empty.npy'}: ",
          "a matrix needs at least one row and one column, got shape (0, 5)")
    assert not (tmp_path / "empty_spectrum").exists()


# ---- item 8: messages ---------------------------------------------------------------------------------------


def test_matrix_without_columns_names_the_file(tmp_path, capsys):
    np.save(tmp_path / "thin.npy", np.zeros((5, 0)))
    fails(capsys, ["spectrum", str(tmp_path / "thin.npy")], f"{tmp_path / 'thin.npy'}: ", "got shape (5, 0)")


def test_terminal_escapes_in_a_header_are_escaped(tmp_path, capsys):
    spec = write_spec(tmp_path, train_text=b"label,I1,C\x1b[31mX\x07\n1,3,a\n")
    prepare_fails(tmp_path, capsys, spec, "the header has: label, I1, C\\x1b[31mX\\x07")


def test_utf8_bom_is_stripped_from_the_header(tmp_path, capsys):
    spec = write_spec(tmp_path, train_text="\ufefflabel,I1,C1\n1,3,a\n0,4,b\n".encode())
    main(["data", "prepare", str(spec), "--data-root", str(tmp_path / "root")])
    assert "toy: prepared" in capsys.readouterr().out


def test_symlink_loop_is_named(tmp_path, capsys):
    (tmp_path / "a.csv").symlink_to(tmp_path / "b.csv")
    (tmp_path / "b.csv").symlink_to(tmp_path / "a.csv")
    spec = write_spec(tmp_path, valid_data=str(tmp_path / "a.csv"))
    prepare_fails(tmp_path, capsys, spec, f"{tmp_path / 'a.csv'}: symlink loop")
    (tmp_path / "m.npy").symlink_to(tmp_path / "m.npy")
    fails(capsys, ["spectrum", str(tmp_path / "m.npy")], f"{tmp_path / 'm.npy'}: symlink loop")


class Payload:
    """A class the weights-only unpickler must refuse."""


@pytest.mark.parametrize("name", ["trainer_state.pt", "model.pt"])
def test_weights_only_advice_is_not_repeated(tmp_path, name):
    from collapse_lab.io.checkpoint import load_trainer_state
    from collapse_lab.spectral.sources import open_tensor_file

    path = tmp_path / name
    torch.save({"w": torch.ones(2, 2), "obj": Payload()}, path)
    for load in (load_trainer_state, open_tensor_file):
        with pytest.raises(UserError) as exc:
            load(path)
        text = str(exc.value)
        assert str(path) in text and "not a plain tensor checkpoint" in text and "safety" in text
        assert "weights_only=False" not in text and "can still be loaded" not in text and "\x1b" not in text
    path.write_bytes(pickle.dumps({"x": Payload()}, protocol=0))  # legacy raw pickle
    with pytest.raises(UserError, match="not a plain tensor checkpoint"):
        load_trainer_state(path)


def test_huge_values_are_analysed_scaled_without_warnings(tmp_path, capsys, recwarn):
    from collapse_lab.spectral.analysis import analyze

    a = np.random.default_rng(0).normal(size=(64, 6))
    np.save(tmp_path / "plain.npy", a)
    np.save(tmp_path / "huge.npy", np.ldexp(a, 700))  # ~5e210: its Gram overflows float64
    np.save(tmp_path / "tiny.npy", np.ldexp(a, -700))  # ~2e-211: its Gram underflows to zero
    ref = analyze(tmp_path / "plain.npy", baseline_draws=3).set_index("metric")
    sigma = np.linalg.svd(a - a.mean(axis=0), compute_uv=False)
    for name, exponent in (("huge", 700), ("tiny", -700)):
        got = analyze(tmp_path / f"{name}.npy", baseline_draws=3).set_index("metric")
        for metric in ("effective_rank", "information_abundance", "stable_rank", "participation_ratio"):
            assert got.loc[metric, "value"] == pytest.approx(ref.loc[metric, "value"], rel=1e-12)
            assert got.loc[metric, "ratio"] == pytest.approx(ref.loc[metric, "ratio"], rel=1e-9)
        assert got.loc["sv_max", "value"] == pytest.approx(np.ldexp(sigma[0], exponent), rel=1e-9)  # true scale
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_knowledge_abundance_of_a_scaled_weight_uses_the_true_singular_values(tmp_path):
    from collapse_lab.spectral.analysis import analyze

    w = np.diag([8.0, 5.0, 3.0, 1.0]) * 2.0 ** 600  # every σ far above τ = 4
    torch.save({"students.0.layers.0.linear.weight": torch.from_numpy(w)}, tmp_path / "w.pt")
    df = analyze(tmp_path / "w.pt", baseline_draws=2).set_index("metric")
    assert df.loc["knowledge_abundance", "value"] == 1.0
    assert df.loc["sv_max", "value"] == 8.0 * 2.0 ** 600


def test_real_process_prints_one_line_for_a_malformed_non_utf8_row(tmp_path):
    """In a real process (pytest hides 'Exception ignored' reports of pyarrow's row callback)."""
    import subprocess
    import sys

    spec = write_spec(tmp_path, train_text=b"label,I1,C1\n1,3,a\n\x00\x800,0\n\x1b[2J0,4,b\n")
    proc = subprocess.run([sys.executable, "-m", "collapse_lab", "data", "prepare", str(spec), "--data-root",
                           str(tmp_path / "root")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {tmp_path / 'train.csv'}: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "\x1b" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert not (tmp_path / "root").exists() or not any((tmp_path / "root").iterdir())


@pytest.mark.parametrize("argv, what", [
    (lambda p: ["data", "prepare", str(p), "--data-root", str(p.parent / "root")], "YAML spec file"),
    (lambda p: ["train", "--config", str(p)], "YAML config file"),
    (lambda p: ["sweep", str(p), "--out", str(p.parent / "sweep")], "YAML grid file"),
])
def test_yaml_files_that_are_not_utf8(tmp_path, capsys, argv, what):
    path = tmp_path / "file.yaml"
    path.write_bytes(b"dataset_id: caf\xe9\n")  # Latin-1
    fails(capsys, argv(path), f"{path}: not UTF-8 text (at byte offset 15); expected a {what}")


def test_spec_symlink_loop_is_named(tmp_path, capsys):
    (tmp_path / "spec.yaml").symlink_to(tmp_path / "spec.yaml")
    fails(capsys, ["data", "prepare", str(tmp_path / "spec.yaml")], f"{tmp_path / 'spec.yaml'}: symlink loop")


def test_damaged_run_manifest_on_resume(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_bytes(b'{"kind": "collapse-lab-run", "x": "\xff"}')
    fails(capsys, ["train", "--out", str(run), "--resume"], f"{run / 'manifest.json'}: not UTF-8 text")


def test_torch_file_with_a_damaged_zip_end_record(tmp_path):
    from collapse_lab.spectral.sources import open_tensor_file

    torch.save({"w": torch.ones(2, 2)}, tmp_path / "m.pt")
    blob = bytearray((tmp_path / "m.pt").read_bytes())
    locator = blob.rfind(b"PK\x06\x07")  # zip64 end-record locator: claim the archive spans several disks
    assert locator > 0
    blob[locator + 4:locator + 8] = b"\x01\x00\x00\x00"
    (tmp_path / "m.pt").write_bytes(bytes(blob))
    with pytest.raises(UserError, match="m.pt: not a readable torch checkpoint"):
        open_tensor_file(tmp_path / "m.pt")
