"""Property-based tests of ``collapse-lab data prepare`` on CSV and parquet input (issue 12): random headers,
cells, separators, compression, damaged bytes and spec values either prepare a dataset or fail with one
``error:`` line naming the spec or data file (exit code 2), and a failure leaves nothing under the data root
and no temporary file anywhere."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import yaml
from fuzz_helpers import FUZZ, assert_clean_failure, leftover_temp_files, mutated, run_cli
from hypothesis import given
from hypothesis import strategies as st

NAMES = st.sampled_from(["label", "I1", "C1", "S1", "x"]) | st.text(min_size=0, max_size=6)
CELLS = (st.sampled_from(["0", "1", "2", "", "3.5", "-1", "inf", "-inf", "nan", "1e400", "1e-400", "abc", "a^b^c",
                          "^", " 7 ", '"q,"', "0x10"])
         | st.integers(-10**6, 10**6).map(str) | st.floats().map(repr) | st.text(max_size=6))
SEPS = st.sampled_from([",", ";", "\t", "|"])


GOOD_COLUMNS = st.sampled_from([{"type": "categorical"}, {"type": "numeric"}, {"type": "categorical", "dtype": "int"},
                                {"type": "sequence", "splitter": "^", "max_len": 2},
                                {"type": "numeric", "preprocess": "convert_to_bucket", "fill_na": 0},
                                {"type": "categorical", "min_categr_count": 2, "fill_na": "z"}])
GOOD_CELLS = st.sampled_from(["0", "1", "2.5", "", "-3", "7", "a", "b^c"])
# most examples are damaged; about a third are well-formed, so that success paths are exercised too
HOSTILE = st.sampled_from([True, True, False])


@st.composite
def column_entries(draw: st.DrawFn, name: str, hostile: bool = True) -> dict:
    if not hostile:
        return {"name": name, **draw(GOOD_COLUMNS)}
    entry: dict = {"name": name}
    options = {
        "type": st.sampled_from(["categorical", "numeric", "sequence", "bogus"]),
        "dtype": st.sampled_from(["str", "int", "float", "string", "x"]),
        "preprocess": st.sampled_from(["convert_to_bucket", "bucketize_log2", "extract_country_code",
                                       "bucketize_age", "nope"]),
        "splitter": st.sampled_from(["^", "|", "", " ", "ab"]) | st.integers(0, 3),
        "max_len": st.sampled_from([1, 3, 0, -1, True, 2.5, "4"]),
        "padding": st.sampled_from(["post", "pre", "left"]),
        "fill_na": st.sampled_from([0, "", "z", 1.5, float("inf"), None, True, [1]]),
        "min_categr_count": st.sampled_from([1, 2, 0, True, "3"]),
        "active": st.booleans(),
    }
    for key in draw(st.lists(st.sampled_from(sorted(options)), max_size=4, unique=True)):
        entry[key] = draw(options[key])
    return entry


@st.composite
def datasets(draw: st.DrawFn) -> dict:
    """Header, rows (as cell lists), separator, spec fields and how the files are encoded."""
    hostile = draw(HOSTILE)
    if not hostile:  # well-formed: every row complete, labels 0/1, valid spec
        features = draw(st.lists(st.sampled_from(["I1", "C1", "S1", "x"]), min_size=1, max_size=3, unique=True))
        header = ["label", *features]
        row = st.tuples(st.sampled_from(["0", "1"]), *[GOOD_CELLS] * len(features)).map(list)
        return {"header": header, "sep": draw(SEPS), "extra": {},
                "rows": {split: draw(st.lists(row, min_size=1, max_size=6)) for split in ("train", "valid", "test")},
                "columns": [draw(column_entries(f, hostile=False)) for f in features],
                "encoding": draw(st.sampled_from(["plain", "crlf", "bom", "gzip-intact"]))}
    features = draw(st.lists(NAMES, min_size=1, max_size=3))
    header = ["label", *features] if draw(st.integers(0, 9)) else draw(st.lists(NAMES, min_size=1, max_size=4))
    width = len(header)
    row = st.lists(CELLS, min_size=width, max_size=width) | st.lists(CELLS, max_size=width + 2)
    rows = {split: draw(st.lists(row, max_size=6)) for split in ("train", "valid", "test")}
    spec_extra = {}
    if draw(st.sampled_from([False, False, False, True])):
        spec_extra["sep"] = draw(st.sampled_from(["", ",,", '"', "\n", 5, None]))
    if draw(st.sampled_from([False, False, False, True])):
        spec_extra["min_categr_count"] = draw(st.sampled_from([1, 2, 0, True, "x"]))
    return {"header": header, "rows": rows, "sep": draw(SEPS), "extra": spec_extra,
            "columns": [draw(column_entries(f)) for f in features],
            "encoding": draw(st.sampled_from(["plain", "crlf", "bom", "gzip", "bytes"]))}


def _csv_bytes(header, rows, sep, encoding, draw) -> bytes:
    eol = "\r\n" if encoding == "crlf" else "\n"
    text = eol.join(sep.join(cells) for cells in [header, *rows]) + eol
    data = ("\ufeff" + text if encoding == "bom" else text).encode("utf-8", errors="surrogatepass")
    if encoding.startswith("gzip"):
        data = gzip.compress(data)
    if encoding in ("gzip", "bytes"):
        data = draw(mutated(data))
    return data


def _check(tmp: Path, spec_path: Path, files) -> None:
    root = tmp / "root"
    code, out, err = run_cli(["data", "prepare", str(spec_path), "--data-root", str(root)])
    if code == 0:
        prepared = [p for p in root.iterdir()]
        assert len(prepared) == 1 and (prepared[0] / "feature_map.json").is_file(), out
        meta = json.loads((prepared[0] / "meta.json").read_text())
        assert all(n >= 1 for n in meta["rows"].values())
    else:
        assert_clean_failure(code, err, [spec_path, *files])
        assert not root.exists() or not any(root.iterdir()), list(root.iterdir())
    assert not leftover_temp_files(tmp)


@FUZZ
@given(ds=datasets(), data=st.data())
def test_csv_preparation(ds, data):
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        suffix = ".csv.gz" if ds["encoding"].startswith("gzip") else ".csv"
        files = {s: tmp / f"{s}{suffix}" for s in ("train", "valid", "test")}
        for split, path in files.items():
            path.write_bytes(_csv_bytes(ds["header"], ds["rows"][split], ds["sep"], ds["encoding"], data.draw))
        spec = {"dataset_id": "fuzz", **{f"{s}_data": str(p) for s, p in files.items()},
                "feature_cols": ds["columns"], "label_col": {"name": "label", "dtype": "float"}, "sep": ds["sep"],
                **ds["extra"]}
        spec_path = tmp / "spec.yaml"
        spec_path.write_text(yaml.safe_dump(spec, allow_unicode=True))
        _check(tmp, spec_path, files.values())


PARQUET_CELLS = {
    "int": st.integers(-2**40, 2**40),
    "float": st.floats(),
    "str": st.text(max_size=5),
    "bool": st.booleans(),
    "list": st.lists(st.text(max_size=3) | st.none(), max_size=3),
}


@FUZZ
@given(data=st.data())
def test_parquet_preparation(data):
    import pyarrow as pa
    import pyarrow.parquet as pq

    hostile = data.draw(HOSTILE)
    rows = data.draw(st.integers(0 if hostile else 1, 6))
    kinds = data.draw(st.lists(st.sampled_from(sorted(PARQUET_CELLS)), min_size=1, max_size=3))
    names = [f"f{i}" for i in range(len(kinds))]
    label_values = st.sampled_from([0, 1, 0.0, 1.0, 2, None, float("nan")] if hostile else [0, 1, 0.0, 1.0])
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        files = {}
        for split in ("train", "valid", "test"):
            columns = {"label": data.draw(st.lists(label_values, min_size=rows, max_size=rows))}
            for name, kind in zip(names, kinds, strict=True):
                cell = PARQUET_CELLS[kind] | st.none() if hostile else PARQUET_CELLS[kind]
                columns[name] = data.draw(st.lists(cell, min_size=rows, max_size=rows))
            path = files[split] = tmp / f"{split}.parquet"
            pq.write_table(pa.table(columns), path)
            if hostile:
                path.write_bytes(data.draw(mutated(path.read_bytes())))
        spec = {"dataset_id": "fuzz", **{f"{s}_data": str(p) for s, p in files.items()},
                "feature_cols": [data.draw(column_entries(n, hostile)) for n in names], "label_col": "label"}
        spec_path = tmp / "spec.yaml"
        spec_path.write_text(yaml.safe_dump(spec))
        _check(tmp, spec_path, files.values())
