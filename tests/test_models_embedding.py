"""The shared embedding: lookups, masked average/sum pooling of sequences, numeric fields, FuxiCTR initialisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from collapse_lab.data.feature_map import FeatureMap, FieldInfo
from collapse_lab.errors import UserError
from collapse_lab.models import SharedEmbedding


def toy_map(pooling: str | None = "sum") -> FeatureMap:
    """ids columns: user (0), genres (1..3, max_len 3); values column: age (0)."""
    return FeatureMap("toy", [FieldInfo("user", "categorical", 0, 1, 7),
                              FieldInfo("genres", "sequence", 1, 3, 6, max_len=3, pooling=pooling),
                              FieldInfo("age", "numeric", 0, 0, 1, padding_idx=None)])


FM = toy_map()


def make(std: float = 0.5, seed: int = 0, pooling: str | None = "sum") -> SharedEmbedding:
    return SharedEmbedding(toy_map(pooling), 4, std, torch.Generator().manual_seed(seed))


def with_integer_genres(emb: SharedEmbedding) -> SharedEmbedding:
    """Genre row r = [r, 10 r, 100 r, -r] (row 0, the padding row, stays zero) for hand-computed pools."""
    with torch.no_grad():
        emb.tables["genres"].weight.copy_(torch.arange(6.0)[:, None] * torch.tensor([1.0, 10.0, 100.0, -1.0]))
    return emb


def genres_of(emb: SharedEmbedding, ids: list) -> np.ndarray:
    """The pooled genres block (B, 4) for rows of genre ids (user 1, age 0)."""
    full = torch.tensor([[1, *row] for row in ids])
    return emb(full, torch.zeros(len(ids), 1))[:, 4:8].detach().numpy()


@pytest.mark.parametrize("pooling, expected", [
    # rows: post-padded [3, 5, -], pre-padded [-, 2, 4], all padding, one token, full [1, 2, 3]
    ("mean", [[4, 40, 400, -4], [3, 30, 300, -3], [0, 0, 0, 0], [5, 50, 500, -5], [2, 20, 200, -2]]),
    ("sum", [[8, 80, 800, -8], [6, 60, 600, -6], [0, 0, 0, 0], [5, 50, 500, -5], [6, 60, 600, -6]]),
])
def test_masked_average_and_sum_pooling_by_hand(pooling, expected) -> None:
    emb = with_integer_genres(make(pooling=pooling))
    out = genres_of(emb, [[3, 5, 0], [0, 2, 4], [0, 0, 0], [5, 0, 0], [1, 2, 3]])
    np.testing.assert_allclose(out, np.array(expected, dtype=np.float32), rtol=1e-6)


def test_average_pooling_ignores_a_nonzero_padding_row_and_spreads_the_gradient_over_the_tokens() -> None:
    emb = with_integer_genres(make(pooling="mean"))
    with torch.no_grad():
        emb.tables["genres"].weight[0] = 100.0  # the count must come from the ids, not from zero rows
    np.testing.assert_allclose(genres_of(emb, [[4, 0, 0], [0, 0, 0]]), [[4, 40, 400, -4], [0, 0, 0, 0]])
    emb.zero_grad()
    full = torch.tensor([[1, 3, 5, 0], [1, 3, 0, 0]])
    emb(full, torch.zeros(2, 1))[:, 4:8].sum().backward()
    grad = emb.tables["genres"].weight.grad[:, 0]  # d(sum of outputs)/d(row) per dimension
    torch.testing.assert_close(grad, torch.tensor([0.0, 0.0, 0.0, 0.5 + 1.0, 0.0, 0.5]))


def test_feature_maps_without_pooling_read_as_average_and_bad_pooling_is_a_user_error() -> None:
    assert toy_map(None).field("genres").pooling == "mean"  # FuxiCTR's default (old feature maps)
    old = FeatureMap.from_dict({"dataset_id": "old", "fields": [
        {"name": "g", "type": "sequence", "column": 0, "width": 2, "vocab_size": 4, "max_len": 2}]})
    assert old.fields[0].pooling == "mean" and old.to_dict()["fields"][0]["pooling"] == "mean"
    with pytest.raises(UserError, match="pooling 'max' is not one of mean, sum"):
        FieldInfo("g", "sequence", 0, 2, 4, pooling="max")
    with pytest.raises(UserError, match="pooling applies to sequence fields, not categorical"):
        FieldInfo("u", "categorical", 0, 1, 4, pooling="sum")


def test_output_is_the_field_concatenation_with_masked_sum_pooling_and_value_times_vector() -> None:
    emb = make()
    user, genres, age = (emb.tables[n].weight.detach().numpy() for n in ("user", "genres", "age"))
    ids = torch.tensor([[1, 3, 0, 0], [6, 3, 4, 5], [2, 0, 0, 0]])
    values = torch.tensor([[0.5], [2.0], [-1.0]])
    out = emb(ids, values).detach().numpy()  # (B, F*D) = (3, 12)
    assert out.shape == (3, 12) and emb.output_dim == 12
    expected = np.stack([
        np.concatenate([user[1], genres[3], 0.5 * age[0]]),
        np.concatenate([user[6], genres[3] + genres[4] + genres[5], 2.0 * age[0]]),
        np.concatenate([user[2], np.zeros(4), -1.0 * age[0]]),  # an all-padding sequence pools to zero
    ])
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)


def test_sequence_pooling_ignores_padding_even_if_the_padding_row_is_nonzero() -> None:
    emb = make()
    with torch.no_grad():
        emb.tables["genres"].weight[0] = 100.0  # pooling must mask by id, not rely on a zero row
    ids = torch.tensor([[1, 2, 5, 0], [1, 2, 0, 0]])
    out = emb(ids, torch.zeros(2, 1))[:, 4:8]  # (B, D) of the genres field
    g = emb.tables["genres"].weight.detach()
    torch.testing.assert_close(out[0], g[2] + g[5])
    torch.testing.assert_close(out[1], g[2])


def test_initialisation_is_normal_with_zero_padding_rows_and_seeded() -> None:
    fm = FeatureMap("big", [FieldInfo("a", "categorical", 0, 1, 20001)])
    emb = SharedEmbedding(fm, 16, 1e-4, torch.Generator().manual_seed(3))
    w = emb.tables["a"].weight.detach()
    assert torch.all(w[0] == 0)  # padding row (FuxiCTR: normal on rows 1.. only)
    assert abs(w[1:].std().item() / 1e-4 - 1) < 0.02 and abs(w[1:].mean().item()) < 3e-6
    again = SharedEmbedding(fm, 16, 1e-4, torch.Generator().manual_seed(3)).tables["a"].weight
    other = SharedEmbedding(fm, 16, 1e-4, torch.Generator().manual_seed(4)).tables["a"].weight
    assert torch.equal(w, again.detach()) and not torch.equal(w, other.detach())


def test_padding_rows_get_no_gradient_and_l2_is_the_sum_of_squares() -> None:
    emb = make()
    ids = torch.tensor([[0, 3, 0, 0], [2, 3, 4, 0]])
    emb(ids, torch.ones(2, 1)).sum().backward()
    assert torch.all(emb.tables["genres"].weight.grad[0] == 0) and torch.all(emb.tables["user"].weight.grad[0] == 0)
    assert torch.all(emb.tables["genres"].weight.grad[3] == 2)  # used twice, d(sum)/d(row) = 2 per dim
    expected = sum(float((t.weight.detach().double() ** 2).sum()) for t in emb.tables.values())
    assert emb.l2().item() == pytest.approx(expected, rel=1e-6)


def test_bad_input_raises_user_errors() -> None:
    emb = make()
    with pytest.raises(UserError, match=r"ids must have shape \(B, 4\)"):
        emb(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 1))
    with pytest.raises(UserError, match="'age' is numeric"):
        emb(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(UserError, match="embedding_dim"):
        SharedEmbedding(FM, 0)
