"""Running statistics of one training interval (an epoch, or ``eval_every_steps`` steps).

Per step the trainer records the loss parts (``loss`` = the optimised objective including the embedding
regulariser, ``task_loss``, ``kd_loss``, ``mutual_loss``, ``reg_loss``) and, when the method has them, the
examination-mechanism weights λ (N,) and μ (N, N). They stay detached tensors on the training device until the
interval ends (no per-step host sync on a GPU). The summary gives batch means of the parts, the mean of λ_k per
student, and mean/std of λ over batches × students and of μ over batches × off-diagonal pairs (claim C7 of
docs/method.md §14: are the EM weights near-uniform, λ ≈ 1/N, μ ≈ 1/(N-1)?).

Example:
    >>> import torch
    >>> s = TrainStats()
    >>> z = torch.tensor(0.)
    >>> s.update({"loss": torch.tensor(1.), "task_loss": z, "kd_loss": z, "mutual_loss": z, "reg_loss": z},
    ...          torch.tensor([0.25, 0.75]), None)
    >>> s.update({"loss": torch.tensor(3.), "task_loss": z, "kd_loss": z, "mutual_loss": z, "reg_loss": z},
    ...          torch.tensor([0.75, 0.25]), None)
    >>> out = s.summary()
    >>> out["loss"], out["lambda"], out["lambda_mean"], out["lambda_std"], out["mu_mean"]
    (2.0, [0.5, 0.5], 0.5, 0.25, None)
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

__all__ = ["LOSS_PARTS", "TrainStats"]

#: loss parts recorded every step, in this order
LOSS_PARTS = ("loss", "task_loss", "kd_loss", "mutual_loss", "reg_loss")


class TrainStats:
    """Accumulates per-step loss parts and EM weights of one interval."""

    def __init__(self) -> None:
        self.parts: List[Any] = []  # each (len(LOSS_PARTS),) float32
        self.lam: List[Any] = []  # each (N,)
        self.mu: List[Any] = []  # each (N, N)
        self.checked = 0  # steps already checked for non-finite losses

    def __len__(self) -> int:
        return len(self.parts)

    def update(self, parts: Mapping[str, Any], lam: Any | None, mu: Any | None) -> None:
        import torch

        self.parts.append(torch.stack([torch.as_tensor(parts[k]).detach().float().reshape(()) for k in LOSS_PARTS]))
        if lam is not None:
            self.lam.append(lam.detach().float())
        if mu is not None:
            self.mu.append(mu.detach().float())

    def first_nonfinite(self) -> int | None:
        """Index (within the interval) of the first unchecked step whose loss is NaN/Inf, else None."""
        import torch

        if self.checked >= len(self.parts):
            return None
        losses = torch.stack(self.parts[self.checked:])[:, 0]
        bad = (~torch.isfinite(losses)).nonzero()
        self.checked = len(self.parts)
        return None if bad.numel() == 0 else self.checked - len(losses) + int(bad[0, 0])

    def last_loss(self) -> float:
        return float(self.parts[-1][0]) if self.parts else float("nan")

    def summary(self) -> Dict[str, Any]:
        """Means of the loss parts and λ/μ statistics (``None`` where the method has no EM weights)."""
        import torch

        out: Dict[str, Any] = {}
        if self.parts:
            means = torch.stack(self.parts).double().mean(dim=0)
            out.update({k: float(v) for k, v in zip(LOSS_PARTS, means.tolist(), strict=True)})
        out.update({"lambda": None, "lambda_mean": None, "lambda_std": None, "mu_mean": None, "mu_std": None})
        if self.lam:
            lam = torch.stack(self.lam).double()  # (S, N)
            out["lambda"] = lam.mean(dim=0).tolist()
            out["lambda_mean"] = float(lam.mean())
            out["lambda_std"] = float(lam.std(unbiased=False))
        if self.mu:
            mu = torch.stack(self.mu).double()  # (S, N, N)
            n = mu.shape[-1]
            off = ~torch.eye(n, dtype=torch.bool, device=mu.device)
            values = mu[:, off]  # (S, N(N-1))
            if values.numel():
                out["mu_mean"] = float(values.mean())
                out["mu_std"] = float(values.std(unbiased=False))
        return out

    def reset(self) -> None:
        self.__init__()

    def state_dict(self) -> Dict[str, Any]:
        """Tensors only (for ``trainer_state.pt``)."""
        import torch

        def stack(items: List[Any]) -> Any:
            return torch.stack(items).cpu() if items else torch.empty(0)

        return {"parts": stack(self.parts), "lambda": stack(self.lam), "mu": stack(self.mu)}

    def load_state_dict(self, state: Mapping[str, Any], device: Any = "cpu") -> None:
        self.reset()
        self.parts = [t.to(device) for t in state["parts"]] if state["parts"].numel() else []
        self.lam = [t.to(device) for t in state["lambda"]] if state["lambda"].numel() else []
        self.mu = [t.to(device) for t in state["mu"]] if state["mu"].numel() else []
        self.checked = len(self.parts)
