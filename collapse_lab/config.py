"""The training configuration: one flat, typed dataclass merged with OmegaConf.

Resolution order (later wins)::

    TrainConfig defaults  <-  --config FILE (YAML)  <-  key=value overrides (CLI dotlist or a dict)

Keys are snake_case and equal the constructor kwargs of the models and strategies (docs/architecture.md §4, §5), with
FuxiCTR spellings where the concept exists (``embedding_dim``, ``hidden_units``, ``net_dropout``,
``batch_norm``, ``embedding_regularizer``). Defaults follow the authors' setup (docs/method.md §6, §8.2). Unknown keys,
wrong types and out-of-range values raise :class:`~collapse_lab.errors.UserError` naming the key and what was
expected. This module checks what the config alone decides (keys, types, ranges, ``n`` against ``students``); the
names of the registries, the per-student arguments and the method/fusion rules belong to their owners
(``collapse_lab.models.check_config``, ``collapse_lab.strategies.check_config``), which
:func:`collapse_lab.resolve.resolve_config` runs after this module's :func:`resolve_config` — training, the sweep
grid and the CLI resolve through it (docs/architecture.md §2, §5). The resolved config is saved as ``config.yaml`` in
every run directory; :func:`config_hash` is the
SHA-256 of the canonical JSON of its non-default keys and :data:`CONFIG_SCHEMA` (:func:`config_identity`), so a
new key whose default keeps the old behaviour renames no run and breaks no resume.

Example:
    >>> cfg = resolve_config(["method=vanilla", "n=2", "hidden_units=[32,32]"])
    >>> cfg.method, cfg.n, cfg.hidden_units, cfg.lr
    ('vanilla', 2, [32, 32], 0.001)
    >>> resolve_config({"nn": 3})
    Traceback (most recent call last):
    ...
    collapse_lab.errors.UserError: unknown config key 'nn'; valid keys: ...
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union

from collapse_lab.errors import UserError, check_key

__all__ = ["TrainConfig", "CONFIG_KEYS", "FORMS", "UNHASHED_KEYS", "resolve_config", "config_to_dict", "config_hash",
           "config_identity", "CONFIG_SCHEMA", "config_to_yaml", "load_config_file", "load_yaml_document",
           "validate_config"]

#: implementations of homogeneous students: auto = loop on CPU, batched on CUDA (docs/performance.md §3, §6)
FORMS: Tuple[str, ...] = ("auto", "loop", "batched")


@dataclass
class TrainConfig:
    """Everything that determines a training run (flat; one key per constructor kwarg)."""

    # --- data
    dataset: str = "movielens-100k"  # processed dataset name (under data_root) or a processed directory
    data_root: str | None = None  # where names resolve; None = $COLLAPSE_LAB_DATA or ./data
    # --- ensemble and method
    method: str = "kdef"  # vanilla | kd | dml | kdef (strategy registry)
    fusion: str = "mean"  # mean | sum | concat; the paper's code: teacher = sigmoid(mean of logits)
    n: int = 3  # number of students N (the authors' repository default is 3)
    student: str = "mlp"  # student architecture (student registry), for every member
    students: List[str] | None = None  # a mix instead: one student name per member (len = n), e.g. [pnn, final, ecn]
    student_args: Dict[str, Any] = field(default_factory=dict)  # per-student argument blocks {name: {arg: value}}
    # hidden_units, net_dropout and batch_norm fill the same-named argument of every student that has them,
    # unless its student_args block sets it
    hidden_units: List[int] = field(default_factory=lambda: [400, 400, 400])  # MLP widths, paper footnote 2
    width_match_n: int | None = None  # capacity control: n=1 vanilla, widths scaled to the parameters of K students
    embedding_dim: int = 16  # d, every dataset but KKBox (docs/method.md §8.2)
    net_dropout: float = 0.1  # dropout after each hidden layer, KDEF_MLP setting
    batch_norm: bool = True  # Linear -> BatchNorm -> ReLU -> Dropout (FuxiCTR MLP_Block)
    embedding_regularizer: float = 1e-5  # lambda_emb: loss += lambda_emb/2 * sum_f ||P_f||^2 (Criteo setting)
    embedding_init_std: float = 1e-4  # FuxiCTR default normal(0, 1e-4) embedding init
    # --- optimisation (docs/method.md §6, FuxiCTR 2.0.x behaviour)
    batch_size: int = 4096  # rows per step (paper's small-scale plan; Criteo used 10,000)
    lr: float = 1e-3  # Adam learning rate
    max_epochs: int = 100  # upper bound; early stopping ends most runs long before
    max_steps: int | None = None  # smoke cap on optimizer steps (None = no cap)
    patience: int = 2  # stop after this many evaluations without improvement
    lr_decay_factor: float = 0.1  # lr <- max(lr * factor, min_lr) on every evaluation without improvement
    min_lr: float = 1e-6  # learning-rate floor of the plateau decay
    clip_grad_norm: float | None = 10.0  # max global gradient norm (FuxiCTR fit default); None = off
    eval_every_steps: int | None = None  # evaluate every k steps instead of once per epoch
    # --- knowledge transfer (strategies)
    cons: str = "mse"  # consistency loss between probabilities: mse | mae | kl | bce | huber (paper Fig. 10)
    kd_weight: float = 1.0  # lambda of the kd method when exam=false
    mutual_weight: float | None = None  # mu of dml / exam=false; None = 1/N for dml (DML), 1 for kdef
    exam: bool | None = None  # examination-mechanism weights; None = the method's default (on for kdef only);
    #                              kdef with exam=false is the "w/o EM" ablation (lambda = mu = 1, paper Table V)
    detach_exam: bool = False  # stop gradients through lambda and mu (the authors' code does not)
    exam_weights: str | None = None  # em | uniform (lambda = 1/N, mu = 1/(N-1)) | constant; None = by `exam`
    kdef_terms: List[str] = field(default_factory=lambda: ["kd", "dml"])  # kdef ablation: [kd] mu=0, [dml] lambda=0
    # --- reproducibility and outputs
    seed: int = 2024  # run seed; students get derive_seeds(seed, n)
    form: str = "auto"  # auto | loop | batched (numerically equivalent implementations)
    precision: str = "fp32"  # fp32 | bf16: students' forward under bf16 autocast, fp32 master weights and losses
    compile: bool = False  # torch.compile the students' forward (eager with one log line where unavailable)
    data_on_device: bool = False  # CUDA: keep the train/valid splits on the device, batches sliced there
    probe_rows: int = 4096  # validation rows whose hidden activations go to probe.safetensors (0 = none)
    save_every: int | None = None  # also keep checkpoints/epoch_{k:04d}/ every k epochs (None = best only)
    spectra_every: int = 1  # spectra_trace.csv: weight/embedding metrics every k spectra_unit (0 = off), step 0, last
    spectra_unit: str = "epoch"  # epoch | step: the unit of spectra_every
    deterministic: bool = False  # torch.use_deterministic_algorithms (CPU runs are deterministic anyway)
    num_threads: int | None = None  # torch intra-op threads (None = torch's default)
    tracker: Any = field(default_factory=lambda: ["csv"])  # csv | tensorboard | mlflow, or a list (tracking/)


#: every valid key, in declaration order
CONFIG_KEYS: Tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig))
#: keys that say where results are reported, not what is trained: left out of :func:`config_identity` (so of the
#: config hash and sweep run names) even when set, so sending a run to TensorBoard does not rename it
UNHASHED_KEYS: Tuple[str, ...] = ("tracker",)

ConfigLike = Union[None, TrainConfig, Mapping[str, Any], Sequence[str]]


def _user_error_from_omegaconf(exc: Exception, source: str) -> UserError:
    """Turn an OmegaConf error into a one-line UserError naming the key."""
    from omegaconf.errors import ConfigKeyError

    key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
    if isinstance(exc, ConfigKeyError):
        return UserError(f"{source}: unknown config key {key!r}; valid keys: {', '.join(CONFIG_KEYS)}")
    msg = str(exc).splitlines()[0]
    expected = ""
    if key in CONFIG_KEYS:
        ftype = TrainConfig.__dataclass_fields__[key].type
        expected = f" (expected {ftype})"
    return UserError(f"{source}: bad value for config key {key!r}{expected}: {msg}")


def load_yaml_document(path: Union[str, Path]) -> Any:
    """Parse a YAML file; missing files and syntax errors become one-line errors with the line and column."""
    import yaml

    from collapse_lab.io.inputs import read_text_file

    path = Path(path)
    text = read_text_file(path, "YAML config file", missing="config file not found")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f": line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise UserError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', None) or exc})") from None
    return data


def load_config_file(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a flat YAML config file into a dict (validated later by :func:`resolve_config`); a FuxiCTR
    ``model_config.yaml`` with one experiment is mapped to these keys (:mod:`collapse_lab.fuxictr_config`)."""
    from collapse_lab.fuxictr_config import is_fuxictr_config, read_fuxictr_config

    path = Path(path)
    data = load_yaml_document(path)
    if data is None:
        return {}
    if is_fuxictr_config(data):
        return read_fuxictr_config(path, data=data)[0]
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    unknown = [k for k in data if k not in CONFIG_KEYS]
    if unknown:
        raise UserError(f"{path}: unknown config key {unknown[0]!r}; valid keys: {', '.join(CONFIG_KEYS)}")
    return data


