"""Train FuxiCTR's DNN on a collapse-lab processed dataset (run inside the FuxiCTR venv, not collapse-lab's).

Called by ``bench/fuxictr_baseline.py``; it imports only fuxictr, torch and numpy. The processed split
(``<data>/{train,valid,test}/{ids,labels}.npy`` and ``feature_map.json``, see collapse_lab.data) is fed to
FuxiCTR as the batch dictionaries its ``BaseModel`` reads (``{field: LongTensor, "label": FloatTensor}``;
a sequence field is its ``(B, max_len)`` id columns, padding id 0, as FuxiCTR's tokenizer pads), so both
libraries see the same rows, ids and vocabularies. The model is FuxiCTR's ``model_zoo/DNN`` (which is not
part of the PyPI package), composed here from the library's own ``FeatureEmbedding`` and ``MLP_Block``
exactly as that file does; training is ``BaseModel.fit`` (Adam, BCE, embedding L2, gradient clipping at 10,
validation AUC monitor, reduce-LR-on-plateau x0.1, early stopping) and ``BaseModel.evaluate`` on the test
split. The sequence pooling is FuxiCTR's ``feature_encoder``: ``layers.MaskedAveragePooling()`` (its default)
or ``layers.MaskedSumPooling()``.

Usage: python fuxictr_dnn.py --data DIR --params JSON --seeds 2024,2025 --pooling average --out FILE
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from fuxictr.features import FeatureMap
from fuxictr.pytorch.layers import FeatureEmbedding, MLP_Block
from fuxictr.pytorch.models import BaseModel
from fuxictr.pytorch.torch_utils import seed_everything
from fuxictr.version import __version__ as fuxictr_version

ENCODERS = {"average": "layers.MaskedAveragePooling()", "sum": "layers.MaskedSumPooling()"}


class DNN(BaseModel):
    """FuxiCTR ``model_zoo/DNN``: FeatureEmbedding (flattened) -> MLP_Block with a sigmoid output."""

    def __init__(self, feature_map, learning_rate, embedding_dim, hidden_units, net_dropout, batch_norm,
                 embedding_regularizer, **kwargs):
        super().__init__(feature_map, model_id="DNN", gpu=-1, embedding_regularizer=embedding_regularizer,
                         net_regularizer=None, **kwargs)
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        self.mlp = MLP_Block(input_dim=feature_map.sum_emb_out_dim(), output_dim=1, hidden_units=hidden_units,
                             hidden_activations="ReLU", output_activation=self.output_activation,
                             dropout_rates=net_dropout, batch_norm=batch_norm)
        self.compile(kwargs["optimizer"], kwargs["loss"], learning_rate)
        self.reset_parameters()
        self.model_to_device()

    def forward(self, inputs):
        X = self.get_inputs(inputs)
        return {"y_pred": self.mlp(self.embedding_layer(X, flatten_emb=True))}


class Batches:
    """FuxiCTR-style batch dictionaries over one split; a new shuffle every epoch when ``shuffle``."""

    def __init__(self, columns, labels, batch_size, shuffle, seed):
        self.columns, self.labels = columns, labels
        self.batch_size, self.shuffle = batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self.rows = len(labels)

    def __len__(self):
        return (self.rows + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        order = torch.randperm(self.rows, generator=self.generator) if self.shuffle else torch.arange(self.rows)
        for start in range(0, self.rows, self.batch_size):
            idx = order[start:start + self.batch_size]
            batch = {name: col[idx] for name, col in self.columns.items()}
            batch["label"] = self.labels[idx]
            yield batch


def feature_map_for(data: Path, embedding_dim: int, pooling: str) -> FeatureMap:
    """A FuxiCTR FeatureMap with the fields, vocabularies and padding ids of our ``feature_map.json``."""
    ours = json.loads((data / "feature_map.json").read_text())
    fmap = FeatureMap(ours["dataset_id"], str(data))
    fmap.labels = ["label"]
    fmap.default_emb_dim = embedding_dim
    features = OrderedDict()
    for f in ours["fields"]:
        if f["type"] not in ("categorical", "sequence"):
            raise SystemExit(f"{data}: field {f['name']!r} of type {f['type']!r} is not supported by this bench")
        spec = {"source": "", "type": f["type"], "vocab_size": f["vocab_size"], "padding_idx": f["padding_idx"],
                "oov_idx": f["oov_idx"]}
        if f["type"] == "sequence":
            spec.update(max_len=f["max_len"], feature_encoder=ENCODERS[pooling])
        features[f["name"]] = spec
    fmap.features = features
    fmap.num_fields = fmap.get_num_fields()
    fmap.total_features = sum(s["vocab_size"] for s in features.values())
    fmap.input_length = sum(s.get("max_len", 1) for s in features.values())
    return fmap


def load_split(data: Path, split: str, fields):
    ids = torch.from_numpy(np.load(data / split / "ids.npy").astype(np.int64))
    labels = torch.from_numpy(np.load(data / split / "labels.npy").astype(np.float32))
    columns = {f["name"]: ids[:, f["column"]] if f["type"] == "categorical"
               else ids[:, f["column"]:f["column"] + f["width"]] for f in fields}
    return columns, labels


def run(data: Path, params: dict, seed: int, pooling: str, threads: int) -> dict:
    torch.set_num_threads(threads)
    seed_everything(seed)
    fields = json.loads((data / "feature_map.json").read_text())["fields"]
    fmap = feature_map_for(data, params["embedding_dim"], pooling)
    splits = {s: load_split(data, s, fields) for s in ("train", "valid", "test")}
    gens = {s: Batches(*splits[s], params["batch_size"], shuffle=(s == "train"), seed=seed) for s in splits}
    with tempfile.TemporaryDirectory() as root:
        model = DNN(fmap, learning_rate=params["lr"], embedding_dim=params["embedding_dim"],
                    hidden_units=list(params["hidden_units"]), net_dropout=params["net_dropout"],
                    batch_norm=params["batch_norm"], embedding_regularizer=float(params["embedding_regularizer"]),
                    optimizer="adam", loss="binary_crossentropy", monitor="AUC", monitor_mode="max",
                    early_stop_patience=params["patience"], reduce_lr_on_plateau=True, verbose=0,
                    model_root=root, metrics=["logloss", "AUC"])
        Path(model.model_dir).mkdir(parents=True, exist_ok=True)  # FuxiCTR's run script makes it
        start = time.perf_counter()
        model.fit(gens["train"], epochs=params["max_epochs"], validation_data=gens["valid"],
                  max_gradient_norm=params["clip_grad_norm"])
        seconds = time.perf_counter() - start
        valid = model.evaluate(gens["valid"])
        test = model.evaluate(gens["test"])
    params_count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"library": "fuxictr", "version": fuxictr_version, "model": "DNN", "pooling": pooling, "seed": seed,
            "test_auc": float(test["AUC"]), "test_logloss": float(test["logloss"]),
            "valid_auc": float(valid["AUC"]), "valid_logloss": float(valid["logloss"]),
            "epochs_run": model._epoch_index + 1, "train_seconds": seconds, "parameters": params_count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--params", required=True, help="JSON of the training hyperparameters")
    parser.add_argument("--seeds", required=True)
    parser.add_argument("--pooling", choices=sorted(ENCODERS), default="average")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    params = json.loads(args.params)
    rows = [run(args.data, params, int(s), args.pooling, args.threads) for s in args.seeds.split(",")]
    args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
