"""Spec-driven preparation: feature map, FuxiCTR min-count/OOV semantics, sequences, numerics, hashing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from collapse_lab.data import reader
from collapse_lab.data.dataset import ProcessedDataset
from collapse_lab.data.feature_map import FeatureMap
from collapse_lab.data.prepare import prepare_spec
from collapse_lab.data.spec import spec_from_dict

HEADER = "label,num,cat,seq,fl"
TRAIN = [  # label, num (raw numeric), cat (min count 2), seq ('^'), fl (dtype float categorical)
    "1,3,a,x^y^z,1",
    "0,,a,x,1.0",
    "1,100,b,,2",
    "0,1.5,a,y^y,2",
    "1,7,b,y^^x,3",
    "0,0,c,,",
    "1,12,,z,1",
]
VALID = ["1,2,z,q^x,9", "0,5,b,y,2"]
TEST = ["1,1e3,c,x^y,1"]


def write_csv(path, rows, header=HEADER):
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def make_spec(tmp_path, fmt="csv", train=TRAIN, **columns):
    for name, rows in (("train", train), ("valid", VALID), ("test", TEST)):
        write_csv(tmp_path / f"{name}.csv", rows)
    if fmt == "parquet":
        import pandas as pd

        for name in ("train", "valid", "test"):
            pd.read_csv(tmp_path / f"{name}.csv", dtype=str, keep_default_na=False, na_values=[""]).to_parquet(
                tmp_path / f"{name}.parquet")
    cols = {"num": {"name": "num", "type": "numeric", "dtype": "float"},
            "cat": {"name": "cat", "type": "categorical", "min_categr_count": 2},
            "seq": {"name": "seq", "type": "sequence", "splitter": "^", "max_len": 2},
            "fl": {"name": "fl", "type": "categorical", "dtype": "float"}}
    cols.update(columns)
    return spec_from_dict({"dataset_id": "toy", "train_data": f"train.{fmt}", "valid_data": f"valid.{fmt}",
                           "test_data": f"test.{fmt}", "feature_cols": [c for c in cols.values() if c],
                           "label_col": {"name": "label", "dtype": "float"}}, base_dir=tmp_path)


@pytest.fixture()
def toy(tmp_path):
    spec = make_spec(tmp_path)
    result = prepare_spec(spec, tmp_path / "out", progress=False)
    return ProcessedDataset(result.path), result


def test_feature_map_layout_and_round_trip(toy, tmp_path):
    ds, result = toy
    fm = ds.feature_map
    assert [(f.name, f.type, f.column, f.width) for f in fm.fields] == [
        ("num", "numeric", 0, 0), ("cat", "categorical", 0, 1), ("seq", "sequence", 1, 2), ("fl", "categorical", 3, 1)]
    assert fm.num_id_columns == 4 and fm.num_numeric == 1
    fm.save(tmp_path / "copy.json")
    assert FeatureMap.load(tmp_path / "copy.json") == fm
    assert FeatureMap.from_dict(json.loads((result.path / "feature_map.json").read_text())) == fm
    assert result.rows == {"train": 7, "valid": 2, "test": 1} and not result.skipped


def test_min_count_and_oov(toy):
    ds, _ = toy
    cat = ds.feature_map.field("cat")
    # train counts: a 3, b 2, c 1, missing 1 -> min count 2 keeps a (id 1), b (id 2); OOV = 3
    assert (cat.vocab_size, cat.padding_idx, cat.oov_idx) == (4, 0, 3)
    col = cat.column
    assert ds.split("train").ids[:, col].tolist() == [1, 1, 2, 1, 2, 3, 3]  # c and the missing cell -> OOV
    assert ds.split("valid").ids[:, col].tolist() == [3, 2]  # unseen 'z' -> OOV
    assert json.loads((ds.root / "vocab.json").read_text())["cat"] == ["a", "b"]
    np.testing.assert_array_equal(ds.counts("cat"), [0, 3, 2, 2])


def test_sequence_padding_truncation_and_na_tokens(toy):
    ds, _ = toy
    seq = ds.feature_map.field("seq")
    # token counts in train: y 5, x 3, z 2 -> ids y 1, x 2, z 3; empty tokens are padding, never tokens
    assert json.loads((ds.root / "vocab.json").read_text())["seq"] == ["y", "x", "z"]
    assert (seq.vocab_size, seq.oov_idx, seq.max_len) == (5, 4, 2)
    train = ds.split("train").ids[:, seq.column:seq.column + 2].tolist()
    assert train == [[2, 1], [2, 0], [0, 0], [1, 1], [1, 0], [0, 0], [3, 0]]  # "y^^x" keeps an inner pad
    assert ds.split("valid").ids[:, 1:3].tolist() == [[4, 2], [1, 0]]  # q unseen -> OOV


def test_pre_padding_and_inferred_max_len(tmp_path):
    spec = make_spec(tmp_path, seq={"name": "seq", "type": "sequence", "padding": "pre"})
    ds = ProcessedDataset(prepare_spec(spec, tmp_path / "out", progress=False).path)
    seq = ds.feature_map.field("seq")
    assert seq.max_len == 3  # longest training sequence
    train = ds.split("train").ids[:, seq.column:seq.column + 3].tolist()
    assert train[0] == [2, 1, 3] and train[1] == [0, 0, 2] and train[4] == [1, 0, 2]


def test_numeric_values_and_float_tokens(toy):
    ds, _ = toy
    assert ds.split("train").values[:, 0].tolist() == [3.0, 0.0, 100.0, 1.5, 7.0, 0.0, 12.0]  # missing -> 0
    assert ds.split("test").values[:, 0].tolist() == [1000.0]
    fl = ds.feature_map.field("fl")
    # dtype float: "1" and "1.0" are one token (3 times); the missing cell is the fill_na token 0 -> OOV
    assert json.loads((ds.root / "vocab.json").read_text())["fl"] == ["1.0", "2.0", "3.0"]
    assert ds.split("train").ids[:, fl.column].tolist() == [1, 1, 2, 2, 3, 4, 1]
    assert ds.split("valid").ids[:, fl.column].tolist() == [4, 2]


@pytest.mark.parametrize("method, expected", [
    ("convert_to_bucket", {"3": 1, "0": 0, "100": 21, "1.5": 1, "7": 3, "12": 6, "": 0}),
    ("bucketize_log2", {"3": 1, "0": 1, "100": 6, "1.5": 1, "7": 2, "12": 3, "": 1}),
])
def test_bucketised_numeric_becomes_categorical(tmp_path, method, expected):
    spec = make_spec(tmp_path, num={"name": "num", "dtype": "float", "type": "categorical", "preprocess": method,
                                    "fill_na": 0})
    ds = ProcessedDataset(prepare_spec(spec, tmp_path / "out", progress=False).path)
    num = ds.feature_map.field("num")
    assert num.type == "categorical" and ds.feature_map.num_numeric == 0 and num.extra["preprocess"] == method
    tokens = json.loads((ds.root / "vocab.json").read_text())["num"]
    raw = [row.split(",")[1] for row in TRAIN]
    got = [tokens[i - 1] for i in ds.split("train").ids[:, num.column]]
    assert got == [str(expected[r]) for r in raw]


def test_reprepare_is_a_no_op_until_inputs_or_spec_change(tmp_path):
    spec = make_spec(tmp_path)
    first = prepare_spec(spec, tmp_path / "out", progress=False)
    stamp = (first.path / "meta.json").stat().st_mtime_ns
    again = prepare_spec(spec, tmp_path / "out", progress=False)
    assert again.skipped and again.content_hash == first.content_hash
    assert (first.path / "meta.json").stat().st_mtime_ns == stamp
    write_csv(tmp_path / "valid.csv", VALID + ["0,1,a,x,1"])
    changed = prepare_spec(spec, tmp_path / "out", progress=False)
    assert not changed.skipped and changed.content_hash != first.content_hash and changed.rows["valid"] == 3
    respec = make_spec(tmp_path, cat={"name": "cat", "type": "categorical", "min_categr_count": 1})
    assert prepare_spec(respec, tmp_path / "out", progress=False).content_hash != changed.content_hash
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert [i["split"] for i in meta["inputs"]] == ["train", "valid", "test"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary leftovers


def test_parquet_and_tiny_chunks_give_the_same_arrays(tmp_path, monkeypatch):
    for name in "abc":
        (tmp_path / name).mkdir()
    ref = ProcessedDataset(prepare_spec(make_spec(tmp_path / "a"), tmp_path / "ref", progress=False).path)
    pq = ProcessedDataset(prepare_spec(make_spec(tmp_path / "b", fmt="parquet"), tmp_path / "pq",
                                       progress=False).path)
    monkeypatch.setattr(reader, "DEFAULT_BLOCK_BYTES", 24)  # a few rows per chunk: exercises merging
    monkeypatch.setattr(reader, "PARQUET_BATCH_ROWS", 2)
    tiny = ProcessedDataset(prepare_spec(make_spec(tmp_path / "c"), tmp_path / "tiny", progress=False).path)
    for other in (pq, tiny):
        assert other.feature_map.fields == ref.feature_map.fields
        for s in ("train", "valid", "test"):
            np.testing.assert_array_equal(other.split(s).ids, ref.split(s).ids)
            np.testing.assert_array_equal(other.split(s).labels, ref.split(s).labels)
            np.testing.assert_array_equal(other.split(s).values, ref.split(s).values)


def test_gzipped_csv_reads_like_plain(tmp_path):
    import gzip

    spec = make_spec(tmp_path)
    ref = ProcessedDataset(prepare_spec(spec, tmp_path / "ref", progress=False).path)
    data = (tmp_path / "train.csv").read_bytes()
    (tmp_path / "train.csv.gz").write_bytes(gzip.compress(data))
    spec.train_data = tmp_path / "train.csv.gz"
    gz = ProcessedDataset(prepare_spec(spec, tmp_path / "gz", progress=False).path)
    np.testing.assert_array_equal(gz.split("train").ids, ref.split("train").ids)
    np.testing.assert_array_equal(gz.split("train").values, ref.split("train").values)
