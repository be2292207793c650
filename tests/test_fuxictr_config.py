"""FuxiCTR model_config.yaml files (the KDEF authors' shape: a Base block and experiment blocks) as training
configs: the mapping, the printed table, the one-line errors and ``train --config FILE --experiment ID``."""

from __future__ import annotations

import json

import pytest
from train_fixtures import make_dataset

from collapse_lab.cli import main
from collapse_lab.config import resolve_config
from collapse_lab.errors import UserError
from collapse_lab.fuxictr_config import format_mapping, read_fuxictr_config

# written for these tests in the shape of FuxiCTR's model_zoo configs and of salmon1802/KDEF config/model_config.yaml
# (Base block, experiment ids, FuxiCTR key spellings); the values are ours
MODEL_CONFIG = """\
Base:
    model_root: './checkpoints/'
    num_workers: 3
    verbose: 1
    early_stop_patience: 2
    pickle_feature_encoder: True
    save_best_only: True
    eval_steps: null
    debug_mode: False
    group_id: null
    use_features: null
    feature_specs: null
    feature_config: null

KDEF_tiny:
    model: EKTF
    dataset_id: {dataset}
    loss: 'binary_crossentropy'
    metrics: ['logloss', 'AUC']
    task: binary_classification
    optimizer: adam
    learning_rate: 1.e-2
    embedding_regularizer: 1.e-5
    net_regularizer: 0
    batch_size: 256
    embedding_dim: 4
    num_student: 2
    hidden_units: [8, 8]
    hidden_activations: relu
    net_dropout: 0.1
    batch_norm: True
    epochs: 3
    shuffle: True
    seed: 7
    monitor: {{'AUC': 1, 'logloss': 0}}
    monitor_mode: 'max'

MLP_mean_tiny:
    model: MLP
    dataset_id: {dataset}
    optimizer: adam
    learning_rate: 1.e-3
    early_stop_patience: 1
    hidden_units: [16]
    hidden_activations: [relu]
    embedding_regularizer: l2(1.e-4)
    monitor: AUC
"""

KDEF_EXPECTED = {"method": "kdef", "dataset": "syn", "lr": 1e-2, "embedding_regularizer": 1e-5, "batch_size": 256,
                 "embedding_dim": 4, "n": 2, "hidden_units": [8, 8], "net_dropout": 0.1, "batch_norm": True,
                 "max_epochs": 3, "seed": 7, "patience": 2, "eval_every_steps": None}


@pytest.fixture()
def config_file(tmp_path):
    path = tmp_path / "model_config.yaml"
    path.write_text(MODEL_CONFIG.format(dataset="syn"))
    return path


def test_authors_shape_maps_every_key(config_file):
    config, rows = read_fuxictr_config(config_file, "KDEF_tiny")
    assert config == KDEF_EXPECTED
    actions = {key: action for key, _, action, _ in rows}
    assert {k for k, a in actions.items() if a == "mapped"} == {
        "model", "dataset_id", "learning_rate", "embedding_regularizer", "batch_size", "embedding_dim",
        "num_student", "hidden_units", "net_dropout", "batch_norm", "epochs", "seed", "early_stop_patience",
        "eval_steps"}
    assert {k for k, a in actions.items() if a == "ignored"} == {
        "model_root", "num_workers", "verbose", "pickle_feature_encoder", "save_best_only", "debug_mode", "group_id",
        "use_features", "feature_specs", "feature_config", "loss", "metrics", "task", "optimizer", "net_regularizer",
        "hidden_activations", "shuffle", "monitor", "monitor_mode"}
    table = format_mapping(rows, "f:KDEF_tiny").splitlines()
    assert table[0] == "f:KDEF_tiny (FuxiCTR model config)"
    assert len(table) == 1 + len(rows) and len({line.index(" mapped ") for line in table if " mapped " in line}) == 1
    assert ["learning_rate", "0.01", "mapped", "lr=0.01"] in [line.split() for line in table]
    assert any(line.split()[:3] == ["optimizer", "'adam'", "ignored"] and line.endswith("Adam is the optimiser")
               for line in table)


def test_experiment_wins_over_base_and_mlp_is_one_vanilla_student(config_file):
    config, _ = read_fuxictr_config(config_file, "MLP_mean_tiny")
    assert config == {"method": "vanilla", "n": 1, "dataset": "syn", "lr": 1e-3, "patience": 1, "hidden_units": [16],
                      "embedding_regularizer": 1e-4, "eval_every_steps": None}


