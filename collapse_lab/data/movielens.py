"""GroupLens MovieLens-100K, obtained at run time and turned into a CTR dataset (``docs/data.md`` §2.3–2.4).

The data may not be redistributed, so it is never committed or shipped: :func:`fetch_movielens_100k` reads
it either from a folder in the official zip layout (``u.data``, ``u.user``, ``u.item``) or, by default, from
the ``recbole==1.2.1`` wheel (``pip download --no-deps`` into the cache, then
``recbole/dataset_example/ml-100k/`` straight from the zip; file hashes are checked). Both sources are
normalised to one table ``<data_root>/.cache/movielens-100k/ratings.csv`` with columns
``user_id, item_id, rating, timestamp, age, gender, occupation, zip_code, release_year, genres``
(``release_year``: the 4-digit year in parentheses at the end of the title, else empty — RecBole's rule;
``genres``: '^'-joined).

CTR recipe (:func:`movielens_ctr_spec`): label = rating ≥ 4 (RecBole's threshold; 55.4% positive) or, for
``movielens-100k-autoint``, drop the 3s and label = rating > 3 (72,855 rows, 76.0% positive); fields
``user_id, item_id, age`` (bucket: <18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+, the MovieLens-1M groups),
``gender, occupation, zip_code`` (first 3 characters, the ZIP3 area), ``release_year`` (categorical) and
``genres`` (sequence, max_len 6, post padding, masked average pooling as in the KDEF authors' logs); rows
permuted with ``numpy.random.default_rng(2024)`` and split 8:1:1 in that order.

Acknowledgement: F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and Context.
ACM TiiS 5(4), 19. Data © GroupLens Research, University of Minnesota; research use only.
"""

from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Dict, Union

import numpy as np

from collapse_lab.data.catalog import cache_dir
from collapse_lab.errors import UserError
from collapse_lab.io.atomic import atomic_path, atomic_write_json

__all__ = ["RECBOLE_SPEC", "GENRES", "fetch_movielens_100k", "load_ratings", "movielens_ctr_spec",
           "write_ctr_splits", "summarize_ratings", "ACKNOWLEDGEMENT"]

log = logging.getLogger(__name__)

RECBOLE_SPEC = "recbole==1.2.1"
_WHEEL_DIR = "recbole/dataset_example/ml-100k/"
#: sha256 of the three files inside the recbole 1.2.1 wheel (checked after extraction)
RECBOLE_SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
}
#: the 19 genre flags of u.item, in file order (u.genre)
GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
COLUMNS = ("user_id", "item_id", "rating", "timestamp", "age", "gender", "occupation", "zip_code", "release_year",
           "genres")
ACKNOWLEDGEMENT = ("MovieLens-100K: F. M. Harper and J. A. Konstan, The MovieLens Datasets: History and Context, "
                   "ACM TiiS 5(4), 2015. GroupLens Research, University of Minnesota. Not redistributed.")
AGE_BINS = (0, 18, 25, 35, 45, 50, 56)
AGE_LABELS = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
ZIP_PREFIX = 3
SPLIT_SEED = 2024


def _home(root: Union[str, Path, None]) -> Path:
    return cache_dir(root) / "movielens-100k"


def _read_table(data: bytes, sep: str, names: Any = None, header: Any = "infer", encoding: str = "utf-8") -> Any:
    import pandas as pd

    return pd.read_csv(io.BytesIO(data), sep=sep, header=header, names=names, dtype=str, encoding=encoding,
                       keep_default_na=False, quoting=3)


def _year(text: str) -> str:
    return text if len(text) == 4 and text.isdigit() else ""


def _from_recbole(files: Dict[str, bytes]) -> Any:
    inter = _read_table(files["ml-100k.inter"], "\t")
    user = _read_table(files["ml-100k.user"], "\t")
    item = _read_table(files["ml-100k.item"], "\t")
    for df in (inter, user, item):
        df.columns = [c.split(":")[0] for c in df.columns]  # drop RecBole's ":token" type suffixes
    item["release_year"] = item["release_year"].map(_year)
    item["genres"] = item["class"].str.split().str.join("^")
    return inter, user, item[["item_id", "release_year", "genres"]]


