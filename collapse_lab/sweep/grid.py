"""Sweep grids: a YAML file (or ``key=v1,v2`` lists) expanded into a cartesian product of resolved run configs.

A grid file has up to four sections::

    name: quick                  # sweep name (default: the file stem); runs go to sweeps/<name>/runs/
    base:                        # config keys shared by every run
      dataset: movielens-100k
      hidden_units: [128, 128, 128]
    grid:                        # one axis per key; the sweep is the cartesian product of all axes
      variant:                   # a *bundle* axis (any name): each value is a mapping of keys set together
        - {method: vanilla, fusion: mean}
        - {method: kdef, fusion: mean}
        - {method: vanilla, n: 1, width_match_n: 4}   # a bundle's keys win over plain axes such as n
      n: [1, 2, 4]
      seed: [2024, 2025]         # a scalar is an axis with one value
    exclude:                     # drop every point that matches all keys of one entry
      - {method: kdef, n: 1}

Every key must be a training config key (``collapse_lab.config.CONFIG_KEYS``), or a dotted key
``student_args.<student>.<argument>`` (:data:`NESTED_KEYS`) that sets one argument of one student, as the dotlist of
``collapse-lab train`` does: ``grid: {student_args.ecn.num_cross_layers: [1, 2]}`` or on the command line
``student_args.ecn.num_cross_layers=1,2``. Each value is merged into the point's ``student_args`` block (the
base's, or a ``student_args`` axis or bundle), so the student's other arguments stay; a dotted key wins over a
block set at the same level. Levels rank base < plain axes (the command line's included) < bundles: a whole
``student_args`` set at a higher level replaces the dotted keys a lower level set under it (else a base's dotted
key would override every value of a ``student_args`` axis and collapse its points into one run). Base, bundles
and ``exclude`` rules take dotted keys too. Any other dotted key (``hidden_units.0``) is
refused up front, naming it. Each point is resolved with ``collapse_lab.resolve.resolve_config`` so defaults are
filled and bad values are caught before anything runs. Command-line lists (``n=1,2,4``,
``hidden_units=[64,64],[32,32]``) replace or add axes of the same name; each right-hand side is read as the YAML
flow sequence ``[<rhs>]``.

A run is named ``<method>-<fusion>-n<N>[-<tags>]-s<seed>-<hash8>`` (tags such as ``kd-only`` or ``capacity4``
name the ablations and controls, :mod:`collapse_lab.recipes`), where ``hash8`` is the first 8 hex digits of
:func:`collapse_lab.config.config_hash` of the resolved config (its non-default keys and the schema version), so
the name is stable across machines and invocations, changes whenever any setting changes, and survives new
config keys added with a neutral default (FuxiCTR's ``autotuner`` idea). A name depends on the resolved config
only, never on how the grid was written: points that differ in a student argument differ in ``hash8``, and the same
config reached through a dotted key or a ``student_args`` block is the same run. Points whose settings are equal
(a bundle pinning ``n: 1`` whatever the ``n`` axis holds) run once; two points whose settings differ but resolve to
the same run (one restates a default the other leaves out) are an error naming both: merging them silently would
leave a comparison the grid asks for missing from the result tables, and nothing has run yet, so the grid is
cheap to fix.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

import yaml

from collapse_lab.errors import UserError
from collapse_lab.io.paths import check_name

__all__ = [
    "SweepSpec",
    "SweepPoint",
    "load_grid",
    "parse_grid_overrides",
    "expand_grid",
    "run_name",
    "valid_config_keys",
    "NESTED_KEYS",
]

#: config keys holding a mapping whose entries a grid may set one by one with a dotted key, and the form of that key
NESTED_KEYS = {"student_args": "student_args.<student>.<argument>"}

SECTIONS = ("name", "description", "base", "grid", "exclude")


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads YAML 1.2 floats such as ``1e-3`` (PyYAML's 1.1 rules need ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _config_api() -> Tuple[Sequence[str], Any, Any]:
    """``(CONFIG_KEYS, resolve_config, config_to_dict)`` of the training config (names checked by their owners)."""
    from collapse_lab.config import CONFIG_KEYS, config_to_dict
    from collapse_lab.resolve import resolve_config

    return CONFIG_KEYS, resolve_config, config_to_dict


def valid_config_keys() -> List[str]:
    """The config keys a grid may set (sorted)."""
    return sorted(_config_api()[0])


@dataclass
class SweepSpec:
    """A parsed grid: shared keys, axes (key -> values, or bundle name -> list of mappings) and exclusions."""

    name: str
    base: Dict[str, Any] = field(default_factory=dict)
    axes: Dict[str, List[Any]] = field(default_factory=dict)
    exclude: List[Dict[str, Any]] = field(default_factory=list)
    description: str = ""
    source: str = "<grid>"

    def to_dict(self) -> Dict[str, Any]:
        """The spec as the YAML/JSON structure it was read from."""
        return {"name": self.name, "description": self.description, "base": self.base, "grid": self.axes,
                "exclude": self.exclude}


@dataclass
class SweepPoint:
    """One run of a sweep: its stable name, the keys the grid set, and the fully resolved flat config."""

    name: str
    overrides: Dict[str, Any]
    config: Dict[str, Any]


def _valid_list(keys: Sequence[str]) -> str:
    return ", ".join(sorted(keys))


def _check_keys(keys: Sequence[str], where: str, source: str, valid: Sequence[str]) -> None:
    for key in keys:
        if key in valid:
            continue
        head, dot, rest = str(key).partition(".")
        if not dot or head not in valid:
            raise UserError(f"{source}: unknown config key {key!r} in {where}; valid keys: {_valid_list(valid)}")
        if head not in NESTED_KEYS:  # refused here: the point would only fail later, once per run
            forms = ", ".join(NESTED_KEYS.values())
            raise UserError(f"{source}: key {key!r} in {where}: {head!r} cannot be set by a dotted key; only "
                            f"{forms} can (set {head} whole instead)")
        parts = rest.split(".")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise UserError(f"{source}: key {key!r} in {where}: expected {NESTED_KEYS[head]} (one argument of one "
                            f"student), or {head} as a whole mapping")


def _is_bundle_axis(key: str, valid: Sequence[str]) -> bool:
    """Whether axis ``key`` names a bundle rather than a config key (plain, or dotted under one)."""
    return key not in valid and str(key).partition(".")[0] not in valid


def _nest(point: Mapping[str, Any], source: str) -> Dict[str, Any]:
    """``point`` with its dotted keys (``student_args.<student>.<argument>``) set inside a copy of its
    ``student_args`` block: the flat keys are what the grid wrote (and what ``sweep.json`` records), the nested
    mapping is what the config takes. A copy, so that the base's block shared by every point is never changed."""
    dotted = [k for k in point if "." in str(k)]
    if not dotted:
        return dict(point)
    out = {k: v for k, v in point.items() if "." not in str(k)}
    for key in dotted:
        head, student, argument = str(key).split(".")
        block = out.get(head)
        block = {} if block is None else copy.deepcopy(block)
        if not isinstance(block, dict) or not isinstance(block.get(student, {}), dict):
            raise UserError(f"{source}: key {key!r}: {head} must be a mapping {{student: {{argument: value}}}} to "
                            f"set {student}.{argument} in, got {out.get(head)!r}")
        block.setdefault(student, {})[argument] = point[key]
        out[head] = block
    return out


