"""Sequence pooling in specs (FuxiCTR's ``feature_encoder``) and FuxiCTR keys that load with a warning."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from collapse_lab.cli import cli
from collapse_lab.data.api import presets_dir
from collapse_lab.data.feature_map import FeatureMap
from collapse_lab.data.meta import content_hash
from collapse_lab.data.movielens import movielens_ctr_spec
from collapse_lab.data.prepare import prepare_spec
from collapse_lab.data.spec import load_spec, spec_from_dict
from collapse_lab.errors import UserError

ROWS = {"train": ["1,a,x^y,p", "0,b,y,q", "1,a,,p^q^r"], "valid": ["0,a,x,q"], "test": ["1,b,y^x,r"]}

FUXICTR_YAML = """\
tiny_fx:
    data_root: ../data/
    data_format: csv
    train_data: train.csv
    valid_data: valid.csv
    test_data: test.csv
    min_categr_count: 1
    feature_cols:
        - {name: user, active: True, dtype: str, type: categorical}
        - {name: tags, active: True, dtype: str, type: sequence, splitter: "^", max_len: 3,
           feature_encoder: "layers.MaskedSumPooling()", encoder: MaskedSumPooling}
        - {name: topics, active: True, dtype: str, type: sequence, splitter: "^", max_len: 2,
           share_embedding: tags}
    label_col: {name: label, dtype: float}
