"""MovieLens-100K end to end: fetch from the recbole 1.2.1 wheel (PyPI), prepare, summarise (``docs/data.md`` §2.3).

Marked ``data``: it downloads a 2 MB wheel once per test session into a temporary data root and skips cleanly
when PyPI cannot be reached.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from collapse_lab.cli import main
from collapse_lab.data.api import fetch_dataset
from collapse_lab.data.movielens import GENRES, load_ratings
from collapse_lab.errors import UserError

pytestmark = pytest.mark.data


@pytest.fixture(scope="session")
def ml_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ml100k")
    try:
        fetch_dataset("movielens-100k", data_root=root)
    except UserError as exc:
        if "could not download" in str(exc):
            pytest.skip(f"PyPI unreachable: {exc}")
        raise
    return root


def _info(root, name, capsys):
    capsys.readouterr()
    main(["data", "info", name, "--data-root", str(root), "--json"])
    return json.loads(capsys.readouterr().out)


def test_fetch_counts_match_grouplens(ml_root, capsys):
    main(["data", "fetch", "movielens-100k", "--data-root", str(ml_root)])  # cached: no second download
    out = capsys.readouterr().out
    assert "100,000 ratings, 943 users, 1,682 items, 55.4% with rating >= 4" in out
    ratings = load_ratings(ml_root)
    assert ratings["rating"].value_counts().sort_index().tolist() == [6110, 11370, 27145, 34174, 21201]
    assert list(ratings.columns) == ["user_id", "item_id", "rating", "timestamp", "age", "gender", "occupation",
                                     "zip_code", "release_year", "genres"]
    assert ratings["genres"].str.split("^").str.len().max() == 6


def test_prepare_and_info(ml_root, capsys):
    main(["data", "prepare", "movielens-100k", "--data-root", str(ml_root)])
    assert "movielens-100k: prepared in" in capsys.readouterr().out
    main(["data", "prepare", "movielens-100k", "--data-root", str(ml_root)])
    assert "movielens-100k: up to date" in capsys.readouterr().out
    info = _info(ml_root, "movielens-100k", capsys)
    splits = info["splits"]
    assert [splits[s]["rows"] for s in ("train", "valid", "test")] == [80000, 10000, 10000]
    assert info["rows"] == 100000 and info["positive_rate"] == pytest.approx(0.55375)
    # docs/data.md §2.3: the seeded (default_rng(2024)) 80/10/10 split
    assert [round(splits[s]["positive_rate"], 4) for s in ("train", "valid", "test")] == [0.5547, 0.5476, 0.5525]
    fields = {f["name"]: f for f in info["fields"]}
    assert list(fields) == ["user_id", "item_id", "age", "gender", "occupation", "zip_code", "release_year",
                            "genres"]
    assert fields["user_id"]["vocab_size"] == 943 + 2  # every user has >= 20 ratings, so all are in train
    assert 1600 < fields["item_id"]["vocab_size"] <= 1682 + 2  # items rated once may miss the train split
    assert fields["gender"]["vocab_size"] == 2 + 2 and fields["occupation"]["vocab_size"] == 21 + 2
    assert fields["age"]["vocab_size"] == 7 + 2
    assert (fields["genres"]["type"], fields["genres"]["max_len"], fields["genres"]["vocab_size"]) == (
        "sequence", 6, len(GENRES) + 2)
    meta = json.loads((ml_root / "movielens-100k" / "meta.json").read_text())
    assert meta["label_rule"] == "rating >= 4" and "GroupLens" in meta["acknowledgement"]


def test_autoint_label_drops_the_threes(ml_root, capsys):
    main(["data", "prepare", "movielens-100k-autoint", "--data-root", str(ml_root)])
    info = _info(ml_root, "movielens-100k-autoint", capsys)
    assert info["rows"] == 72855 and round(info["positive_rate"], 3) == 0.760


def test_fetch_from_a_folder_in_the_official_layout(ml_root, tmp_path, capsys):
    """u.data/u.user/u.item written from the same ratings give the same normalised table."""
    ref = load_ratings(ml_root)
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    ref[["user_id", "item_id", "rating", "timestamp"]].to_csv(folder / "u.data", sep="\t", header=False, index=False)
    users = ref.drop_duplicates("user_id")[["user_id", "age", "gender", "occupation", "zip_code"]]
    users.to_csv(folder / "u.user", sep="|", header=False, index=False)
    items = ref.drop_duplicates("item_id")
    flags = pd.DataFrame({g: items["genres"].str.split("^").apply(lambda gs, g=g: int(g in gs)) for g in GENRES})
    year = items["release_year"].where(items["release_year"] != "", "V")  # non-year suffix, as in the wheel
    u_item = pd.concat([items["item_id"].reset_index(drop=True),
                        ("Some Title (" + year + ")").reset_index(drop=True),
                        pd.Series(["01-Jan-1995"] * len(items)), pd.Series([""] * len(items)),
                        pd.Series(["http://x"] * len(items)), flags.reset_index(drop=True)], axis=1)
    u_item.to_csv(folder / "u.item", sep="|", header=False, index=False, encoding="latin-1")
    other = tmp_path / "root"
    main(["data", "fetch", "movielens-100k", "--from", str(folder), "--data-root", str(other)])
    assert "100,000 ratings, 943 users, 1,682 items" in capsys.readouterr().out
    pd.testing.assert_frame_equal(load_ratings(other), ref)
    (folder / "u.user").unlink()
    with pytest.raises(SystemExit) as exc:
        main(["data", "fetch", "movielens-100k", "--from", str(folder), "--data-root", str(other)])
    assert exc.value.code == 2 and "u.user: file not found" in capsys.readouterr().err