def _under(key: str, parent: str) -> bool:
    """Whether dotted ``key`` sets something inside config key ``parent`` (``student_args.ecn.x`` under
    ``student_args``)."""
    return "." in str(key) and str(key).partition(".")[0] == parent


def _layer(point: Dict[str, Any], keys: Mapping[str, Any]) -> None:
    """Set ``keys`` (one precedence layer: the base, the plain axes, or the bundles) on ``point`` in place.

    A whole mapping set here (``student_args: {...}``) first drops the dotted keys under it that a lower layer set
    (``student_args.ecn.num_cross_layers`` in the base): the layer that names the whole block owns it, else the
    lower layer's dotted key, applied last by :func:`_nest`, would override every value of the axis and the points
    would collapse into one run. Within one layer a dotted key still wins over the block (it is the finer choice).
    """
    for key in keys:
        if "." not in str(key):
            for lower in [k for k in point if _under(k, str(key)) and k not in keys]:
                del point[lower]
    point.update(keys)


def _describe(point: Mapping[str, Any], base: Mapping[str, Any]) -> str:
    """``{key=value, ...}`` of the keys a point sets beyond the base (how errors name a grid point)."""
    return "{" + ", ".join(f"{k}={v}" for k, v in point.items() if k not in base or base[k] != v) + "}"