"""


def write_files(folder, header="label,user,tags,topics"):
    for split, rows in ROWS.items():
        (folder / f"{split}.csv").write_text("\n".join([header, *rows]) + "\n")


def flat_spec(folder, **tags):
    """A flat spec dict with a categorical ``user`` and a sequence ``tags`` (extra keys for ``tags``)."""
    return {"dataset_id": "tiny", "train_data": str(folder / "train.csv"), "valid_data": str(folder / "valid.csv"),
            "test_data": str(folder / "test.csv"), "label_col": "label",
            "feature_cols": [{"name": "user"}, {"name": "tags", "type": "sequence", "max_len": 3, **tags}]}


def test_a_fuxictr_spec_with_feature_encoder_encoder_and_share_embedding_prepares_with_two_warnings(tmp_path,
                                                                                                  monkeypatch):
    write_files(tmp_path)
    monkeypatch.chdir(tmp_path)  # FuxiCTR configs name their files relative to where they are run
    (tmp_path / "spec.yaml").write_text(FUXICTR_YAML)
    runner = CliRunner()
    prepared = runner.invoke(cli, ["data", "prepare", str(tmp_path / "spec.yaml"), "--data-root",
                                   str(tmp_path / "data")])
    assert prepared.exit_code == 0, prepared.output
    assert "tiny_fx: prepared in" in prepared.stdout and "warning" not in prepared.stdout
    warnings = prepared.stderr.splitlines()
    assert len(warnings) == 2, prepared.stderr
    assert warnings[0].startswith("warning: ") and "feature_cols[1] (tags): `encoder` is not read by FuxiCTR 2.x " \
        "(its docs' old name); did you mean `feature_encoder`?" in warnings[0]
    assert "feature_cols[2] (topics): `share_embedding`" in warnings[1]
    assert "collapse-lab gives every field its own table" in warnings[1]

    fmap = json.loads((tmp_path / "data" / "tiny_fx" / "feature_map.json").read_text())
    assert {f["name"]: f["pooling"] for f in fmap["fields"]} == {"user": None, "tags": "sum", "topics": "mean"}

    info = runner.invoke(cli, ["data", "info", "tiny_fx", "--data-root", str(tmp_path / "data")])
    assert info.exit_code == 0, info.output
    lines = {line.split()[0]: line for line in info.stdout.splitlines() if line.startswith("    ")}
    assert lines["tags"].endswith("max_len 3, sum pooling") and lines["topics"].endswith("max_len 2, mean pooling")
    assert "pooling" not in lines["user"]
    as_json = json.loads(runner.invoke(cli, ["data", "info", "tiny_fx", "--json", "--data-root",
                                             str(tmp_path / "data")]).stdout)
    assert [(f["name"], f["pooling"]) for f in as_json["fields"]] == [("user", None), ("tags", "sum"),
                                                                      ("topics", "mean")]

    again = runner.invoke(cli, ["data", "prepare", str(tmp_path / "spec.yaml"), "--data-root", str(tmp_path / "data")])
    assert again.exit_code == 0 and "up to date" in again.stdout and len(again.stderr.splitlines()) == 2


@pytest.mark.parametrize("encoder, pooling", [
    ("layers.MaskedAveragePooling()", "mean"), ("MaskedAveragePooling", "mean"), ("MaskedAveragePooling()", "mean"),
    ("layers.MaskedSumPooling()", "sum"), ("MaskedSumPooling", "sum"), (None, "mean"), ("null", "mean"),
])
def test_feature_encoder_values_map_to_a_pooling(tmp_path, encoder, pooling):
    spec = spec_from_dict(flat_spec(tmp_path, feature_encoder=encoder))
    assert spec.feature_cols[1].pooling == pooling and spec.feature_cols[0].pooling is None
    nulls = [w for w in spec.warnings if "unpooled" in w]
    assert len(nulls) == (1 if encoder in (None, "null") else 0)  # FuxiCTR leaves an explicit null unpooled


def test_an_absent_feature_encoder_is_average_pooling_without_a_warning(tmp_path):
    spec = spec_from_dict(flat_spec(tmp_path))
    assert spec.feature_cols[1].pooling == "mean" and spec.warnings == []


@pytest.mark.parametrize("encoder", ["layers.MLP_Block()", "MaxPooling", ["layers.MaskedSumPooling()"], 3])
def test_other_sequence_encoders_are_an_error(tmp_path, encoder):
    with pytest.raises(UserError, match=r"feature_cols\[1\] \(tags\): feature_encoder .* is not supported for a "
                                        r"sequence; valid: layers.MaskedAveragePooling\(\) \(default\)"):
        spec_from_dict(flat_spec(tmp_path, feature_encoder=encoder), source="s.yaml")


def test_fuxictr_keys_warn_with_what_fuxictr_does_and_unknown_keys_stay_errors(tmp_path):
    data = flat_spec(tmp_path, embedding_dim=8, pretrained_emb="emb.h5", freeze_emb=True)
    data["feature_cols"][0].update(feature_encoder="layers.MLP_Block(4)", remap=False, vocab_size=10)
    data["rebuild_dataset"] = False
    spec = spec_from_dict(data, source="s.yaml")
    text = "\n".join(spec.warnings)
    assert len(spec.warnings) == 7, text
    assert "s.yaml: `rebuild_dataset`" in text
    assert "s.yaml: feature_cols[0] (user): `feature_encoder` on a categorical column makes FuxiCTR apply" in text
    assert "feature_cols[0] (user): `remap` false makes FuxiCTR use raw integer values as ids" in text
    assert "feature_cols[1] (tags): `embedding_dim` sets this field's own embedding width in FuxiCTR" in text
    assert "feature_cols[1] (tags): `pretrained_emb` makes FuxiCTR load pretrained vectors" in text
    assert all("\n" not in w for w in spec.warnings)  # one line each
    assert spec.recipe() == spec_from_dict(flat_spec(tmp_path)).recipe()  # ignored keys do not change the data
    with pytest.raises(UserError, match=r"feature_cols\[1\]: unknown key 'pooling_mode'; valid keys: .*encoder"):
        spec_from_dict(flat_spec(tmp_path, pooling_mode="sum"), source="s.yaml")
    with pytest.raises(UserError, match="unknown key 'embedding_callback'"):  # not a FuxiCTR 2.3 dataset key either
        spec_from_dict({**flat_spec(tmp_path), "embedding_callback": "x"}, source="s.yaml")


def test_pooling_is_in_the_content_hash_only_for_sequences(tmp_path):
    write_files(tmp_path)
    out = tmp_path / "out"
    first = prepare_spec(spec_from_dict(flat_spec(tmp_path)), out, progress=False)
    assert not first.skipped and FeatureMap.load(out / "feature_map.json").field("tags").pooling == "mean"
    assert prepare_spec(spec_from_dict(flat_spec(tmp_path)), out, progress=False).skipped  # no-op while unchanged
    summed = prepare_spec(spec_from_dict(flat_spec(tmp_path, feature_encoder="MaskedSumPooling")), out,
                          progress=False)
    assert not summed.skipped and summed.content_hash != first.content_hash
    assert FeatureMap.load(out / "feature_map.json").field("tags").pooling == "sum"
    assert prepare_spec(spec_from_dict(flat_spec(tmp_path, feature_encoder="MaskedSumPooling")), out,
                        progress=False).skipped
    # a spec without sequences hashes as before pooling existed (no needless rebuild of e.g. Criteo): the value
    # below is what collapse-lab 0.1.0 (before pooling) computed for this recipe
    plain = spec_from_dict({**flat_spec(tmp_path), "feature_cols": [{"name": "user"}]})
    assert "pooling" not in plain.recipe()["feature_cols"][0]
    assert content_hash(plain.recipe()) == "ed4a874bb4c2f70a68143f3362b7eb09b21e9564df1c196c8344b141bae18eb3"


def test_an_old_feature_map_without_pooling_reads_as_average(tmp_path):
    write_files(tmp_path)
    out = tmp_path / "data" / "tiny"
    prepare_spec(spec_from_dict(flat_spec(tmp_path, feature_encoder="MaskedSumPooling")), out, progress=False)
    path = out / "feature_map.json"
    old = json.loads(path.read_text())
    for f in old["fields"]:
        del f["pooling"]  # as collapse-lab 0.1.0 wrote it
    path.write_text(json.dumps(old))
    assert FeatureMap.load(path).field("tags").pooling == "mean"
    info = json.loads(CliRunner().invoke(cli, ["data", "info", str(out), "--json"]).stdout)
    assert info["fields"][1]["pooling"] == "mean"


def test_the_builtin_movielens_spec_and_the_presets_pool_by_average_without_warnings(tmp_path):
    paths = {s: tmp_path / f"{s}.csv" for s in ("train", "valid", "test")}
    ml = spec_from_dict(movielens_ctr_spec(paths, "movielens-100k"), source="movielens-100k")
    assert {c.name: c.pooling for c in ml.feature_cols if c.type == "sequence"} == {"genres": "mean"}
    assert ml.warnings == []
    for name, fields in {"ML_1M_7_x1": ["Genres"], "KKBox_x1": ["genre_ids", "artist_name"]}.items():
        spec = load_spec(presets_dir() / f"{name}.yaml")
        assert {c.name: c.pooling for c in spec.feature_cols if c.type == "sequence"} == dict.fromkeys(fields, "mean")
        assert spec.warnings == []
