"""A FuxiCTR/BARS Criteo_x4-layout CSV (generated here) prepares with the Criteo_x4 preset."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from collapse_lab.cli import main
from collapse_lab.data.api import presets_dir
from collapse_lab.data.dataset import ProcessedDataset
from collapse_lab.data.spec import load_spec

INTS = [f"I{i}" for i in range(1, 14)]
CATS = [f"C{i}" for i in range(1, 27)]


def criteo_frame(rows: int, seed: int) -> pd.DataFrame:
    """Criteo-like columns: counts with missing cells (and I2 negatives), hex tokens from a Zipf law."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"label": rng.integers(0, 2, rows)})
    for j, name in enumerate(INTS):
        x = np.floor(rng.lognormal(1.0 + 0.2 * j, 1.5, rows)).astype(int) - (1 if name == "I2" else 0)
        df[name] = pd.Series(x, dtype="object").where(rng.random(rows) > 0.2, "")
    for name in CATS:
        ranks = np.minimum(rng.zipf(1.6, rows), 200)
        df[name] = pd.Series([f"{(r * 2654435761) % 2**32:08x}" for r in ranks], dtype="object").where(
            rng.random(rows) > 0.05, "")
    return df


def fuxictr_bucket(cell: str) -> str:
    x = float(cell) if cell != "" else 0.0  # fill_na: 0
    return str(int(math.floor(math.log(x) ** 2)) if x > 2 else int(x))


@pytest.fixture(scope="module")
def criteo(tmp_path_factory):
    work = tmp_path_factory.mktemp("criteo")
    raw = work / "data" / "raw" / "Criteo_x4"
    raw.mkdir(parents=True)
    frames = {"train": criteo_frame(600, 1), "valid": criteo_frame(80, 2), "test": criteo_frame(80, 3)}
    for split, df in frames.items():
        df.to_csv(raw / f"{split}.csv", index=False)
    return work, frames


def test_criteo_x4_preset_prepares_a_fuxictr_layout_csv(criteo, monkeypatch, capsys):
    work, frames = criteo
    monkeypatch.chdir(work)  # the preset's relative paths (data/raw/Criteo_x4/*.csv) resolve against the cwd
    main(["data", "prepare", "Criteo_x4", "--data-root", str(work / "processed")])
    assert "Criteo_x4: prepared in" in capsys.readouterr().out
    ds = ProcessedDataset(work / "processed" / "Criteo_x4")
    fm = ds.feature_map
    assert [f.name for f in fm.fields] == INTS + CATS
    assert all(f.type == "categorical" for f in fm.fields) and fm.num_id_columns == 39 and fm.num_numeric == 0
    assert not (ds.root / "train" / "values.npy").exists()
    vocab = json.loads((ds.root / "vocab.json").read_text())
    for name in ("I1", "I2", "I13", "C1", "C7", "C26"):
        f = fm.field(name)
        bucket = fuxictr_bucket if name.startswith("I") else (lambda c: c)
        train_tokens = [bucket(c) for c in frames["train"][name].fillna("").astype(str)]
        counts = pd.Series(train_tokens).value_counts()
        kept = counts[(counts >= 10) & (counts.index != "")]  # min_categr_count 10; "" is the NA token
        assert f.extra["min_categr_count"] == 10
        assert f.vocab_size == len(kept) + 2 and f.oov_idx == len(kept) + 1
        assert sorted(vocab[name]) == sorted(kept.index)
        assert list(counts[vocab[name]]) == sorted(counts[vocab[name]], reverse=True)  # ids by frequency
        lookup = {t: i + 1 for i, t in enumerate(vocab[name])}
        for split in ("train", "test"):
            tokens = [bucket(c) for c in frames[split][name].fillna("").astype(str)]
            expected = [lookup.get(t, f.oov_idx) for t in tokens]
            assert ds.split(split).ids[:, f.column].tolist() == expected
    for split, df in frames.items():
        np.testing.assert_array_equal(ds.split(split).labels, df["label"].to_numpy(np.float32))


def test_every_preset_loads_and_matches_the_documented_field_counts():
    fields = {"Criteo_x4": 39, "ML_1M_7_x1": 7, "KDD12_x10": 13, "iPinYou_x1": 16, "KKBox_x1": 13,
              "Avazu_x1": 22, "Frappe_x1": 10, "MovielensLatest_x1": 3}
    minimum = {"Criteo_x4": 10, "KDD12_x10": 10, "KKBox_x1": 10, "iPinYou_x1": 2}
    for name, n in fields.items():
        spec = load_spec(presets_dir() / f"{name}.yaml")
        assert spec.dataset_id == name and len(spec.feature_cols) == n
        assert spec.min_categr_count == minimum.get(name, 1)
    ipinyou = load_spec(presets_dir() / "iPinYou_x1.yaml")
    assert ipinyou.valid_data == ipinyou.test_data  # BARS: the validation file is the test file
    ml1m = {c.name: c for c in load_spec(presets_dir() / "ML_1M_7_x1.yaml").feature_cols}
    assert (ml1m["Genres"].type, ml1m["Genres"].max_len) == ("sequence", 5)