def _lookup(point: Mapping[str, Any], key: str) -> Tuple[bool, Any]:
    """``(found, value)`` of ``key`` in ``point``: the key itself, else a dotted key followed into nested mappings
    (an exclude rule ``student_args.ecn.num_cross_layers`` against a resolved config)."""
    if key in point:
        return True, point[key]
    value: Any = point
    for part in str(key).split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _as_axis(value: Any) -> List[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def load_grid(path: Union[str, Path]) -> SweepSpec:
    """Read and validate a grid YAML file (see the module docstring for the format).

    Raises:
        UserError: the file is missing or not YAML, has an unknown section, an unknown config key, or no axis.
    """
    from collapse_lab.io.inputs import read_text_file

    path = Path(path)
    text = read_text_file(path, "YAML grid file", missing="grid file not found")  # also: not UTF-8, a loop...
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f": line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise UserError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping with sections {', '.join(SECTIONS)}, got {type(data).__name__}")
    return spec_from_dict(data, source=str(path), default_name=path.stem)


def spec_from_dict(data: Mapping[str, Any], source: str = "<grid>", default_name: str = "sweep") -> SweepSpec:
    """Build and validate a :class:`SweepSpec` from the structure of a grid file."""
    unknown = [k for k in data if k not in SECTIONS]
    if unknown:
        raise UserError(f"{source}: unknown section {unknown[0]!r}; valid sections: {', '.join(SECTIONS)}")
    valid = valid_config_keys()
    base = dict(data.get("base") or {})
    grid = data.get("grid") or {}
    exclude = data.get("exclude") or []
    if not isinstance(base, dict):
        raise UserError(f"{source}: 'base' must be a mapping of config keys to values")
    if not isinstance(grid, dict):
        raise UserError(f"{source}: 'grid' must be a mapping of config keys to lists of values")
    if not isinstance(exclude, list) or not all(isinstance(e, dict) for e in exclude):
        raise UserError(f"{source}: 'exclude' must be a list of mappings such as {{method: kd, n: 1}}")
    _check_keys(list(base), "base", source, valid)
    axes: Dict[str, List[Any]] = {}
    for key, value in grid.items():
        values = _as_axis(value)
        if key not in valid and not _is_bundle_axis(key, valid):  # a dotted key under a config key
            _check_keys([key], "grid", source, valid)
        elif key not in valid:
            if values and all(isinstance(v, dict) for v in values):  # a bundle axis
                for bundle in values:
                    _check_keys(list(bundle), f"grid axis {key!r}", source, valid)
            else:
                raise UserError(f"{source}: unknown config key {key!r} in grid; valid keys: {_valid_list(valid)}")
        axes[str(key)] = values
    for entry in exclude:
        _check_keys(list(entry), "exclude", source, valid)
    name = check_name(data.get("name") or default_name, "sweep name", source)  # it names sweeps/<name>
    return SweepSpec(name=name, base=base, axes=axes, exclude=[dict(e) for e in exclude],
                     description=str(data.get("description") or ""), source=source)