def test_experiment_choice(config_file, tmp_path):
    with pytest.raises(UserError, match=r"model_config.yaml: 2 experiments \(KDEF_tiny, MLP_mean_tiny\); pick one "
                                        r"with --experiment ID$"):
        read_fuxictr_config(config_file)
    with pytest.raises(UserError, match=r"no experiment 'KDEF'; experiments: KDEF_tiny, MLP_mean_tiny$"):
        read_fuxictr_config(config_file, "KDEF")
    single = tmp_path / "single.yaml"
    single.write_text(MODEL_CONFIG.format(dataset="syn").split("\nMLP_mean_tiny:")[0])
    assert read_fuxictr_config(single)[0] == KDEF_EXPECTED
    # the Python API reads a single-experiment file through load_config_file
    assert resolve_config(config_file=single).lr == 1e-2


@pytest.mark.parametrize("old, new, line, message", [
    ("optimizer: adam", "optimizer: sgd", 21, "KDEF_tiny.optimizer: expected adam, got 'sgd'"),
    ("hidden_activations: relu", "hidden_activations: tanh", 29,
     "KDEF_tiny.hidden_activations: expected relu (or a list of relu), got 'tanh'"),
    ("{{'AUC': 1, 'logloss': 0}}", "{{'AUC': 1, 'logloss': -1}}", 35, "KDEF_tiny.monitor: expected AUC or "
     "{AUC: 1, logloss: 0} (collapse-lab early-stops on the validation AUC only), got {'AUC': 1, 'logloss': -1}"),
    ("net_regularizer: 0", "net_regularizer: 1.e-3", 24,
     "KDEF_tiny.net_regularizer: expected 0 or null (collapse-lab has no net regulariser), got 0.001"),
    ("model: EKTF", "model: EKTF_L", 16, "KDEF_tiny.model: model 'EKTF_L' is not supported"),
    ("num_student: 2", "net1_dropout: 0.1", 27, "KDEF_tiny.net1_dropout: unknown FuxiCTR key 'net1_dropout'"),
    ("group_id: null", "group_id: user", 10, "Base.group_id: expected null"),
])
def test_values_collapse_lab_cannot_honour_are_one_line_errors(tmp_path, old, new, line, message):
    path = tmp_path / "model_config.yaml"
    text = MODEL_CONFIG.replace(old, new, 1)
    assert text != MODEL_CONFIG
    path.write_text(text.format(dataset="syn"))
    with pytest.raises(UserError) as err:
        read_fuxictr_config(path, "KDEF_tiny")
    assert str(err.value).startswith(f"{path}: line {line}: {message}")
    assert "\n" not in str(err.value)


def test_cli_trains_a_fuxictr_experiment_and_prints_the_table(tmp_path, capsys):
    dataset = make_dataset(tmp_path / "data", rows=2000)
    path = tmp_path / "model_config.yaml"
    path.write_text(MODEL_CONFIG.format(dataset=dataset))
    out = tmp_path / "run"
    main(["train", "--config", str(path), "--experiment", "KDEF_tiny", "--out", str(out), "--device", "cpu",
          "--max-steps", "2", "--json", "probe_rows=0", "seed=11"])
    captured = capsys.readouterr()
    assert captured.err.splitlines()[0] == f"{path}:KDEF_tiny (FuxiCTR model config)"
    assert any(line.split()[:2] == ["learning_rate", "0.01"] for line in captured.err.splitlines())
    assert json.loads(captured.out)["status"] == "complete"
    stored = json.loads((out / "manifest.json").read_text())["config"]
    # the experiment's keys, then the overrides (seed=11 wins over the file's 7)
    assert {k: stored[k] for k in KDEF_EXPECTED} == {**KDEF_EXPECTED, "dataset": str(dataset), "seed": 11}
    assert (stored["max_steps"], stored["probe_rows"]) == (2, 0)


def test_cli_experiment_needs_a_fuxictr_file(tmp_path, capsys):
    flat = tmp_path / "flat.yaml"
    flat.write_text("method: kd\n")
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--config", str(flat), "--experiment", "X"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --experiment X: needs --config with a FuxiCTR model_config.yaml (experiment ids mapping to blocks "
        "of settings)"]
