"""Student sub-networks: the contract (:mod:`.base`), shared layers (:mod:`.layers`) and one module per student.

Importing this package registers every student in :data:`STUDENTS` (add a student: one new module here plus its
import below; docs/architecture.md §3).
"""

from collapse_lab.models.students.base import (
           MATRIX_KINDS,
           STUDENTS,
           Matrix,
           Student,
           StudentEntry,
           StudentInput,
           build_student,
           parse_student_args,
           register_student,
)
from collapse_lab.models.students.layers import MLPBlock, MLPLayer, init_linear, init_linears
from collapse_lab.models.students.mlp import MLPArgs, MLPStudent

# one import per student module (each registers itself)
# isort: split
from collapse_lab.models.students.afn import AFNStudent  # noqa: F401
from collapse_lab.models.students.autoint import AutoIntStudent  # noqa: F401
from collapse_lab.models.students.deepfm import DeepFMStudent  # noqa: F401
from collapse_lab.models.students.wide_deep import WideDeepStudent  # noqa: F401

__all__ = ["MATRIX_KINDS", "MLPArgs", "MLPBlock", "MLPLayer", "MLPStudent", "Matrix", "STUDENTS", "Student",
           "StudentEntry", "StudentInput", "build_student", "init_linear", "init_linears", "parse_student_args",
           "register_student"]