def _from_folder(folder: Path) -> Any:
    import re

    def read(name: str) -> bytes:
        path = folder / name
        if not path.exists():
            raise UserError(f"{path}: file not found; expected the official ml-100k layout (u.data, u.user, u.item)")
        return path.read_bytes()

    inter = _read_table(read("u.data"), "\t", names=["user_id", "item_id", "rating", "timestamp"], header=None)
    user = _read_table(read("u.user"), "|", names=["user_id", "age", "gender", "occupation", "zip_code"],
                       header=None)
    item = _read_table(read("u.item"), "|", header=None, encoding="latin-1",
                       names=["item_id", "title", "release_date", "video_release_date", "url", *GENRES])
    if len(inter.columns) != 4 or inter.isna().any().any():
        raise UserError(f"{folder / 'u.data'}: expected 4 tab-separated columns per line")
    flags = item[list(GENRES)].to_numpy() == "1"  # (items, 19)
    item["genres"] = ["^".join(g for g, on in zip(GENRES, row, strict=True) if on) for row in flags]
    pattern = re.compile(r"\(([^()]*)\)\s*$")
    item["release_year"] = [_year(m.group(1)) if (m := pattern.search(t)) else "" for t in item["title"]]
    return inter, user, item[["item_id", "release_year", "genres"]]


def _download_recbole(home: Path) -> Dict[str, bytes]:
    wheels = home / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob("recbole-1.2.1-*.whl"))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
               RECBOLE_SPEC, "-d", str(wheels)]
        log.info("downloading %s (wheel only, nothing is installed)", RECBOLE_SPEC)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        found = sorted(wheels.glob("recbole-1.2.1-*.whl"))
        if proc.returncode != 0 or not found:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"could not download {RECBOLE_SPEC} from PyPI ({last}); fetch from a folder with "
                            "`collapse-lab data fetch movielens-100k --from DIR` (official ml-100k.zip layout)")
    try:
        with zipfile.ZipFile(found[0]) as zf:
            files = {name: zf.read(_WHEEL_DIR + name) for name in RECBOLE_SHA256}
    except (zipfile.BadZipFile, KeyError) as exc:
        found[0].unlink(missing_ok=True)
        raise UserError(f"{found[0]}: not a usable recbole wheel ({exc}); it was removed, fetch again") from None
    for name, data in files.items():
        if hashlib.sha256(data).hexdigest() != RECBOLE_SHA256[name]:
            raise UserError(f"{found[0]}: {name} does not have the expected sha256; delete the wheel and fetch again")
    return files


def fetch_movielens_100k(root: Union[str, Path, None] = None, from_dir: Union[str, Path, None] = None,
                         force: bool = False) -> Dict[str, Any]:
    """Obtain ML-100K and write the normalised ``ratings.csv`` into the cache; returns a summary.

    Args:
        root: data root (default ``$COLLAPSE_LAB_DATA`` or ``./data``).
        from_dir: a folder with ``u.data``, ``u.user``, ``u.item``; default: the recbole 1.2.1 wheel.
        force: re-read the source even if ``ratings.csv`` exists.

    Returns:
        ``{"path", "source", "ratings", "users", "items", "positive_rate"}`` (positive rate of rating ≥ 4).
    """
    import pandas as pd

    home = _home(root)
    target = home / "ratings.csv"
    if target.exists() and not force and from_dir is None:
        return summarize_ratings(load_ratings(root), target, (home / "source.txt").read_text().strip()
                                 if (home / "source.txt").exists() else "cache")
    if from_dir is not None:
        folder = Path(from_dir)
        if not folder.is_dir():
            raise UserError(f"{folder}: not a directory; expected a folder with u.data, u.user, u.item")
        inter, user, item = _from_folder(folder)
        source = f"folder {folder.resolve()}"
    else:
        inter, user, item = _from_recbole(_download_recbole(home))
        source = f"{RECBOLE_SPEC} wheel ({_WHEEL_DIR})"
    table = inter.merge(user, on="user_id", how="left").merge(item, on="item_id", how="left")
    if table[["age", "release_year"]].isna().any().any():
        raise UserError(f"{source}: ratings refer to users or items missing from the user/item files")
    table = table[list(COLUMNS)]
    pd.to_numeric(table["rating"], errors="raise")
    with atomic_path(target) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(home / "source.txt") as tmp:
        tmp.write_text(source + "\n")
    return summarize_ratings(table, target, source)