def _merge(base: Any, layer: Any, source: str) -> Any:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.merge(base, layer)
    except OmegaConfBaseException as exc:
        raise _user_error_from_omegaconf(exc, source) from None


def _dotlist(overrides: Sequence[str]) -> Any:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r}: expected key=value (valid keys: {', '.join(CONFIG_KEYS)})")
        key = item.split("=", 1)[0].strip().split(".", 1)[0]  # student_args.ecn.num_cross_layers=2
        if key not in CONFIG_KEYS:
            raise UserError(f"override {item!r}: unknown config key {key!r}; valid keys: {', '.join(CONFIG_KEYS)}")
    import yaml

    for item in overrides:  # OmegaConf parses each value as YAML and lets yaml's errors escape
        try:
            OmegaConf.from_dotlist([item])
        except (OmegaConfBaseException, yaml.YAMLError) as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise UserError(f"override {item!r}: cannot parse the value as YAML ({problem})") from None
    return OmegaConf.from_dotlist(list(overrides))


def resolve_config(overrides: ConfigLike = None, config_file: Union[str, Path] | None = None,
                   base: TrainConfig | None = None) -> TrainConfig:
    """Merge defaults (or ``base``) <- ``config_file`` <- ``overrides`` and validate the result.

    Args:
        overrides: ``["key=value", ...]`` (values parsed as YAML), a mapping, a :class:`TrainConfig`, or None.
        config_file: optional flat YAML file of config keys.
        base: start from this config instead of the defaults (used by ``--resume``).

    Returns:
        A validated :class:`TrainConfig`.

    Raises:
        UserError: unknown key (the message lists the valid keys), wrong type or invalid value.
    """
    from omegaconf import OmegaConf

    if isinstance(overrides, TrainConfig):
        if config_file is None and base is None:
            return validate_config(dataclasses.replace(overrides))
        overrides = config_to_dict(overrides)
    merged = OmegaConf.structured(base if base is not None else TrainConfig)
    if config_file is not None:
        merged = _merge(merged, load_config_file(config_file), str(config_file))
    if overrides:
        if isinstance(overrides, Mapping):
            unknown = [k for k in overrides if k not in CONFIG_KEYS]
            if unknown:
                raise UserError(f"unknown config key {unknown[0]!r}; valid keys: {', '.join(CONFIG_KEYS)}")
            merged = _merge(merged, dict(overrides), "config")
        elif isinstance(overrides, (list, tuple)):
            merged = _merge(merged, _dotlist(overrides), "overrides")
        else:
            raise UserError(f"config: expected a dict, a list of key=value strings or a TrainConfig, "
                            f"got {type(overrides).__name__}")
    cfg = OmegaConf.to_object(merged)
    assert isinstance(cfg, TrainConfig)
    return validate_config(cfg)


