"""The config rules the models own: student names, per-student arguments, fusions, forms, the capacity control.

Called by :func:`collapse_lab.resolve.check_config` when a config is resolved (docs/architecture.md §2, §5), so
``collapse_lab.config`` needs no import of this package. The rules:

- ``student`` / every name of ``students`` is registered (:data:`~collapse_lab.models.students.STUDENTS`);
- every ``student_args`` block belongs to a member and sets only arguments that student has, with values its
  argument dataclass accepts (errors name ``student_args.<name>.<key>``);
- ``fusion`` is one of :data:`~collapse_lab.models.fusion.FUSIONS`;
- ``form=batched`` only for homogeneous ``mlp`` ensembles; ``width_match_n`` only for ``mlp`` students.
"""

from __future__ import annotations

from typing import Any

from collapse_lab.errors import check_key
from collapse_lab.models.capacity import check_capacity_students
from collapse_lab.models.ensemble import member_names, resolve_form, resolve_members
from collapse_lab.models.fusion import FUSIONS
from collapse_lab.models.students import STUDENTS

__all__ = ["check_config"]


def check_config(cfg: Any) -> None:
    """Check the model keys of ``cfg`` (a :class:`~collapse_lab.config.TrainConfig` or any object with its
    attributes); raise a one-line :class:`~collapse_lab.errors.UserError` naming the key.

    Example:
        >>> from types import SimpleNamespace
        >>> cfg = SimpleNamespace(student="mlp", students=["mlp", "ecn"], n=2, fusion="mean", form="auto",
        ...                       hidden_units=[8], net_dropout=0.1, batch_norm=True, width_match_n=None,
        ...                       student_args={"pnn": {"net_dropout": 0.2}})
        >>> check_config(cfg)
        Traceback (most recent call last):
        ...
        collapse_lab.errors.UserError: config key 'student_args.pnn.net_dropout': student 'pnn' is not in the \
ensemble (students: mlp, ecn); remove its block
    """
    students = getattr(cfg, "students", None)
    valid = f"one of {', '.join(STUDENTS.names())}"
    if students is None:
        check_key(cfg.student in STUDENTS, "student", valid, cfg.student)
    else:
        for name in students:
            check_key(name in STUDENTS, "students", f"a list of names, each {valid}", list(students))
    check_key(cfg.fusion in FUSIONS, "fusion", f"one of {', '.join(FUSIONS)}", cfg.fusion)
    names = member_names(cfg.n, cfg.student, students)
    shared = {"hidden_units": list(cfg.hidden_units), "net_dropout": cfg.net_dropout, "batch_norm": cfg.batch_norm}
    resolve_members(names, getattr(cfg, "student_args", None) or {}, shared)
    if cfg.form != "auto":
        resolve_form(cfg.form, "cpu", names)
    if cfg.width_match_n is not None:
        check_capacity_students(cfg.student, students, getattr(cfg, "student_args", None))
