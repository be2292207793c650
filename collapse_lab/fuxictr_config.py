"""FuxiCTR ``model_config.yaml`` files as training configs: ``collapse-lab train --config FILE [--experiment ID]``.

A FuxiCTR model config (FuxiCTR 2.x ``model_zoo/*/config/model_config.yaml``; the KDEF authors' repository has the
same shape, docs/method.md §13) maps experiment ids to blocks of settings, with an optional ``Base`` block merged
under every experiment (the experiment's keys win)::

    Base: {model_root: ./checkpoints/, early_stop_patience: 2, eval_steps: null, ...}
    KDEF_ml100k: {model: EKTF, dataset_id: movielens-100k, learning_rate: 1.e-3, epochs: 100, num_student: 3,
                  embedding_regularizer: 1.e-5, net_regularizer: 0, hidden_units: [400, 400, 400],
                  hidden_activations: relu, net_dropout: 0.1, batch_norm: True, monitor: {AUC: 1, logloss: 0},
                  optimizer: adam, loss: binary_crossentropy, batch_size: 4096, embedding_dim: 16, seed: 2024}

:func:`read_fuxictr_config` picks one experiment and maps it to collapse-lab's keys (docs/architecture.md §5).
Each key is *mapped* (``learning_rate`` -> ``lr``), *ignored* because collapse-lab does exactly that anyway (Adam,
ReLU, binary cross-entropy, early stopping on the validation AUC — docs/method.md §6) or because it is FuxiCTR
bookkeeping (paths, workers, logging), or rejected with a one-line error when its value asks for something
collapse-lab does not do (another optimiser or activation, a logloss term in ``monitor``, a net regulariser, a
model other than the MLP ensemble). Unknown keys are errors too. :func:`format_mapping` renders the table the CLI
prints on stderr.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple, Union

from collapse_lab.errors import UserError

__all__ = ["is_fuxictr_config", "read_fuxictr_config", "map_experiment", "format_mapping", "fuxictr_layer", "BASE"]

BASE = "Base"

#: FuxiCTR model name -> collapse-lab method (the homogeneous MLP ensemble of the authors' EKTF.py, or plain MLPs)
MODELS = {"EKTF": "kdef", "KDEF": "kdef", "KDEF_MLP": "kdef", "MLP": "vanilla", "MLPs": "vanilla", "DNN": "vanilla"}
#: renamed keys: FuxiCTR -> collapse-lab
RENAMED = {"dataset_id": "dataset", "learning_rate": "lr", "epochs": "max_epochs", "early_stop_patience": "patience",
           "num_student": "n", "num_students": "n", "eval_steps": "eval_every_steps"}
#: same name, same meaning
SAME = ("batch_size", "embedding_dim", "hidden_units", "net_dropout", "batch_norm", "seed", "embedding_regularizer")
#: FuxiCTR bookkeeping without a collapse-lab counterpart (paths, loaders, logging, the dataset config's keys)
BOOKKEEPING = ("model_root", "num_workers", "verbose", "pickle_feature_encoder", "debug_mode", "gpu", "model_id",
               "data_root", "data_format", "train_data", "valid_data", "test_data", "feature_cols", "label_col",
               "min_categr_count", "metrics", "save_best_only")
#: keys that must be null (FuxiCTR feature selection; collapse-lab trains on every field of the prepared dataset)
MUST_BE_NULL = ("group_id", "use_features", "feature_specs", "feature_config")

Row = Tuple[str, Any, str, str]  # (FuxiCTR key, value, action: mapped | ignored, collapse-lab key=value or reason)


def is_fuxictr_config(data: Any) -> bool:
    """Whether a parsed YAML document has the FuxiCTR shape: a mapping of experiment ids to mappings.

    Example:
        >>> is_fuxictr_config({"Base": {}, "KDEF_test": {"model": "EKTF"}}), is_fuxictr_config({"n": 3})
        (True, False)
    """
    return isinstance(data, dict) and bool(data) and all(isinstance(v, dict) for v in data.values())


def _line_of(path: Path, experiment: str, key: str | None = None) -> str:
    """``:line N`` of ``experiment`` (or of ``experiment.key``) in the YAML file, empty if not found."""
    import yaml

    try:
        root = yaml.compose(path.read_text())
    except (OSError, yaml.YAMLError):
        return ""
    for knode, vnode in getattr(root, "value", []):
        if knode.value == experiment:
            if key is None:
                return f": line {knode.start_mark.line + 1}"
            for k2, _ in getattr(vnode, "value", []) if isinstance(vnode, yaml.MappingNode) else []:
                if k2.value == key:
                    return f": line {k2.start_mark.line + 1}"
            return f": line {knode.start_mark.line + 1}"
    return ""


def read_fuxictr_config(path: Union[str, Path], experiment: str | None = None,
                        data: Mapping[str, Any] | None = None) -> Tuple[Dict[str, Any], List[Row]]:
    """Map one experiment of the FuxiCTR model config ``path`` to collapse-lab config keys.

    Args:
        path: the YAML file.
        experiment: the experiment id; default the only one (``Base`` is not an experiment).
        data: the parsed file, when the caller has read it already.

    Returns:
        ``(config, rows)``: the collapse-lab keys, and one row per FuxiCTR key for :func:`format_mapping`.

    Raises:
        UserError: no or an unknown experiment id (the message lists them), a value collapse-lab cannot honour, or
            an unknown key, naming the file, line, experiment and key.
    """
    path = Path(path)
    if data is None:
        from collapse_lab.config import load_yaml_document

        data = load_yaml_document(path)
    if not is_fuxictr_config(data):
        raise UserError(f"{path}: not a FuxiCTR model config (expected experiment ids mapping to blocks of settings)")
    ids = [k for k in data if k != BASE]
    if experiment is None:
        if len(ids) != 1:
            raise UserError(f"{path}: {len(ids)} experiments ({', '.join(map(str, ids)) or 'none'}); pick one "
                            "with --experiment ID")
        experiment = ids[0]
    elif experiment not in ids:
        raise UserError(f"{path}: no experiment {experiment!r}; experiments: {', '.join(map(str, ids)) or 'none'}")
    block = {**data.get(BASE, {}), **data[experiment]}

    def where(key: str) -> str:
        source = experiment if key in data[experiment] else BASE
        return f"{path}{_line_of(path, source, key)}: {source}.{key}"

    return map_experiment(block, where)


def _regularizer(value: Any) -> float:
    """FuxiCTR's embedding regulariser: a number or ``l2(x)`` (the weight of (x/2)·‖P‖², docs/method.md §6)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = re.fullmatch(r"\s*l2\(\s*([0-9.eE+-]+)\s*\)\s*", str(value))
    if match:
        return float(match.group(1))
    raise ValueError("expected a number or l2(x)")