def _check(cond: bool, key: str, expected: str, value: Any) -> None:
    check_key(cond, key, expected, value)


def validate_config(cfg: TrainConfig) -> TrainConfig:
    """Check types and ranges; return ``cfg`` (``kdef_terms`` in canonical order) or raise a :class:`UserError`.

    Registry names and per-student arguments are checked by their owners (:func:`collapse_lab.resolve.check_config`).
    """
    for f in dataclasses.fields(TrainConfig):  # .inf/.nan parse as floats; no float key has a use for them
        value = getattr(cfg, f.name)
        if isinstance(value, float):
            _check(math.isfinite(value), f.name, "a finite number", value)
    _check(cfg.form in FORMS, "form", f"one of {', '.join(FORMS)}", cfg.form)
    _check(cfg.precision in ("fp32", "bf16"), "precision", "one of fp32, bf16", cfg.precision)
    _check(cfg.n >= 1, "n", "an integer >= 1 (number of students)", cfg.n)
    _validate_students(cfg)
    _check(all(h >= 1 for h in cfg.hidden_units), "hidden_units", "a list of positive widths", cfg.hidden_units)
    for key in ("embedding_dim", "batch_size", "max_epochs", "patience"):
        _check(getattr(cfg, key) >= 1, key, "an integer >= 1", getattr(cfg, key))
    for key in ("max_steps", "eval_every_steps", "save_every", "num_threads"):
        value = getattr(cfg, key)
        _check(value is None or value >= 1, key, "null or an integer >= 1", value)
    _check(0.0 <= cfg.net_dropout < 1.0, "net_dropout", "a probability in [0, 1)", cfg.net_dropout)
    _check(cfg.lr > 0, "lr", "a positive learning rate", cfg.lr)
    _check(0.0 < cfg.lr_decay_factor <= 1.0, "lr_decay_factor", "a factor in (0, 1]", cfg.lr_decay_factor)
    _check(cfg.min_lr >= 0, "min_lr", "a non-negative learning rate", cfg.min_lr)
    _check(cfg.clip_grad_norm is None or cfg.clip_grad_norm > 0, "clip_grad_norm", "null or > 0",
           cfg.clip_grad_norm)
    for key in ("embedding_regularizer", "kd_weight"):
        _check(getattr(cfg, key) >= 0, key, "a non-negative number", getattr(cfg, key))
    _check(cfg.embedding_init_std > 0, "embedding_init_std", "a positive standard deviation", cfg.embedding_init_std)
    _check(cfg.mutual_weight is None or cfg.mutual_weight >= 0, "mutual_weight", "null or >= 0", cfg.mutual_weight)
    _validate_recipe(cfg)
    _check(cfg.probe_rows >= 0, "probe_rows", "an integer >= 0", cfg.probe_rows)
    _check(cfg.spectra_every >= 0, "spectra_every", "an integer >= 0 (0 = no spectra during training)",
           cfg.spectra_every)
    _check(cfg.spectra_unit in ("epoch", "step"), "spectra_unit", "one of epoch, step", cfg.spectra_unit)
    _check(0 <= cfg.seed < 2**63, "seed", "a non-negative integer", cfg.seed)
    _check(bool(cfg.dataset), "dataset", "a dataset name or directory", cfg.dataset)
    from collapse_lab.tracking import normalize_trackers

    cfg.tracker = normalize_trackers(cfg.tracker)
    return cfg


