"""The training loop (docs/method.md §6: FuxiCTR 2.0.x behaviour, reimplemented on plain PyTorch).

One step on a batch (x, y)::

    out   = model(x)                                   logits (B, N), fused_logit (B,)
    parts = task(out, y)                               the method's objective (strategies/)
    total = parts["loss"] + (lambda_emb / 2) * sum_f ||P_f||_2^2      FuxiCTR embedding regulariser
    Adam step on total, after clip_grad_norm_(params, 10)

After every epoch (or every ``eval_every_steps`` steps) the validation split is scored for every student and the
ensemble; the validation **ensemble AUC** drives the plateau rule (:mod:`collapse_lab.training.schedule`):
improvement -> ``checkpoints/best``; otherwise lr x 0.1 (floor 1e-6) and stop at patience 2. After every epoch
``checkpoints/last`` (weights + ``trainer_state.pt``, one directory swapped in whole) is written so ``--resume``
continues at the next epoch and ends
with exactly the metrics of an uninterrupted run (same batches: ``BatchIterator.set_epoch``; same dropout:
restored RNG states).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Callable, Dict, Mapping, Sequence

from collapse_lab.config import TrainConfig, config_hash
from collapse_lab.errors import UserError
from collapse_lab.io.checkpoint import load_weights, save_checkpoint_pair, save_weights
from collapse_lab.io.manifest import Manifest
from collapse_lab.io.rundir import MetricsLog, RunDir
from collapse_lab.training.evaluation import evaluate
from collapse_lab.training.rng import get_rng_state, set_rng_state
from collapse_lab.training.schedule import PlateauMonitor
from collapse_lab.training.spectra import SpectraTrace
from collapse_lab.training.stats import LOSS_PARTS, TrainStats

__all__ = ["Trainer", "training_step", "TRAINER_STATE_VERSION", "PHASES"]

TRAINER_STATE_VERSION = 1
#: the timed phases of an epoch: batch fetch, optimisation step, validation pass (Trainer.phase_seconds)
PHASES = ("data", "step", "eval", "epoch")
Callback = Callable[[str, Dict[str, Any]], None]


def training_step(model: Any, task: Any, optimizer: Any, batch: Any, embedding_regularizer: float = 0.0,
                  clip_grad_norm: float | None = 10.0) -> Dict[str, Any]:
    """One optimisation step; returns the task's parts plus ``reg_loss`` and ``loss`` = the total objective."""
    import torch

    out = model(batch.ids, values=batch.values)
    parts = task(out, batch.labels)
    reg = model.embedding_penalty(embedding_regularizer)
    total = parts["loss"] + reg
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    if clip_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    optimizer.step()
    return {**parts, "loss": total.detach(), "reg_loss": reg.detach()}