def _is_zero(value: Any) -> bool:
    try:
        return value is None or _regularizer(value) == 0.0
    except ValueError:
        return False


def _check_monitor(value: Any) -> bool:
    """``AUC`` alone, or a weight map with AUC > 0 and every other weight 0, in ``max`` mode."""
    if isinstance(value, str):
        return value == "AUC"
    if isinstance(value, dict):
        try:
            return value.get("AUC", 0) > 0 and all(w == 0 for k, w in value.items() if k != "AUC")
        except TypeError:  # a weight that is not a number
            return False
    return False


#: key -> (accepts the value, reason it is ignored, what collapse-lab needs when it is not accepted)
IGNORED: Dict[str, Tuple[Callable[[Any], bool], str, str]] = {
    "optimizer": (lambda v: str(v).lower() == "adam", "Adam is the optimiser", "adam"),
    "loss": (lambda v: v == "binary_crossentropy", "binary cross-entropy on probabilities", "binary_crossentropy"),
    "task": (lambda v: v == "binary_classification", "CTR prediction is binary", "binary_classification"),
    "hidden_activations": (lambda v: all(str(a).lower() == "relu" for a in (v if isinstance(v, list) else [v])),
                           "MLP students use ReLU", "relu (or a list of relu)"),
    "monitor": (_check_monitor, "early stopping on the validation ensemble AUC",
                "AUC or {AUC: 1, logloss: 0} (collapse-lab early-stops on the validation AUC only)"),
    "monitor_mode": (lambda v: v == "max", "the AUC is maximised", "max"),
    "shuffle": (lambda v: v is True, "training batches are shuffled every epoch", "True"),
    "net_regularizer": (_is_zero, "no net regulariser", "0 or null (collapse-lab has no net regulariser)"),
}