def _validate_students(cfg: TrainConfig) -> None:
    """``students`` (a mix: one name per member, so ``n == len(students)``) and the shape of ``student_args``."""
    if cfg.students is not None:
        _check(len(cfg.students) > 0 and all(isinstance(s, str) and s for s in cfg.students), "students",
               "null or a non-empty list of student names", cfg.students)
        if len(cfg.students) != cfg.n:
            raise UserError(f"config keys 'n' and 'students': n={cfg.n} but students lists {len(cfg.students)} "
                            f"name(s) {list(cfg.students)}; give one name per student")
        _check(cfg.student == "mlp", "student", "the default (mlp) when students is set (students names every "
               "member)", cfg.student)
    _check(isinstance(cfg.student_args, dict), "student_args", "a mapping {student name: {argument: value}}",
           cfg.student_args)
    for name, block in cfg.student_args.items():
        _check(isinstance(block, dict), f"student_args.{name}", "a mapping {argument: value}", block)


def _validate_recipe(cfg: TrainConfig) -> None:
    """The weight mode, the KDEF ablation terms and the capacity control (:mod:`collapse_lab.recipes`)."""
    from collapse_lab.recipes import kdef_terms, weight_mode

    mode = weight_mode(cfg.method, cfg.exam, cfg.exam_weights)
    _check(mode == "constant" or cfg.exam_weights is None or (cfg.kd_weight == 1.0 and cfg.mutual_weight is None),
           "exam_weights", "constant (or null) when kd_weight or mutual_weight is set", cfg.exam_weights)
    cfg.kdef_terms = kdef_terms(cfg.kdef_terms)  # canonical order, so equal settings hash alike
    _check(cfg.method == "kdef" or cfg.kdef_terms == ["kd", "dml"], "kdef_terms",
           "[kd, dml] unless method is kdef", cfg.kdef_terms)
    if cfg.width_match_n is not None:
        _check(cfg.width_match_n >= 1, "width_match_n", "null or an integer >= 1", cfg.width_match_n)
        _check(cfg.n == 1 and cfg.method == "vanilla", "width_match_n",
               "null unless n=1 and method=vanilla (one student widened to the parameters of K students)",
               cfg.width_match_n)
        _check(len(cfg.hidden_units) > 0, "width_match_n", "null with hidden_units=[] (no width to scale)",
               cfg.width_match_n)