class Trainer:
    """Runs epochs, evaluates, checkpoints and keeps the resumable state of one run.

    Args:
        cfg: the resolved config.
        model: the ensemble (already on ``device``).
        task: the strategy (loss module).
        train_batches / valid_batches: :class:`~collapse_lab.data.dataset.BatchIterator` s.
        run: the run directory; ``metrics`` its metrics log; ``manifest`` its manifest.
        logger: the run logger.
        device: torch device of the batches.
        progress: tqdm switch (None = on for terminals only).
        callbacks: ``fn(event, info)`` called with ``"evaluation"`` and ``"epoch_end"``; ``info`` holds epoch, step,
            (valid metrics) and ``trainer`` itself. An exception raised there stops the run like an interruption.
        step_fn: the optimisation step, :func:`training_step` or one of collapse_lab.parallel.step.
    """

    def __init__(self, cfg: TrainConfig, model: Any, task: Any, train_batches: Any, valid_batches: Any,
                 run: RunDir, metrics: MetricsLog, manifest: Manifest, logger: logging.Logger, device: Any,
                 progress: bool | None = None, callbacks: Sequence[Callback] = (),
                 step_fn: Callable[..., Dict[str, Any]] = training_step) -> None:
        import torch

        self.cfg, self.model, self.task = cfg, model, task
        self.train_batches, self.valid_batches = train_batches, valid_batches
        self.run, self.metrics, self.manifest, self.log = run, metrics, manifest, logger
        self.device = torch.device(device)
        self.progress, self.callbacks = progress, list(callbacks)
        self.step_fn = step_fn  # training_step, or a multi-process step (collapse_lab.parallel.step)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        self.monitor = PlateauMonitor(self.optimizer, cfg.lr_decay_factor, cfg.min_lr, cfg.patience)
        self.stats = TrainStats()
        self.epoch = 0  # finished epochs
        self.step = 0  # optimizer steps taken
        self.done = False  # training loop finished (early stop or a cap reached)
        self.last_eval_step = -1
        self.transfer: Dict[str, float | None] = {}  # lambda/mu statistics of the last interval
        self.last_valid: Dict[str, Dict[str, float]] | None = None  # metrics of the last evaluation
        self.throughput: list = []  # training samples/s per epoch (not part of the metrics: not deterministic)
        # wall seconds per epoch in each phase (PHASES; "epoch" = the whole epoch with its evaluation and
        # checkpoints): two perf_counter reads per step, for docs/performance.md §7 "share of an epoch"
        self.phase_seconds: Dict[int, Dict[str, float]] = {}
        self.check_every = 1 if self.device.type == "cpu" else 25  # host syncs for the NaN check
        self.meta = {"config_hash": config_hash(cfg), "dataset_id": manifest["dataset"]["id"]}
        # the hash the run was created with (an older hashing scheme for runs from before config_identity; the
        # caller has checked that the config itself is unchanged): its trainer state still belongs to the run
        self.created_hash = manifest.data.get("config_hash")
        self.trace = SpectraTrace(run.spectra_trace, model.describe(), cfg.spectra_every, cfg.spectra_unit) \
            if cfg.spectra_every else None  # collapse metrics over training (training/spectra.py)

    # ---- state --------------------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """Everything but the weights (those go to ``checkpoints/last``), as tensors and plain containers."""
        return {"version": TRAINER_STATE_VERSION, "config_hash": self.meta["config_hash"], "epoch": self.epoch,
                "step": self.step, "done": self.done, "last_eval_step": self.last_eval_step,
                "optimizer": self.optimizer.state_dict(), "monitor": self.monitor.state_dict(),
                "stats": self.stats.state_dict(), "rng": get_rng_state(), "metrics_rows": len(self.metrics),
                "transfer": dict(self.transfer), "throughput": list(self.throughput)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        owners = {self.meta["config_hash"], self.created_hash} - {None}
        if state.get("version") != TRAINER_STATE_VERSION or state.get("config_hash") not in owners:
            raise UserError(f"{self.run.trainer_state}: trainer state does not belong to this config "
                            "(different config hash or version); start over with --overwrite")
        weights, meta = load_weights(self.run.checkpoint("last"))
        if (meta.get("epoch"), meta.get("step")) != (str(state["epoch"]), str(state["step"])):
            # an interruption between writing checkpoints/last and trainer_state.pt leaves them one epoch apart
            raise UserError(f"{self.run.checkpoint('last')}: weights are from epoch {meta.get('epoch')} step "
                            f"{meta.get('step')} but {self.run.trainer_state} is from epoch {state['epoch']} step "
                            f"{state['step']}; cannot resume exactly, start over with --overwrite")
        self.restore(weights, state)
        self.metrics.load(keep=int(state["metrics_rows"]))
        if self.trace is not None:
            self.trace.load(through_step=self.step)  # rows past the saved state are recomputed

    def restore(self, weights: Mapping[str, Any], state: Mapping[str, Any]) -> None:
        """Take over canonical-name ``weights`` and a :meth:`state_dict` (optimizer, schedule, statistics, counters
        and RNG state): resuming from disk, or a rank receiving rank 0's resumed state (parallel/group.py)."""
        self.model.import_state_dict(weights)
        self.optimizer.load_state_dict(state["optimizer"])
        self.monitor.load_state_dict(state["monitor"])
        self.stats.load_state_dict(state["stats"], self.device)
        self.epoch, self.step, self.done = int(state["epoch"]), int(state["step"]), bool(state["done"])
        self.last_eval_step = int(state["last_eval_step"])
        self.transfer, self.throughput = dict(state["transfer"]), list(state["throughput"])
        set_rng_state(state["rng"])

    def _save_weights(self, name: str, epoch: int, step: int) -> str:
        meta = {**self.meta, "name": name, "epoch": epoch, "step": step}
        return save_weights(self.run.checkpoint(name), self.model.export_state_dict(), meta)

    # ---- loop ---------------------------------------------------------------------------------------------
    def fit(self) -> None:
        """Train until early stopping, ``max_epochs`` or ``max_steps``."""
        from tqdm.auto import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        cfg = self.cfg
        disable = None if self.progress is None else not self.progress
        console = any(type(h) is logging.StreamHandler for h in self.log.handlers)
        if self.trace is not None and self.step == 0 and self.trace.last_step < 0:
            self.trace.record(self.model, 0, 0)  # the initialisation
        with logging_redirect_tqdm(loggers=[self.log]) if console else contextlib.nullcontext():
            while not self.done and self.epoch < cfg.max_epochs:
                epoch = self.epoch + 1
                self.train_batches.set_epoch(epoch - 1)
                self.model.train()
                bar = tqdm(total=len(self.train_batches), desc=f"epoch {epoch}", unit="batch", disable=disable,
                           leave=False, dynamic_ncols=True)
                samples, train_time, tick = 0, 0.0, time.perf_counter()
                epoch_start = tick
                phase = self.phase_seconds.setdefault(epoch, dict.fromkeys(PHASES, 0.0))
                batches = iter(self.train_batches)
                while True:
                    t_fetch = time.perf_counter()
                    batch = next(batches, None)  # the data phase: gather (+ copy) of the next batch
                    t_step = time.perf_counter()
                    phase["data"] += t_step - t_fetch
                    if batch is None:
                        break
                    parts = self.step_fn(self.model, self.task, self.optimizer, batch, cfg.embedding_regularizer,
                                         cfg.clip_grad_norm)
                    phase["step"] += time.perf_counter() - t_step
                    self.step += 1
                    samples += len(batch)
                    self.stats.update({k: parts[k] for k in LOSS_PARTS}, parts.get("lambda"), parts.get("mu"))
                    bar.update(1)
                    if self.trace is not None and self.trace.due_after_step(self.step):
                        self.trace.record(self.model, epoch, self.step)
                    if self.step % self.check_every == 0:
                        self._check_finite(epoch)
                        elapsed = train_time + time.perf_counter() - tick
                        bar.set_postfix(loss=f"{self.stats.last_loss():.4f}",
                                        samples_s=f"{samples / max(elapsed, 1e-9):.0f}")
                    capped = cfg.max_steps is not None and self.step >= cfg.max_steps
                    if cfg.eval_every_steps and self.step % cfg.eval_every_steps == 0 or capped:
                        self._check_finite(epoch)  # before _evaluate resets the training statistics
                        train_time += time.perf_counter() - tick
                        self._evaluate(epoch)
                        tick = time.perf_counter()
                    if capped or self.done:
                        self.done = True
                        break
                getattr(batches, "close", lambda: None)()  # stops a prefetch thread at once, as the for loop did
                bar.close()
                self._check_finite(epoch)
                train_time += time.perf_counter() - tick
                last_epoch = self.done or epoch == cfg.max_epochs
                if (not cfg.eval_every_steps or last_epoch) and self.last_eval_step != self.step:
                    self._evaluate(epoch)  # every epoch by default; always after the last training step
                self.throughput.append(samples / max(train_time, 1e-9))
                self._end_epoch(epoch)
                phase["epoch"] = time.perf_counter() - epoch_start

    def _check_finite(self, epoch: int) -> None:
        bad = self.stats.first_nonfinite()
        if bad is None:
            return
        step = self.step - len(self.stats) + bad + 1
        saved = (f"the last good checkpoints are in {self.run.checkpoints}" if any(self.run.checkpoints.glob("*"))
                 else "no checkpoint was written before it")
        raise UserError(f"non-finite loss at step {step} (epoch {epoch}); training stopped, {saved}; try a lower lr "
                        "or a smaller clip_grad_norm")

    def _evaluate(self, epoch: int) -> None:
        """Score the validation split, log the interval's training statistics, apply the plateau rule."""
        t_eval = time.perf_counter()
        valid = evaluate(self.model, self.valid_batches, split="valid")
        phase = self.phase_seconds.setdefault(epoch, dict.fromkeys(PHASES, 0.0))
        phase["eval"] += time.perf_counter() - t_eval
        self.last_valid = valid
        summary = self.stats.summary()
        self.stats.reset()
        self.transfer = {k: summary[k] for k in ("lambda_mean", "lambda_std", "mu_mean", "mu_std")}
        lr = self.monitor.lr
        m, e, s = self.metrics, epoch, self.step
        for key in LOSS_PARTS:
            m.add(e, s, "train", "ensemble", key, summary.get(key))
        m.add(e, s, "train", "ensemble", "lr", lr)
        for k, value in enumerate(summary["lambda"] or []):
            m.add(e, s, "train", k, "lambda", value)
        for key, value in self.transfer.items():
            m.add(e, s, "train", "ensemble", key, value)
        for member, values in valid.items():
            for metric, value in values.items():
                m.add(e, s, "valid", member, metric, value)
        improved = self.monitor.step(valid["ensemble"]["auc"], epoch, self.step)
        self.last_eval_step = self.step
        m.flush()
        if improved:
            sha = self._save_weights("best", epoch, self.step)
            self.manifest.set_checkpoint({"name": "best", "path": self.run.relative(self.run.checkpoint("best")),
                                          "epoch": epoch, "step": self.step, "sha256": sha,
                                          "metrics": {"valid": valid}})
            self.manifest.save()
        if self.monitor.should_stop:
            self.done = True
        students = " ".join(f"{valid[str(k)]['auc']:.4f}" for k in range(len(valid) - 1))
        self.log.info("epoch %d step %d: train loss %.5f | valid AUC %.5f logloss %.5f | students %s | lr %.0e%s",
                      epoch, self.step, summary.get("loss", float("nan")), valid["ensemble"]["auc"],
                      valid["ensemble"]["logloss"], students, lr,
                      " | best, saved" if improved else f" | no improvement ({self.monitor.counter}/"
                      f"{self.cfg.patience})" + (", early stop" if self.done else ""))
        for callback in self.callbacks:
            callback("evaluation", {"epoch": epoch, "step": self.step, "valid": valid, "improved": improved,
                                    "trainer": self})

    def _end_epoch(self, epoch: int) -> None:
        """Persist the resumable state: last weights, trainer state, periodic checkpoints, manifest timing."""
        self.epoch = epoch
        if self.cfg.max_steps is not None and self.step >= self.cfg.max_steps:
            self.done = True
        if self.cfg.save_every and epoch % self.cfg.save_every == 0:
            name = f"epoch_{epoch:04d}"
            sha = self._save_weights(name, epoch, self.step)
            self.manifest.set_checkpoint({"name": name, "path": self.run.relative(self.run.checkpoint(name)),
                                          "epoch": epoch, "step": self.step, "sha256": sha,
                                          "metrics": {"valid": self.last_valid}
                                          if self.last_eval_step == self.step else None})
        if self.trace is not None:  # before the trainer state: the file holds every row up to its step
            if self.trace.due_at_epoch_end(epoch, self.step, self.done or epoch == self.cfg.max_epochs):
                self.trace.record(self.model, epoch, self.step)
            self.trace.flush()
        self.metrics.flush()  # may run ahead of the pair: a resume keeps only the rows the state counts
        meta = {**self.meta, "name": "last", "epoch": epoch, "step": self.step}
        save_checkpoint_pair(self.run.checkpoint("last").parent, self.model.export_state_dict(), meta,
                             self.state_dict())
        self.manifest.update(timing={"train_samples_per_s": list(self.throughput)})
        self.manifest.save()
        self.log.info("epoch %d done: %.0f training samples/s", epoch, self.throughput[-1])
        for callback in self.callbacks:
            callback("epoch_end", {"epoch": epoch, "step": self.step, "done": self.done, "trainer": self})