def summarize_ratings(table: Any, path: Path, source: str) -> Dict[str, Any]:
    rating = table["rating"].astype(float)
    return {"path": str(path), "source": source, "ratings": int(len(table)), "users": int(table["user_id"].nunique()),
            "items": int(table["item_id"].nunique()), "positive_rate": float((rating >= 4).mean())}


def load_ratings(root: Union[str, Path, None] = None) -> Any:
    """The normalised ratings table (pandas, all columns as strings) from the cache."""
    import pandas as pd

    path = _home(root) / "ratings.csv"
    if not path.exists():
        raise UserError(f"{path}: MovieLens-100K is not fetched; run `collapse-lab data fetch movielens-100k`")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _age_bucket(age: Any) -> Any:
    import pandas as pd

    return pd.cut(age.astype(int), bins=list(AGE_BINS) + [1000], right=False, labels=list(AGE_LABELS)).astype(str)


def write_ctr_splits(root: Union[str, Path, None] = None, label: str = "threshold") -> Dict[str, Path]:
    """Write the CTR table's seeded 8:1:1 split as CSV files in the cache; returns their paths.

    ``label``: ``threshold`` (rating ≥ 4) or ``autoint`` (drop rating 3, label = rating > 3).
    """
    if label not in ("threshold", "autoint"):
        raise UserError(f"unknown MovieLens label rule {label!r}; valid: threshold, autoint")
    df = load_ratings(root)
    rating = df["rating"].astype(float)
    if label == "autoint":
        df, rating = df[rating != 3].reset_index(drop=True), rating[rating != 3].reset_index(drop=True)
        y = (rating > 3).astype(int)
    else:
        y = (rating >= 4).astype(int)
    out = df[["user_id", "item_id", "gender", "occupation", "release_year", "genres"]].copy()
    out.insert(0, "label", y.to_numpy())
    out.insert(3, "age", _age_bucket(df["age"]).to_numpy())
    out.insert(6, "zip_code", df["zip_code"].str[:ZIP_PREFIX].to_numpy())
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(out))
    n_train, n_valid = int(round(0.8 * len(out))), int(round(0.1 * len(out)))
    parts = {"train": perm[:n_train], "valid": perm[n_train:n_train + n_valid], "test": perm[n_train + n_valid:]}
    folder = _home(root) / f"ctr-{label}"
    paths = {}
    for split, idx in parts.items():
        paths[split] = folder / f"{split}.csv"
        with atomic_path(paths[split]) as tmp:
            out.iloc[idx].to_csv(tmp, index=False)
    atomic_write_json(folder / "recipe.json", {"label": label, "seed": SPLIT_SEED, "split": [0.8, 0.1, 0.1],
                                               "zip_prefix": ZIP_PREFIX, "age_bins": list(AGE_LABELS)})
    return paths


def movielens_ctr_spec(paths: Dict[str, Path], dataset_id: str) -> Dict[str, Any]:
    """The FuxiCTR-style spec (as a dict) of the CTR splits written by :func:`write_ctr_splits`."""
    return {
        "dataset_id": dataset_id,
        "description": "GroupLens MovieLens-100K as CTR (user, item and side features; genres sequence)",
        "data_format": "csv",
        "train_data": str(paths["train"]), "valid_data": str(paths["valid"]), "test_data": str(paths["test"]),
        "min_categr_count": 1,
        "feature_cols": [
            {"name": ["user_id", "item_id", "age", "gender", "occupation", "zip_code", "release_year"],
             "dtype": "str", "type": "categorical"},
            {"name": "genres", "dtype": "str", "type": "sequence", "splitter": "^", "max_len": 6, "padding": "post",
             "feature_encoder": "layers.MaskedAveragePooling()"},  # as the KDEF authors' logs show
        ],
        "label_col": {"name": "label", "dtype": "float"},
    }
