"""Student sub-networks: the contract (:mod:`.base`), shared layers (:mod:`.layers`) and one module per student.

Importing this package registers every student in :data:`STUDENTS` (add a student: one new module here plus its
import below; docs/architecture.md §3).
"""

from collapse_lab.models.students.base import (
           MATRIX_KINDS,
           SHARED_ARGS,
           STUDENTS,
           Matrix,
           Student,
           StudentEntry,
           StudentInput,
           build_student,
           parse_student_args,
           register_student,
           resolve_student_args,
           student_arg_names,
)
from collapse_lab.models.students.layers import MLPBlock, MLPLayer, init_linear, init_linears
from collapse_lab.models.students.mlp import MLPArgs, MLPStudent

# one import per student module (each registers itself)
# isort: split
import collapse_lab.models.students.afn  # noqa: F401
import collapse_lab.models.students.autoint  # noqa: F401
import collapse_lab.models.students.cin  # noqa: F401
import collapse_lab.models.students.crossnet  # noqa: F401
import collapse_lab.models.students.dcnv2  # noqa: F401
import collapse_lab.models.students.deepfm  # noqa: F401
import collapse_lab.models.students.ecn  # noqa: F401
import collapse_lab.models.students.final  # noqa: F401
import collapse_lab.models.students.lr  # noqa: F401
import collapse_lab.models.students.pnn  # noqa: F401
import collapse_lab.models.students.wide_deep  # noqa: F401
import collapse_lab.models.students.xdeepfm  # noqa: F401

__all__ = ["MATRIX_KINDS", "SHARED_ARGS", "MLPArgs", "MLPBlock", "MLPLayer", "MLPStudent", "Matrix", "STUDENTS",
           "Student", "StudentEntry", "StudentInput", "build_student", "init_linear", "init_linears",
           "parse_student_args", "register_student", "resolve_student_args", "student_arg_names"]
