"""Models: the shared embedding, student sub-networks, fusion and the N-student CTR ensemble (docs/method.md §2)."""

from collapse_lab.models.batched import BatchedMLP
from collapse_lab.models.checks import check_config
from collapse_lab.models.embedding import SharedEmbedding
from collapse_lab.models.ensemble import (
    FORMS,
    CTREnsemble,
    aux_seed,
    build_ensemble,
    member_names,
    resolve_form,
    resolve_members,
)
from collapse_lab.models.fusion import FUSIONS, Fusion
from collapse_lab.models.students import STUDENTS, MLPStudent, StudentInput, build_student

__all__ = ["BatchedMLP", "CTREnsemble", "FORMS", "FUSIONS", "Fusion", "MLPStudent", "STUDENTS", "SharedEmbedding",
           "StudentInput", "aux_seed", "build_ensemble", "build_student", "check_config", "member_names",
           "resolve_form", "resolve_members"]
