"""The CTR ensemble: one shared embedding, N students, a fusion (docs/method.md §2, Fig. 7).

    h   = [e_1, ..., e_F]                 (B, F*D)   shared embedding input, computed once per batch
    z_k = Student_k(h)                    (B,)       k = 0 .. N-1, returned together as logits (B, N)
    z_t = Fusion(z_1..z_N [, a_1..a_N])   (B,)       mean | sum | concat; ensemble prediction sigma(z_t)

Member k is the student named ``students[k]`` (a mix, e.g. ``pnn, final, ecn``) or ``student`` for all, built
with its resolved arguments (:func:`resolve_members`: the student's defaults <- the top-level ``hidden_units``,
``net_dropout``, ``batch_norm`` where it has them <- its ``student_args`` block; docs/architecture.md §5).
Two numerically equivalent forms share this interface: ``loop`` (an ``nn.ModuleList`` of students run one after
the other, the fastest form on CPU, and the only form of other students and of mixes) and ``batched`` (stacked
weights and batched GEMMs, the GPU form of homogeneous ``mlp`` ensembles, see :mod:`collapse_lab.models.batched`).
Student k is initialised from its own generator seeded with ``derive_seeds(seed, N)[k]``; both forms build the loop
students first, so they initialise identically.
:meth:`CTREnsemble.export_state_dict` / :meth:`CTREnsemble.import_state_dict` use the canonical tensor names
of the README table for both forms, so checkpoints move freely between them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from collapse_lab.data.feature_map import FeatureMap
from collapse_lab.errors import UserError
from collapse_lab.models.batched import BatchedMLP
from collapse_lab.models.embedding import SharedEmbedding
from collapse_lab.models.fusion import FUSIONS, Fusion
from collapse_lab.models.students import STUDENTS, Matrix, MLPStudent, StudentInput, resolve_student_args
from collapse_lab.utils.seed import derive_seeds

__all__ = ["FORMS", "CTREnsemble", "build_ensemble", "member_names", "resolve_members", "resolve_form", "aux_seed"]

FORMS = ("loop", "batched")
_AUX_STREAMS = {"embedding": 0, "fusion": 1}


def aux_seed(seed: int, stream: str) -> int:
    """Seed of a non-student initialisation stream (``embedding``, ``fusion``), independent of N.

    It is the child ``2**32 + i`` of ``SeedSequence(seed)``, disjoint from the students' children ``0..N-1``.

    Example:
        >>> aux_seed(2024, "embedding") == aux_seed(2024, "embedding") != aux_seed(2024, "fusion")
        True
    """
    ss = np.random.SeedSequence(seed, spawn_key=(2**32 + _AUX_STREAMS[stream],))
    return int(ss.generate_state(1, dtype=np.uint32)[0] >> 1)


def member_names(num_students: int, student: str = "mlp", students: Sequence[str] | None = None) -> List[str]:
    """The student name of each member: ``students`` (one name per member, ``len == num_students``) or
    ``num_students`` times ``student``.

    Example:
        >>> member_names(2), member_names(3, students=["pnn", "final", "ecn"])
        (['mlp', 'mlp'], ['pnn', 'final', 'ecn'])
    """
    if students is None:
        return [str(student)] * int(num_students)
    names = [str(s) for s in students]
    if len(names) != int(num_students):
        raise UserError(f"config keys 'n' and 'students': n={num_students} but students lists {len(names)} "
                        f"name(s) {names}; give one name per student")
    return names


def resolve_members(names: Sequence[str], student_args: Mapping[str, Any] | None = None,
                    shared: Mapping[str, Any] | None = None) -> List[Any]:
    """The resolved argument dataclass of each member (:func:`~collapse_lab.models.students.resolve_student_args`).

    Args:
        names: the member students (:func:`member_names`).
        student_args: ``{student name: {argument: value}}`` blocks; a block of a student that is not a member, or
            an argument the student lacks, is a :class:`UserError` naming ``student_args.<name>.<key>``.
        shared: the top-level ``hidden_units``, ``net_dropout``, ``batch_norm`` that fill every student having them.
    """
    blocks = dict(student_args or {})
    for name in names:
        STUDENTS.get(name)  # unknown names list the registered ones
    for name, block in blocks.items():
        if name not in names:
            key = next(iter(block), None) if isinstance(block, Mapping) else None
            where = f"student_args.{name}" + ("" if key is None else f".{key}")
            raise UserError(f"config key '{where}': student {name!r} is not in the ensemble (students: "
                            f"{', '.join(dict.fromkeys(names))}); remove its block")
    resolved = {name: resolve_student_args(name, blocks.get(name), shared) for name in dict.fromkeys(names)}
    return [resolved[name] for name in names]


def resolve_form(form: str, device: Any = "cpu", students: Sequence[str] | None = None) -> str:
    """``auto`` -> ``batched`` on CUDA for homogeneous ``mlp`` ensembles, ``loop`` elsewhere (``docs/performance.md``
    §3, §6); other values are checked (``batched`` takes homogeneous ``mlp`` students only).

    Example:
        >>> resolve_form("auto", "cpu"), resolve_form("auto", "cuda:0"), resolve_form("batched")
        ('loop', 'batched', 'batched')
        >>> resolve_form("auto", "cuda:0", ["pnn", "ecn"])
        'loop'
    """
    mlp_only = students is None or all(s == "mlp" for s in students)
    if form == "auto":
        return "batched" if torch.device(device).type == "cuda" and mlp_only else "loop"
    if form not in FORMS:
        raise UserError(f"unknown form {form!r}; valid: auto, {', '.join(FORMS)}")
    if form == "batched" and not mlp_only:
        label = students[0] if len(set(students)) == 1 else "+".join(students)
        raise UserError(f"config key 'form': 'batched' supports homogeneous 'mlp' students only, not {label!r}; "
                        "use loop or auto")
    return form


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


class CTREnsemble(nn.Module):
    """Shared-embedding ensemble of N students; see :func:`build_ensemble` for the arguments."""

    def __init__(self, feature_map: FeatureMap, num_students: int = 1, student: str = "mlp",
                 embedding_dim: int = 16, hidden_units: Sequence[int] = (400, 400, 400), net_dropout: float = 0.1,
                 batch_norm: bool = True, fusion: str = "mean", form: str = "loop", seed: int = 2024,
                 embedding_init_std: float = 1e-4, students: Sequence[str] | None = None,
                 student_args: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if isinstance(num_students, bool) or not isinstance(num_students, (int, np.integer)) or num_students < 1:
            raise UserError(f"n (number of students) must be an integer >= 1, got {num_students!r}")
        if fusion not in FUSIONS:
            raise UserError(f"unknown fusion {fusion!r}; valid: {', '.join(FUSIONS)}")
        if form not in FORMS:
            raise UserError(f"unknown form {form!r}; valid: {', '.join(FORMS)}")
        names = member_names(num_students, student, students)
        shared = {"hidden_units": [int(u) for u in hidden_units], "net_dropout": float(net_dropout),
                  "batch_norm": bool(batch_norm)}
        self.member_args = resolve_members(names, student_args, shared)
        self.member_students: List[str] = names
        self.num_students = int(num_students)
        self.student = names[0] if len(set(names)) == 1 else "+".join(names)
        self.fusion_kind = fusion
        self.form = form
        self.seed = int(seed)
        self.student_seeds: List[int] = derive_seeds(self.seed, self.num_students)
        self.hyper = {"embedding_dim": int(embedding_dim), **shared, "embedding_init_std": float(embedding_init_std)}
        self.embedding = SharedEmbedding(feature_map, embedding_dim, embedding_init_std,
                                         _generator(aux_seed(self.seed, "embedding")))
        inp = StudentInput(len(self.embedding.fields), int(embedding_dim))
        students_built = [STUDENTS.get(name)(inp, args, _generator(s))
                          for name, args, s in zip(names, self.member_args, self.student_seeds, strict=True)]
        self.member_matrices: List[List[Matrix]] = [s.matrices() for s in students_built]
        last_dims = [s.output_dim for s in students_built]
        self.students: nn.ModuleList | None = None
        self.stack: BatchedMLP | None = None
        if form == "loop":
            self.students = nn.ModuleList(students_built)
        else:
            if not all(isinstance(s, MLPStudent) for s in students_built):
                raise UserError(f"form 'batched' supports homogeneous 'mlp' students only, not {self.student!r}")
            self.stack = BatchedMLP.from_students(students_built)
        fusion_dims = last_dims[0] if len(set(last_dims)) == 1 else last_dims
        self.fusion = Fusion(fusion, self.num_students, fusion_dims, _generator(aux_seed(self.seed, "fusion")))

    # ---- forward ---------------------------------------------------------------------------------------------
    def forward(self, ids: Tensor, values: Tensor | None = None, return_hidden: bool = False) -> Dict[str, Any]:
        """Student logits ``(B, N)`` and fused logit ``(B,)`` [+ hidden activations and the input].

        Args:
            ids: int64 ``(B, C)`` field ids.
            values: float32 ``(B, n_numeric)`` raw numeric values, or ``None`` without numeric fields.
            return_hidden: also return ``hidden`` = {``students.<k>.<key>``: what student k writes, e.g.
                ``students.<k>.layers.<j>`` ``(B, H_j)`` post-ReLU, pre-dropout for the MLP} and ``input`` = the
                ``(B, F*D)`` embedding input.
        """
        h = self.embedding(ids, values)  # (B, F*D), one lookup shared by every student
        concat = self.fusion_kind == "concat"
        hidden: Dict[str, Tensor] = {}
        if self.students is not None:
            zs: List[Tensor] = []
            lasts: List[Tensor] = []
            for k, s in enumerate(self.students):
                acts: Dict[str, Tensor] | None = {} if return_hidden else None
                z, last = s(h, acts)  # (B,), (B, H_last)
                zs.append(z)
                if concat:
                    lasts.append(last)
                for name, a in (acts or {}).items():
                    hidden[f"students.{k}.{name}"] = a
            logits = torch.stack(zs, dim=1)  # (B, N)
            concat_input = torch.cat(lasts, dim=1) if concat else None  # (B, sum_k H_k)
        else:
            acts = [] if return_hidden else None
            logits, last = self.stack(h, acts)  # (B, N), (B, N, H_last)
            concat_input = last.reshape(last.shape[0], -1) if concat else None  # (B, N*H_last), student-major
            for k in range(self.num_students if return_hidden else 0):
                for j, a in enumerate(acts):
                    hidden[f"students.{k}.layers.{j}"] = a[:, k].contiguous()  # (B, H_j)
        out: Dict[str, Any] = {"logits": logits, "fused_logit": self.fusion(logits, concat_input)}
        if return_hidden:
            out["hidden"] = hidden
            out["input"] = h
        return out

    # ---- canonical state -------------------------------------------------------------------------------------
    def _slots(self) -> Dict[str, Tuple[Tensor, int | None]]:
        """Canonical name -> (live tensor, index into its first dim or None); order: embedding, students, fusion."""
        slots: Dict[str, Tuple[Tensor, int | None]] = {}
        for name, t in self.embedding.named_parameters(prefix="embedding"):
            slots[name] = (t, None)
        if self.students is not None:
            for name, t in self.students.state_dict(prefix="students.", keep_vars=True).items():
                slots[name] = (t, None)
        else:
            slots.update(self.stack.canonical_slots(prefix="students."))
        for name, t in self.fusion.state_dict(prefix="fusion.", keep_vars=True).items():
            slots[name] = (t, None)
        return slots

    def export_state_dict(self) -> Dict[str, Tensor]:
        """A snapshot (cloned, contiguous, detached) of every tensor under its canonical README name."""
        return {name: (t if k is None else t[k]).detach().clone().contiguous()
                for name, (t, k) in self._slots().items()}

    def export_gradients(self) -> Dict[str, Tensor]:
        """Cloned ``.grad`` of every parameter under its canonical name (parameters without a gradient omitted)."""
        grads = {}
        for name, (t, k) in self._slots().items():
            if isinstance(t, nn.Parameter) and t.grad is not None:
                grads[name] = (t.grad if k is None else t.grad[k]).detach().clone()
        return grads

    @torch.no_grad()
    def import_state_dict(self, state: Dict[str, Tensor]) -> None:
        """Load canonical-name tensors (from either form); strict: names and shapes must match exactly."""
        slots = self._slots()
        missing = [n for n in slots if n not in state]
        unexpected = [n for n in state if n not in slots]
        if missing or unexpected:
            def show(names: List[str]) -> str:
                return ", ".join(names[:5]) + (f" (+{len(names) - 5} more)" if len(names) > 5 else "")
            parts = ([f"missing {show(missing)}"] if missing else []) + \
                ([f"unexpected {show(unexpected)}"] if unexpected else [])
            raise UserError(f"state dict does not match the model ({self.num_students} x {self.student}, "
                            f"fusion {self.fusion_kind}): {'; '.join(parts)}")
        for name, (t, k) in slots.items():
            target = t if k is None else t[k]
            src = state[name]
            if tuple(src.shape) != tuple(target.shape):
                raise UserError(f"state dict tensor {name!r}: expected shape {list(target.shape)}, "
                                f"got {list(src.shape)}")
            target.copy_(src.to(device=target.device, dtype=target.dtype))

    # ---- helpers for the trainer -----------------------------------------------------------------------------
    def embedding_penalty(self, embedding_regularizer: float) -> Tensor:
        """``lambda/2 * sum_f ||P_f||_2^2`` (FuxiCTR's embedding regulariser), a zero scalar when ``lambda = 0``."""
        if embedding_regularizer > 0:
            return 0.5 * embedding_regularizer * self.embedding_l2()
        return torch.zeros((), device=next(self.embedding.parameters()).device)

    def embedding_l2(self) -> Tensor:
        """``sum_f ||P_f||_2^2`` over the shared tables (the trainer multiplies by ``lambda/2``, FuxiCTR)."""
        return self.embedding.l2()

    def describe(self) -> Dict[str, Any]:
        """The ``manifest["model"]`` entry (docs/architecture.md §6.2): fields with table names, the analysable
        matrices of every member (``hidden_layers``, from :meth:`Student.matrices`), the members with their
        resolved arguments, and parameter counts."""
        d = self.hyper["embedding_dim"]
        fields = [{"name": f.name, "type": f.type, "vocab_size": int(self.embedding.tables[f.name].num_embeddings),
                   "table": f"embedding.tables.{f.name}.weight",
                   "shape": [int(self.embedding.tables[f.name].num_embeddings), d]} for f in self.embedding.fields]
        slots = self._slots()

        def shape(name: str) -> List[int]:
            t, k = slots[name]
            return [int(x) for x in (t if k is None else t[k]).shape]

        layers = [{"member": k, "layer": j, "name": None if m.activation is None else f"students.{k}.{m.activation}",
                   "weight": f"students.{k}.{m.name}", "shape": shape(f"students.{k}.{m.name}"), "kind": m.kind,
                   "label": m.layer}
                  for k, matrices in enumerate(self.member_matrices) for j, m in enumerate(matrices)]
        counts = {"embedding": 0, "students": [0] * self.num_students, "fusion": 0}
        for name, (t, k) in slots.items():
            if not isinstance(t, nn.Parameter):
                continue
            numel = (t if k is None else t[k]).numel()
            head = name.split(".")
            if head[0] == "students":
                counts["students"][int(head[1])] += numel
            else:
                counts[head[0]] += numel
        counts["total"] = counts["embedding"] + sum(counts["students"]) + counts["fusion"]
        members = [{"member": k, "student": name, "args": dataclasses.asdict(args),
                    "parameters": counts["students"][k]}
                   for k, (name, args) in enumerate(zip(self.member_students, self.member_args, strict=True))]
        return {"num_students": self.num_students, "student": self.student, "fusion": self.fusion_kind,
                "form": self.form, "embedding_dim": d, "hidden_units": list(self.hyper["hidden_units"]),
                "net_dropout": self.hyper["net_dropout"], "batch_norm": self.hyper["batch_norm"],
                "embedding_init_std": self.hyper["embedding_init_std"], "input_dim": self.embedding.output_dim,
                "fields": fields, "hidden_layers": layers, "students": members, "parameters": counts}


def build_ensemble(feature_map: FeatureMap, num_students: int = 1, student: str = "mlp", embedding_dim: int = 16,
                   hidden_units: Sequence[int] = (400, 400, 400), net_dropout: float = 0.1, batch_norm: bool = True,
                   fusion: str = "mean", form: str = "loop", seed: int = 2024,
                   embedding_init_std: float = 1e-4, students: Sequence[str] | None = None,
                   student_args: Mapping[str, Any] | None = None) -> CTREnsemble:
    """Build a shared-embedding ensemble (docs/method.md §2; defaults = the KDEF_MLP Criteo setting).

    Args:
        feature_map: fields of the processed dataset.
        num_students: N >= 1.
        student: a name in ``STUDENTS`` for every member (``mlp``, ``dcnv2``, ...).
        embedding_dim: D.
        hidden_units: the hidden widths of every student that has ``hidden_units`` (the MLP, the DNN towers).
        net_dropout: their dropout after every hidden ReLU.
        batch_norm: their BatchNorm1d after every hidden Linear.
        fusion: ``mean`` | ``sum`` | ``concat`` (concat reads ``sum_k output_dim_k`` features).
        form: ``loop`` | ``batched`` (numerically equivalent; batched for homogeneous ``mlp`` only; see
            :func:`resolve_form` for ``auto``).
        seed: run seed; student k is initialised from ``derive_seeds(seed, N)[k]``.
        embedding_init_std: std of the normal embedding initialisation.
        students: one student name per member (a mix, ``len == N``), instead of ``student``.
        student_args: per-student argument blocks ``{name: {argument: value}}``; they win over the three
            shared keys above (:func:`resolve_members`).

    Returns:
        the :class:`CTREnsemble` (on CPU; move it with ``.to(device)``).
    """
    return CTREnsemble(feature_map, num_students=num_students, student=student, embedding_dim=embedding_dim,
                       hidden_units=hidden_units, net_dropout=net_dropout, batch_norm=batch_norm, fusion=fusion,
                       form=form, seed=seed, embedding_init_std=embedding_init_std, students=students,
                       student_args=student_args)