def parse_grid_overrides(items: Sequence[str]) -> Dict[str, List[Any]]:
    """Turn ``["n=1,2,4", "method=kd,dml"]`` into axes ``{"n": [1, 2, 4], "method": ["kd", "dml"]}``.

    Example:
        >>> parse_grid_overrides(["n=1,2,4", "hidden_units=[64,64],[32,32]", "method=kdef"])
        {'n': [1, 2, 4], 'hidden_units': [[64, 64], [32, 32]], 'method': ['kdef']}
    """
    axes: Dict[str, List[Any]] = {}
    for item in items:
        key, sep, rhs = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"grid override {item!r}: expected key=value1,value2,...")
        try:
            values = yaml.load(f"[{rhs}]", Loader=_Loader)
        except yaml.YAMLError:
            raise UserError(f"grid override {item!r}: cannot read {rhs!r} as a comma-separated list") from None
        if not values:
            raise UserError(f"grid override {item!r}: no values after '='")
        axes[key] = list(values)
    return axes


def with_overrides(spec: SweepSpec, overrides: Mapping[str, List[Any]]) -> SweepSpec:
    """A copy of ``spec`` whose axes are replaced or extended by command-line axes (keys validated)."""
    valid = valid_config_keys()
    _check_keys(list(overrides), "the command-line grid", spec.source, valid)
    axes = dict(spec.axes)
    base = dict(spec.base)
    for key, values in overrides.items():
        for dotted in [k for k in list(base) + list(axes) if _under(k, key)]:  # the command line sets it whole
            base.pop(dotted, None)
            axes.pop(dotted, None)
        base.pop(key, None)
        axes[key] = list(values)
    return SweepSpec(name=spec.name, base=base, axes=axes, exclude=spec.exclude, description=spec.description,
                     source=spec.source)


def run_name(config: Mapping[str, Any]) -> str:
    """``<method>-<fusion>-n<N>[-<tags>][-<students>]-s<seed>-<hash8>`` for a resolved config; the tags name the
    ablations and the capacity control (:func:`collapse_lab.recipes.recipe_tags`, e.g. ``kd-only``, ``capacity``),
    ``<students>`` the non-MLP students (:func:`collapse_lab.recipes.architecture_of`, ``+`` written ``.``).

    Example:
        >>> run_name({"method": "kdef", "fusion": "mean", "n": 4, "seed": 2024})
        'kdef-mean-n4-s2024-ad3b9f66'
        >>> run_name({"method": "vanilla", "fusion": "mean", "n": 1, "width_match_n": 4, "seed": 2024})[:32]
        'vanilla-mean-n1-capacity4-s2024-'
        >>> run_name({"method": "kdef", "fusion": "mean", "n": 2, "student": "dcnv2", "seed": 1})[:21]
        'kdef-mean-n2-dcnv2-s1'
    """
    from collapse_lab.config import config_hash
    from collapse_lab.recipes import architecture_of, recipe_tags

    tags = "".join(f"-{tag}{config['width_match_n'] if tag == 'capacity' else ''}" for tag in recipe_tags(config))
    arch = architecture_of(config)
    tags += "" if arch is None else "-" + arch.replace("+", ".")  # path-safe: [A-Za-z0-9._-]
    return (f"{config.get('method')}-{config.get('fusion')}-n{config.get('n')}{tags}-s{config.get('seed')}-"
            f"{config_hash(config)[:8]}")


def _matches(point: Mapping[str, Any], rule: Mapping[str, Any]) -> bool:
    return all(_lookup(point, key) == (True, value) for key, value in rule.items())


def _unmatched_rule(rule: Mapping[str, Any], source: str) -> str:
    """The warning for an ``exclude`` rule that dropped no point, with the nested-key matching spelled out when the
    rule names ``student_args`` (the usual reason it matches nothing)."""
    shown = "{" + ", ".join(f"{k}: {v}" for k, v in rule.items()) + "}"
    hint = ""
    if any(str(k).partition(".")[0] in NESTED_KEYS for k in rule):
        hint = ("; a dotted student_args.<student>.<argument> rule matches only an argument the point sets (not one "
                "left at its default), and a whole student_args rule only a point whose block equals it")
    return f"{source}: exclude rule {shown} matches no point of the grid{hint}"


