"""The shared embedding: lookups, masked sum pooling of sequences, numeric fields, FuxiCTR initialisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from collapse_lab.data.feature_map import FeatureMap, FieldInfo
from collapse_lab.errors import UserError
from collapse_lab.models import SharedEmbedding

# ids columns: user (0), genres (1..3, max_len 3); values column: age (0)
FM = FeatureMap("toy", [FieldInfo("user", "categorical", 0, 1, 7),
                        FieldInfo("genres", "sequence", 1, 3, 6, max_len=3),
                        FieldInfo("age", "numeric", 0, 0, 1, padding_idx=None)])


def make(std: float = 0.5, seed: int = 0) -> SharedEmbedding:
    return SharedEmbedding(FM, 4, std, torch.Generator().manual_seed(seed))


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