def map_experiment(block: Mapping[str, Any], where: Callable[[str], str] = lambda key: key
                   ) -> Tuple[Dict[str, Any], List[Row]]:
    """Map one merged experiment block (``Base`` under the experiment) to collapse-lab keys.

    Example:
        >>> config, rows = map_experiment({"model": "EKTF", "learning_rate": 1e-3, "optimizer": "adam",
        ...                                 "num_workers": 8})
        >>> config
        {'method': 'kdef', 'lr': 0.001}
        >>> [r[2] for r in rows]
        ['mapped', 'mapped', 'ignored', 'ignored']
    """
    config: Dict[str, Any] = {}
    rows: List[Row] = []
    for key, value in block.items():
        if key == "model":
            if value not in MODELS:
                raise UserError(f"{where(key)}: model {value!r} is not supported; collapse-lab trains ensembles of "
                                f"MLP students ({', '.join(f'{m} -> {k}' for m, k in MODELS.items())})")
            config["method"] = MODELS[value]
            rows.append((key, value, "mapped", f"method={MODELS[value]}"))
        elif key in RENAMED or key in SAME:
            ours = RENAMED.get(key, key)
            if key == "embedding_regularizer":
                try:
                    value = _regularizer(value)
                except ValueError as exc:
                    raise UserError(f"{where(key)}: {exc}, got {value!r}") from None
            config[ours] = value
            rows.append((key, value, "mapped", f"{ours}={value!r}"))
        elif key in IGNORED:
            accepts, reason, expected = IGNORED[key]
            if not accepts(value):
                raise UserError(f"{where(key)}: expected {expected}, got {value!r}")
            rows.append((key, value, "ignored", reason))
        elif key in MUST_BE_NULL:
            if value is not None:
                raise UserError(f"{where(key)}: expected null (collapse-lab trains on every field of the prepared "
                                f"dataset), got {value!r}")
            rows.append((key, value, "ignored", "null: every field is used"))
        elif key in BOOKKEEPING:
            rows.append((key, value, "ignored", "FuxiCTR bookkeeping (paths, loaders, logging, dataset config)"))
        else:
            raise UserError(f"{where(key)}: unknown FuxiCTR key {key!r} (collapse-lab maps "
                            f"{', '.join(['model', *RENAMED, *SAME, *IGNORED, *MUST_BE_NULL])}; ignores "
                            f"{', '.join(BOOKKEEPING)})")
    if config.get("method") == "vanilla" and "n" not in config:
        config["n"] = 1  # FuxiCTR's MLP is one network
    return config, rows


def format_mapping(rows: List[Row], source: str) -> str:
    """The mapping as an aligned text table (what ``collapse-lab train`` prints on stderr).

    Example:
        >>> print(format_mapping([("learning_rate", 0.001, "mapped", "lr=0.001")], "f.yaml:KDEF"))
        f.yaml:KDEF (FuxiCTR model config)
          learning_rate  0.001  mapped  lr=0.001
    """
    cells = [(k, repr(v) if not isinstance(v, (int, float)) or isinstance(v, bool) else str(v), a, r)
             for k, v, a, r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(3)] if cells else [0, 0, 0]
    lines = [f"{source} (FuxiCTR model config)"]
    lines += [f"  {k:<{widths[0]}}  {v:<{widths[1]}}  {a:<{widths[2]}}  {r}" for k, v, a, r in cells]
    return "\n".join(lines)


def fuxictr_layer(config_file: Path | None, experiment: str | None, overrides: Sequence[str],
                  echo: Callable[[str], None]) -> Tuple[Any, Path | None]:
    """``(config, config_file)`` for :func:`collapse_lab.training.api.train` from ``train --config FILE
    [--experiment ID] OVERRIDES``: a FuxiCTR model config becomes the resolved config of its experiment under the
    overrides, its mapping table passed to ``echo``; any other file (or none) is passed on unchanged.

    Raises:
        UserError: ``--experiment`` without a FuxiCTR file, or what :func:`read_fuxictr_config` raises.
    """
    from collapse_lab.config import load_yaml_document
    from collapse_lab.resolve import resolve_config

    data = load_yaml_document(config_file) if config_file is not None else None
    if not is_fuxictr_config(data):
        if experiment is not None:
            raise UserError(f"--experiment {experiment}: needs --config with a FuxiCTR model_config.yaml "
                            "(experiment ids mapping to blocks of settings)")
        return list(overrides), config_file
    mapped, rows = read_fuxictr_config(config_file, experiment, data=data)
    echo(format_mapping(rows, f"{config_file}:{experiment or next(k for k in data if k != BASE)}"))
    return resolve_config(list(overrides), base=resolve_config(mapped)), None
