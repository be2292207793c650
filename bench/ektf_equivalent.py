"""The EKTF-equivalent: the authors' KDEF model built from FuxiCTR 2.3.10's own layers, trained by FuxiCTR's step.

Imported by ``bench/perf_table.py`` in the same process as collapse-lab (FuxiCTR's venv, made by
``bench/fuxictr_baseline.sh``, holds the same torch; its site-packages is appended to ``sys.path`` after
collapse-lab's, so torch and numpy are the ones collapse-lab uses). It imports only fuxictr, torch and numpy.

The model follows the authors' ``src/EKTF.py`` (KDEF repository; docs/method.md §2-§5), written against
FuxiCTR 2.3.10's ``BaseModel`` interface (``add_loss(return_dict, y_true)``):

    h    = FeatureEmbedding(X) flattened                   (B, F*D)
    z_k  = MLP_Block_k(h)  [Linear -> BatchNorm -> ReLU -> Dropout] x L -> Linear(1)      k = 1..N
    p_t  = sigmoid(mean_k z_k)                             the teacher, detached in the targets
    p_k  = sigmoid(z_k);  s_k = mean_b (1 - |y - p_k|)     the examination scores
    L    = mean_k BCE(p_k, y)
         + sum_k softmin(s)_k * MSE(p_k, sg(p_t))
         + mean_k sum_{j != k} softmax_j(s_j - s_k) * MSE(p_k, sg(p_j))      (no term at N = 1)
         + FuxiCTR's embedding regulariser (lambda = 1e-5)

and one step is FuxiCTR's ``BaseModel.train_step`` (zero_grad, forward, ``compute_loss``, backward,
``clip_grad_norm_`` at 10, Adam). ``precision=bf16`` wraps each ``MLP_Block`` in the same autocast hooks as
collapse-lab (:func:`collapse_lab.training.precision.install_precision`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, List

import numpy as np
import torch
import torch.nn.functional as F
from fuxictr.features import FeatureMap
from fuxictr.pytorch.layers import FeatureEmbedding, MLP_Block
from fuxictr.pytorch.models import BaseModel
from fuxictr_dnn import feature_map_for  # bench/fuxictr_dnn.py: our feature_map.json as a FuxiCTR FeatureMap


class EKTFEquivalent(BaseModel):
    """N FuxiCTR ``MLP_Block`` students on one ``FeatureEmbedding``; the authors' loss (module docstring)."""

    def __init__(self, feature_map: FeatureMap, num_students: int, embedding_dim: int, hidden_units: List[int],
                 net_dropout: float, batch_norm: bool, learning_rate: float, embedding_regularizer: float,
                 model_root: str) -> None:
        super().__init__(feature_map, model_id="EKTF", gpu=-1, embedding_regularizer=embedding_regularizer,
                         net_regularizer=None, verbose=0, model_root=model_root, metrics=["logloss", "AUC"])
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        self.num_students = int(num_students)
        self.networks = torch.nn.ModuleList(
            MLP_Block(input_dim=feature_map.sum_emb_out_dim(), output_dim=1, hidden_units=list(hidden_units),
                      hidden_activations="ReLU", dropout_rates=net_dropout, batch_norm=batch_norm)
            for _ in range(self.num_students))
        self.compile("adam", "binary_crossentropy", learning_rate)
        self.reset_parameters()
        self.model_to_device()
        self._max_gradient_norm = 10.0  # BaseModel.fit sets it; train_step reads it

    def forward(self, inputs: dict) -> dict:
        x = self.get_inputs(inputs)
        h = self.embedding_layer(x, flatten_emb=True)
        logits = [net(h) for net in self.networks]  # N x (B, 1)
        teacher = torch.sigmoid(torch.cat(logits, dim=-1).mean(dim=-1, keepdim=True))
        return {"y_pred": teacher, "logits_stu": logits}

    def add_loss(self, return_dict: dict, y_true: torch.Tensor) -> torch.Tensor:
        teacher = return_dict["y_pred"].detach()
        probs = [torch.sigmoid(z) for z in return_dict["logits_stu"]]
        label = torch.stack([self.loss_fn(p, y_true, reduction="mean") for p in probs]).mean()
        scores = torch.stack([(1 - (y_true - p).abs()).mean() for p in probs])  # (N,)
        to_teacher = torch.stack([F.mse_loss(p, teacher) for p in probs])
        loss = label + (F.softmin(scores, dim=-1) * to_teacher).sum()
        if self.num_students > 1:
            peers = []
            for k, pk in enumerate(probs):
                others = [j for j in range(self.num_students) if j != k]
                w = torch.softmax(torch.stack([scores[j] - scores[k] for j in others]), dim=-1)
                peers.append((w * torch.stack([F.mse_loss(pk, probs[j].detach()) for j in others])).sum())
            loss = loss + torch.stack(peers).mean()
        return loss


class EKTFWorkload:
    """The EKTF-equivalent on the perf-table data: model, cycled FuxiCTR batch dictionaries, one step."""

    def __init__(self, data: Path, n: int, precision: str, batch_size: int, hidden: List[int],
                 embedding_dim: int = 16, batches: int = 4, seed: int = 2024) -> None:
        from collapse_lab.training.precision import install_precision

        torch.manual_seed(seed)
        fields = json.loads((data / "feature_map.json").read_text())["fields"]
        self._root = tempfile.TemporaryDirectory(prefix="ektf-")
        fmap = feature_map_for(data, embedding_dim, "average")  # categorical fields: the pooling is unused
        self.model = EKTFEquivalent(fmap, n, embedding_dim, hidden, 0.1, True, 1e-3, 1e-5, self._root.name)
        install_precision(self.model, precision, "cpu", modules=list(self.model.networks))
        ids = torch.from_numpy(np.load(data / "train" / "ids.npy").astype(np.int64))
        labels = torch.from_numpy(np.load(data / "train" / "labels.npy").astype(np.float32))
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
        self.batches: List[Any] = []
        for b in range(batches):
            idx = order[b * batch_size:(b + 1) * batch_size]
            batch = {f["name"]: ids[idx, f["column"]] for f in fields}
            batch["label"] = labels[idx]
            self.batches.append(batch)
        self.model.train()
        self.i = 0

    def step(self) -> None:
        self.model.train_step(self.batches[self.i % len(self.batches)])
        self.i += 1
