"""Batch iteration: seeded per-epoch shuffles, index slicing, sequence masks, background prefetch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from collapse_lab.data.dataset import BatchIterator, ProcessedDataset
from collapse_lab.data.prepare import prepare_spec
from collapse_lab.data.spec import spec_from_dict
from collapse_lab.data.synthetic import make_synthetic
from collapse_lab.errors import UserError


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    return ProcessedDataset(make_synthetic(tmp_path_factory.mktemp("b") / "s", rows=1250, fields=3, vocab_size=9))


@pytest.fixture(scope="module")
def seq(tmp_path_factory):
    d = tmp_path_factory.mktemp("seq")
    rows = ["label,x,tags,num", "1,a,p^q^r,1.5", "0,b,,2", "1,a,q,", "0,c,r^p,4"]
    for split in ("train", "valid", "test"):
        (d / f"{split}.csv").write_text("\n".join(rows) + "\n")
    spec = spec_from_dict({"dataset_id": "seq", "train_data": "train.csv", "valid_data": "valid.csv",
                           "test_data": "test.csv", "label_col": {"name": "label"},
                           "feature_cols": [{"name": "x"}, {"name": "tags", "type": "sequence", "max_len": 3},
                                            {"name": "num", "type": "numeric"}]}, base_dir=d)
    return ProcessedDataset(prepare_spec(spec, d / "out", progress=False).path)


def _rows(it):
    return np.concatenate([b.index for b in it])


def test_sequential_batches_are_slices(syn):
    split = syn.split("train")  # 1000 rows
    it = BatchIterator(split, 300)
    batches = list(it)
    assert len(it) == 4 and [len(b) for b in batches] == [300, 300, 300, 100]
    np.testing.assert_array_equal(_rows(batches), np.arange(1000))
    b = batches[1]
    assert b.ids.dtype == torch.int64 and b.labels.dtype == torch.float32 and b.ids.shape == (300, 3)
    np.testing.assert_array_equal(b.ids.numpy(), split.ids[300:600])
    np.testing.assert_array_equal(b.labels.numpy(), split.labels[300:600])
    assert len(BatchIterator(split, 300, drop_last=True)) == 3
    assert [len(b) for b in BatchIterator(split, 300, drop_last=True)] == [300, 300, 300]


def test_shuffle_is_seeded_per_epoch_and_covers_every_row_once(syn):
    split = syn.split("train")
    it = BatchIterator(split, 128, shuffle=True, seed=5)
    epoch0 = [b.index.copy() for b in it]
    assert [len(i) for i in epoch0] == [128] * 7 + [104]
    np.testing.assert_array_equal(np.sort(np.concatenate(epoch0)), np.arange(1000))
    again = [b.index for b in BatchIterator(split, 128, shuffle=True, seed=5)]
    assert all(np.array_equal(a, b) for a, b in zip(epoch0, again, strict=True))
    it.set_epoch(1)
    epoch1 = [b.index for b in it]
    assert not np.array_equal(epoch0[0], epoch1[0])
    perm = np.random.default_rng(5 + 1_000_003).permutation(1000)
    np.testing.assert_array_equal(epoch1[0], np.sort(perm[:128]))  # documented generator
    b = next(iter(it))
    np.testing.assert_array_equal(b.ids.numpy(), split.ids[b.index])  # content follows the index
    other = [b.index for b in BatchIterator(split, 128, shuffle=True, seed=6)]
    assert not np.array_equal(epoch0[0], other[0])


def test_sequence_masks_lengths_and_values(seq):
    split = seq.split("train")
    b = next(iter(BatchIterator(split, 4, feature_map=seq.feature_map)))
    tags = seq.feature_map.field("tags")
    mask = b.masks["tags"]
    assert mask.dtype == torch.bool and mask.shape == (4, 3)
    assert mask.sum(1).tolist() == [3, 0, 1, 2]  # sequence lengths
    assert torch.equal(mask, b.ids[:, tags.column:tags.column + 3] != 0)
    assert b.values[:, 0].tolist() == [1.5, 2.0, 0.0, 4.0]
    assert next(iter(BatchIterator(split, 4))).masks is None


def test_prefetch_yields_the_same_batches_and_stops_early(syn):
    split = syn.split("train")
    plain = list(BatchIterator(split, 64, shuffle=True, seed=1))
    ahead = list(BatchIterator(split, 64, shuffle=True, seed=1, prefetch=3))
    assert len(plain) == len(ahead)
    for a, b in zip(plain, ahead, strict=True):
        assert torch.equal(a.ids, b.ids) and torch.equal(a.labels, b.labels)
    it = iter(BatchIterator(split, 8, prefetch=2))
    next(it)
    it.close()  # the worker thread is told to stop and joined


def test_bad_arguments_and_splits(syn, tmp_path):
    with pytest.raises(UserError, match="batch_size"):
        BatchIterator(syn.split("train"), 0)
    with pytest.raises(UserError, match="unknown split 'dev'; valid: train, valid, test"):
        syn.split("dev")
    with pytest.raises(UserError, match="not a processed dataset"):
        ProcessedDataset(tmp_path)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_with_prefetch(seq):
    split = seq.split("train")
    cpu = next(iter(BatchIterator(split, 4, feature_map=seq.feature_map)))
    gpu = next(iter(BatchIterator(split, 4, feature_map=seq.feature_map, device="cuda", prefetch=2)))
    assert gpu.ids.is_cuda and gpu.labels.is_cuda and gpu.values.is_cuda and gpu.masks["tags"].is_cuda
    assert torch.equal(gpu.ids.cpu(), cpu.ids) and torch.equal(gpu.masks["tags"].cpu(), cpu.masks["tags"])
