"""Recipes named from the config: the weight mode, the KDEF ablation terms and the capacity control.

A *recipe* (the ``variant`` of results tables and figures, and a tag of the run name) is ``<method>`` (mean
fusion) or ``<method>-<fusion>``, followed by one tag per setting that changes what is trained:

==========================  ============  ====================================================================
config                      tag           what is trained
==========================  ============  ====================================================================
``kdef_terms: [kd]``        ``kd-only``   KDEF without its DML term (mu = 0), arXiv 2411.16122 Eq. 10
``kdef_terms: [dml]``       ``dml-only``  KDEF without its KD term (lambda = 0)
``kdef_terms: []``          ``bce-only``  only the mean student BCE: N independently trained students
``exam_weights: uniform``   ``uniform``   lambda_k = 1/N, mu_{k,l} = 1/(N-1): the sums of the EM weights
``exam_weights: constant``  ``noem``      kdef with lambda_k = kd_weight, mu_{k,l} = mutual_weight (default 1,
                                          the paper's "w/o EM" of Table V, also ``exam: false``)
``exam_weights: em``        ``em``        kd or dml with the examination weights (Eqs. 8-9)
``width_match_n: K``        ``capacity``  one student widened to the parameter count of K students
==========================  ============  ====================================================================

A tag appears only when the setting differs from the method's own default, so the paper's recipes keep their
names: ``kdef``, ``kd``, ``dml``, ``vanilla-mean``... Students other than the MLP add ``@<architecture>``
(:func:`architecture_of`): ``kdef@pnn+final+ecn`` is KDEF_Latest, ``vanilla-mean@ecn`` a vanilla ECN ensemble (paper
Tables II, V, VI). This module imports no torch (results code uses it).

Example:
    >>> variant_of({"method": "kdef", "fusion": "mean", "kdef_terms": ["kd"]})
    'kdef-kd-only'
    >>> variant_of({"method": "kdef", "fusion": "mean", "exam": False})
    'kdef-noem'
    >>> variant_of({"method": "vanilla", "fusion": "mean", "n": 1, "width_match_n": 4})
    'vanilla-mean-capacity'
    >>> variant_of({"method": "kdef", "fusion": "mean", "students": ["pnn", "final", "ecn"]})
    'kdef@pnn+final+ecn'
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence

from collapse_lab.errors import UserError

__all__ = ["EXAM_WEIGHTS", "KDEF_TERMS", "DEFAULT_WEIGHTS", "weight_mode", "resolve_weight_mode", "kdef_terms",
           "recipe_tags", "variant_name", "variant_of", "results_n", "architecture_of"]

#: how lambda and mu are set: the examination mechanism, their mean values 1/N and 1/(N-1), or constants
EXAM_WEIGHTS = ("em", "uniform", "constant")
#: the transfer terms of KDEF's loss (Eq. 10) that ``kdef_terms`` may keep, in canonical order
KDEF_TERMS = ("kd", "dml")
#: each method's weight mode when neither ``exam`` nor ``exam_weights`` is given (None: no lambda or mu)
DEFAULT_WEIGHTS = {"vanilla": None, "kd": "constant", "dml": "constant", "kdef": "em"}
_WEIGHT_TAGS = {"em": "em", "uniform": "uniform", "constant": "noem"}


def weight_mode(method: str, exam: Optional[bool] = None, exam_weights: Optional[str] = None) -> Optional[str]:
    """The weight mode a method trains with: ``em`` | ``uniform`` | ``constant``, or None for ``vanilla``.

    ``exam_weights`` wins when given; else ``exam`` (true: em, false: constant); else the method's default.
    ``exam_weights`` must agree with an explicit ``exam`` (true: em; false: uniform or constant).

    Example:
        >>> weight_mode("kdef"), weight_mode("kdef", exam=False), weight_mode("kd", exam_weights="uniform")
        ('em', 'constant', 'uniform')
    """
    default = DEFAULT_WEIGHTS.get(method, "constant")
    if default is None:
        if exam_weights is not None:
            raise UserError(f"config key 'exam_weights': expected null with method {method!r} (it has no lambda "
                            f"or mu), got {exam_weights!r}")
        return None
    return resolve_weight_mode(default, exam, exam_weights)


def resolve_weight_mode(default: str, exam: Optional[bool] = None, exam_weights: Optional[str] = None) -> str:
    """:func:`weight_mode` for a method whose own mode is ``default`` (``em`` or ``constant``)."""
    if exam_weights is not None and exam_weights not in EXAM_WEIGHTS:
        raise UserError(f"config key 'exam_weights': expected null or one of {', '.join(EXAM_WEIGHTS)}, "
                        f"got {exam_weights!r}")
    if exam_weights is None:
        return default if exam is None else ("em" if exam else "constant")
    if exam is not None and bool(exam) != (exam_weights == "em"):
        raise UserError(f"config key 'exam_weights': expected a mode that agrees with exam={str(exam).lower()} "
                        f"({'em' if exam else 'uniform or constant'}), got {exam_weights!r}")
    return exam_weights


def kdef_terms(terms: Optional[Sequence[str]]) -> List[str]:
    """Validate ``kdef_terms`` and return it in canonical order (``None`` = both terms).

    Example:
        >>> kdef_terms(["dml", "kd"]), kdef_terms(["dml"]), kdef_terms(None)
        (['kd', 'dml'], ['dml'], ['kd', 'dml'])
    """
    if terms is None:
        return list(KDEF_TERMS)
    given = [terms] if isinstance(terms, str) else list(terms)
    bad = [t for t in given if t not in KDEF_TERMS]
    if bad or len(set(given)) != len(given):
        raise UserError(f"config key 'kdef_terms': expected a list of distinct terms from {', '.join(KDEF_TERMS)} "
                        f"(e.g. [kd] for mu = 0), got {list(given)!r}")
    return [t for t in KDEF_TERMS if t in given]


def recipe_tags(config: Mapping[str, Any]) -> List[str]:
    """The tags of the settings in which ``config`` differs from its method's paper recipe (table above)."""
    method = str(config.get("method"))
    tags: List[str] = []
    if method == "kdef":
        terms = kdef_terms(config.get("kdef_terms"))
        if terms != list(KDEF_TERMS):
            tags.append(f"{'-'.join(terms) or 'bce'}-only")
    mode = weight_mode(method, config.get("exam"), config.get("exam_weights"))
    if mode is not None and mode != DEFAULT_WEIGHTS.get(method, "constant"):
        tags.append(_WEIGHT_TAGS[mode])
    if config.get("width_match_n") is not None:
        tags.append("capacity")
    return tags