def config_to_dict(cfg: TrainConfig) -> Dict[str, Any]:
    """The config as a plain dict (lists copied), in key order."""
    return {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in dataclasses.asdict(cfg).items()}


#: version of what the config hash means; bump it whenever a default of :class:`TrainConfig` changes (a test pins
#: the digest of the defaults), so that runs trained under the old default get a new hash
CONFIG_SCHEMA = 1


def config_identity(cfg: Union[TrainConfig, Mapping[str, Any]]) -> Dict[str, Any]:
    """The settings that identify a run: every key whose value differs from its :class:`TrainConfig` default,
    except the :data:`UNHASHED_KEYS` (where metrics are reported), plus ``config_schema``. A key added later with a
    default that reproduces the old behaviour therefore leaves the identity of existing runs (their names and
    resumability) unchanged.

    Example:
        >>> config_identity(TrainConfig(n=4))
        {'config_schema': 1, 'n': 4}
    """
    values = config_to_dict(cfg) if isinstance(cfg, TrainConfig) else dict(cfg)
    defaults = config_to_dict(TrainConfig())
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise UserError(f"unknown config key {unknown[0]!r}; valid keys: {', '.join(CONFIG_KEYS)}")
    return {"config_schema": CONFIG_SCHEMA,
            **{k: v for k, v in values.items() if k not in UNHASHED_KEYS and _canonical(v) != _canonical(defaults[k])}}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(cfg: Union[TrainConfig, Mapping[str, Any]]) -> str:
    """SHA-256 (hex) of the canonical JSON (sorted keys, no whitespace) of :func:`config_identity`: the
    non-default settings and the schema version. Run names (``collapse_lab.sweep.grid.run_name``) and the trainer
    state's ownership check use it.

    Example:
        >>> config_hash(TrainConfig()) == config_hash(TrainConfig())
        True
        >>> config_hash(TrainConfig()) == config_hash(TrainConfig(seed=1))
        False
        >>> config_hash(TrainConfig(lr=1e-3)) == config_hash(TrainConfig())  # 1e-3 is the default
        True
    """
    return hashlib.sha256(_canonical(config_identity(cfg)).encode("utf-8")).hexdigest()


def config_to_yaml(cfg: TrainConfig) -> str:
    """The resolved config as YAML (what ``config.yaml`` holds)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