def expand_grid(spec: SweepSpec, overrides: Optional[Mapping[str, List[Any]]] = None,
                warnings: Optional[List[str]] = None) -> List[SweepPoint]:
    """All runs of a sweep: the cartesian product of the axes on top of ``base``, minus excluded points.

    Points are resolved with ``resolve_config`` (defaults filled, values checked) and deduplicated by name
    (equal settings only: two different settings giving one run are an error naming both), in grid order (the
    first axis varies slowest). A key set by a bundle wins over a plain axis of the same name, so a
    recipe can pin it: ``{method: vanilla, n: 1, width_match_n: 4}`` runs once per seed whatever the ``n`` axis
    holds. Dotted keys (``student_args.ecn.num_cross_layers``) are then set inside the point's
    ``student_args`` block, keeping the student's other arguments.

    An ``exclude`` rule matches a point when each of its keys equals the point's setting or the resolved config's
    value (so a default such as ``fusion: mean`` counts); a dotted ``student_args.<student>.<argument>`` key is
    looked up in the point's ``student_args`` block, which holds only the arguments the grid sets (a student's
    defaults are filled later, per member), and a whole ``student_args`` key must equal the full block. A rule
    that matches no point is most likely such a miss, so each one adds a line to ``warnings`` (when given).

    Raises:
        UserError: no axis, an empty axis, every point excluded, a value the config rejects, or two points with
            different settings that are the same run.
    """
    if overrides:
        spec = with_overrides(spec, overrides)
    valid = valid_config_keys()
    if not spec.axes or any(len(v) == 0 for v in spec.axes.values()):
        raise UserError(f"{spec.source}: the grid is empty; give at least one config key with a list of values "
                        f"(e.g. `n: [1, 2, 4]`); valid keys: {_valid_list(valid)}")
    _, resolve_config, config_to_dict = _config_api()
    points: Dict[str, SweepPoint] = {}
    nested: Dict[str, Dict[str, Any]] = {}  # run name -> the settings of the point that took it
    used: Set[int] = set()  # the exclude rules that dropped a point
    keys = list(spec.axes)
    for combo in itertools.product(*(spec.axes[k] for k in keys)):
        overrides_point: Dict[str, Any] = {}
        _layer(overrides_point, spec.base)
        plain: Dict[str, Any] = {}
        bundles: Dict[str, Any] = {}
        for key, value in zip(keys, combo, strict=True):
            if isinstance(value, dict) and _is_bundle_axis(key, valid):
                bundles.update(value)
            else:
                plain[key] = value
        _layer(overrides_point, plain)
        _layer(overrides_point, bundles)  # a bundle's keys win over plain axes (e.g. the capacity control's n: 1)
        hits = [i for i, rule in enumerate(spec.exclude) if _matches(overrides_point, rule)]
        used.update(hits)
        if hits:
            continue
        settings = _nest(overrides_point, spec.source)
        try:
            config = config_to_dict(resolve_config(overrides=settings))
        except UserError as exc:
            raise UserError(f"{spec.source}: run {_describe(overrides_point, spec.base)}: {exc}") from None
        hits = [i for i, rule in enumerate(spec.exclude) if _matches(config, rule)]  # defaults, e.g. fusion: mean
        used.update(hits)
        if hits:
            continue
        name = run_name(config)
        if name in points and nested[name] != settings:
            raise UserError(f"{spec.source}: grid points {_describe(points[name].overrides, spec.base)} and "
                            f"{_describe(overrides_point, spec.base)} are the same run {name} (same resolved "
                            "config): an axis value restates a default or another point; drop one, or exclude it")
        nested.setdefault(name, settings)
        points.setdefault(name, SweepPoint(name=name, overrides=overrides_point, config=config))
    if not points:
        raise UserError(f"{spec.source}: the grid is empty: every point is excluded; valid keys: "
                        f"{_valid_list(valid)}")
    if warnings is not None:
        warnings += [_unmatched_rule(rule, spec.source) for i, rule in enumerate(spec.exclude) if i not in used]
    return list(points.values())
