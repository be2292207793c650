"""The training config: defaults, merge order, validation, hashing, YAML round trip."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from collapse_lab.config import (
    CONFIG_KEYS,
    CONFIG_SCHEMA,
    TrainConfig,
    config_hash,
    config_identity,
    config_to_dict,
    config_to_yaml,
    load_config_file,
)
from collapse_lab.errors import UserError
from collapse_lab.resolve import resolve_config  # the config's own checks, then the models' and strategies'


def test_defaults_follow_the_paper_schedule():
    cfg = resolve_config()
    assert (cfg.lr, cfg.patience, cfg.lr_decay_factor, cfg.min_lr, cfg.clip_grad_norm) == (1e-3, 2, 0.1, 1e-6, 10.0)
    assert (cfg.hidden_units, cfg.embedding_dim, cfg.net_dropout, cfg.batch_norm) == ([400, 400, 400], 16, 0.1, True)
    assert (cfg.embedding_init_std, cfg.seed, cfg.max_epochs, cfg.probe_rows) == (1e-4, 2024, 100, 4096)
    assert CONFIG_KEYS == tuple(f.name for f in dataclasses.fields(TrainConfig))
    interface_keys = ("dataset data_root method fusion n student students student_args hidden_units width_match_n "
                      "embedding_dim net_dropout batch_norm "
                      "embedding_regularizer embedding_init_std batch_size lr max_epochs max_steps patience "
                      "lr_decay_factor min_lr clip_grad_norm eval_every_steps cons kd_weight mutual_weight exam "
                      "detach_exam exam_weights kdef_terms "
                      "seed form precision compile data_on_device probe_rows save_every spectra_every spectra_unit "
                      "deterministic "
                      "num_threads tracker").split()
    assert list(CONFIG_KEYS) == interface_keys


def test_merge_order_defaults_then_file_then_overrides(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("method: dml\nn: 4\nhidden_units: [64, 32]\nexam: false\n")
    cfg = resolve_config(["n=6", "lr=0.01"], config_file=path)
    assert (cfg.method, cfg.n, cfg.hidden_units, cfg.lr, cfg.exam) == ("dml", 6, [64, 32], 0.01, False)
    assert resolve_config({"n": 2, "mutual_weight": 0.5}, config_file=path).mutual_weight == 0.5
    assert resolve_config(TrainConfig(n=5)).n == 5
    assert resolve_config(["seed=1"], base=TrainConfig(n=7)).n == 7


@pytest.mark.parametrize("bad", [["nn=3"], {"nn": 3}])
def test_unknown_key_lists_the_valid_keys(bad):
    with pytest.raises(UserError, match="unknown config key 'nn'; valid keys: " + ", ".join(CONFIG_KEYS)):
        resolve_config(bad)


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("num_subnets: 3\n")
    with pytest.raises(UserError, match=f"{path}: unknown config key 'num_subnets'"):
        resolve_config(config_file=path)
    path.write_text("- a\n- b\n")
    with pytest.raises(UserError, match="expected a mapping of config keys, got list"):
        resolve_config(config_file=path)


@pytest.mark.parametrize(("override", "message"), [
    ("method=ensemble", r"'method': expected one of dml, kd, kdef, vanilla, got 'ensemble'"),
    ("student=dnn", r"'student': expected one of (\w+, )*mlp(, \w+)*, got 'dnn'"),
    ("fusion=max", r"'fusion': expected one of mean, sum, concat, got 'max'"),
    ("cons=l3", r"'cons': expected one of bce, huber, kl, mae, mse, got 'l3'"),
    ("form=vmap", r"'form': expected one of auto, loop, batched"),
    ("n=0", r"'n': expected an integer >= 1"),
    ("batch_size=0", r"'batch_size': expected an integer >= 1"),
    ("max_steps=0", r"'max_steps': expected null or an integer >= 1"),
    ("hidden_units=[16,0]", r"'hidden_units': expected a list of positive widths"),
    ("net_dropout=1.0", r"'net_dropout': expected a probability in \[0, 1\)"),
    ("lr=0", r"'lr': expected a positive learning rate"),
    ("lr_decay_factor=2", r"'lr_decay_factor': expected a factor in \(0, 1\]"),
    ("embedding_regularizer=-1", r"'embedding_regularizer': expected a non-negative number"),
    ("probe_rows=-1", r"'probe_rows': expected an integer >= 0"),
    ("n=three", r"bad value for config key 'n' \(expected int\)"),
    ("exam=maybe", r"bad value for config key 'exam'"),
])
def test_invalid_values_name_the_key_and_the_expectation(override, message):
    with pytest.raises(UserError, match=message):
        resolve_config([override])


def test_hash_is_sha256_of_the_non_default_keys_and_yaml_round_trips(tmp_path):
    cfg = resolve_config(["method=kd", "n=2", "hidden_units=[8]", "lr=0.001"])  # lr at its default
    identity = {"config_schema": CONFIG_SCHEMA, "method": "kd", "n": 2, "hidden_units": [8]}
    assert config_identity(cfg) == identity
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    assert config_hash(cfg) == hashlib.sha256(canonical.encode()).hexdigest()
    assert config_hash(config_to_dict(cfg)) == config_hash(cfg)  # a resolved dict hashes as the dataclass
    path = tmp_path / "config.yaml"
    path.write_text(config_to_yaml(cfg))
    assert load_config_file(path) == config_to_dict(cfg)
    assert resolve_config(config_file=path) == cfg
    assert config_hash(resolve_config(config_file=path)) == config_hash(cfg)
    assert config_hash(dataclasses.replace(cfg, seed=1)) != config_hash(cfg)


def test_shipped_experiment_configs_resolve():
    from pathlib import Path

    files = sorted((Path(__file__).resolve().parents[1] / "configs" / "exp").glob("*.yaml"))
    assert len(files) >= 4
    for path in files:
        resolve_config(config_file=path)


@pytest.mark.parametrize("method", ["dml", "kdef"])
def test_concat_fusion_is_refused_for_methods_without_a_fused_loss(method):
    with pytest.raises(UserError, match="concat head never trains"):
        resolve_config([f"method={method}", "fusion=concat"])
    assert resolve_config(["method=kd", "fusion=concat"]).fusion == "concat"  # KD keeps the ensemble BCE


#: every TrainConfig default under CONFIG_SCHEMA 1. A key added later with a neutral default need not be listed;
#: if a listed default changes, runs trained under the old one must not keep their names: bump
#: config.CONFIG_SCHEMA and pin the new defaults here.
SCHEMA_1_DEFAULTS = {
    'dataset': 'movielens-100k',
    'data_root': None,
    'method': 'kdef',
    'fusion': 'mean',
    'n': 3,
    'student': 'mlp',
    'hidden_units': [400, 400, 400],
    'width_match_n': None,
    'embedding_dim': 16,
    'net_dropout': 0.1,
    'batch_norm': True,
    'embedding_regularizer': 1e-05,
    'embedding_init_std': 0.0001,
    'batch_size': 4096,
    'lr': 0.001,
    'max_epochs': 100,
    'max_steps': None,
    'patience': 2,
    'lr_decay_factor': 0.1,
    'min_lr': 1e-06,
    'clip_grad_norm': 10.0,
    'eval_every_steps': None,
    'cons': 'mse',
    'kd_weight': 1.0,
    'mutual_weight': None,
    'exam': None,
    'detach_exam': False,
    'exam_weights': None,
    'kdef_terms': ['kd', 'dml'],
    'seed': 2024,
    'form': 'auto',
    'probe_rows': 4096,
    'save_every': None,
    'spectra_every': 1,
    'spectra_unit': 'epoch',
    'deterministic': False,
    'num_threads': None,
}


def test_changing_a_default_requires_a_new_config_schema():
    defaults = config_to_dict(TrainConfig())
    changed = {k: (v, defaults.get(k, "<removed>")) for k, v in SCHEMA_1_DEFAULTS.items() if defaults.get(k) != v}
    assert CONFIG_SCHEMA == 1 and not changed, f"defaults changed (pinned, now): {changed}"


def test_a_new_key_with_a_neutral_default_keeps_every_hash(monkeypatch):
    from collapse_lab import config as C

    configs = [C.resolve_config(o) for o in (["n=4"], ["method=dml", "seed=7"], [])]
    before = [C.config_hash(c) for c in configs]
    extended = dataclasses.make_dataclass("Extended", [("new_key", bool, False)], bases=(C.TrainConfig,))
    monkeypatch.setattr(C, "TrainConfig", extended)
    for cfg, digest in zip(configs, before, strict=True):
        grown = extended(**dataclasses.asdict(cfg))
        assert C.config_hash(grown) == digest  # the new key at its default is not part of the identity
        assert C.config_hash(dataclasses.replace(grown, new_key=True)) != digest