def variant_name(method: str, fusion: str) -> str:
    """The label of a paper recipe: ``vanilla-<fusion>``, ``<method>`` (mean fusion) or ``<method>-<fusion>``.

    Example:
        >>> variant_name("vanilla", "sum"), variant_name("kdef", "mean"), variant_name("kd", "concat")
        ('vanilla-sum', 'kdef', 'kd-concat')
    """
    if method == "vanilla" or fusion != "mean":
        return f"{method}-{fusion}"
    return str(method)


def architecture_of(config: Mapping[str, Any]) -> Optional[str]:
    """The students of a run when they are not all ``mlp``: one name (homogeneous) or the ``+``-joined list
    (mixed, in member order); None for the MLP ensembles of the paper's main study.

    Example:
        >>> architecture_of({"student": "mlp"}), architecture_of({"student": "dcnv2"})
        (None, 'dcnv2')
        >>> architecture_of({"students": ["final", "ecn", "mlp"]}), architecture_of({"students": ["mlp", "mlp"]})
        ('final+ecn+mlp', None)
    """
    students = config.get("students")
    if isinstance(students, str):  # a results.csv cell or a single name
        students = [s for s in students.replace("+", " ").replace(",", " ").strip("[]").split() if s]
    if students:
        names = [str(s).strip("'\" ") for s in students]
        if all(n == "mlp" for n in names):
            return None
        return names[0] if len(set(names)) == 1 else "+".join(names)
    student = config.get("student")
    return None if student in (None, "mlp") else str(student)


def variant_of(config: Mapping[str, Any]) -> str:
    """The recipe label of a run config: :func:`variant_name`, its :func:`recipe_tags` and ``@`` + the
    :func:`architecture_of` its students when they are not MLPs."""
    label = "-".join([variant_name(str(config.get("method")), str(config.get("fusion"))), *recipe_tags(config)])
    arch = architecture_of(config)
    return label if arch is None else f"{label}@{arch}"


def results_n(config: Mapping[str, Any]) -> int:
    """The N a run is compared at: ``width_match_n`` for the capacity control (one student with the parameters
    of K students sits at N = K), else the number of students ``n``.

    Example:
        >>> results_n({"n": 1, "width_match_n": 6}), results_n({"n": 3})
        (6, 3)
    """
    k = config.get("width_match_n")
    return int(k if k is not None else config.get("n"))
