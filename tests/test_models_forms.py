"""Loop vs batched forms: same initialisation, max |delta logit| <= 1e-5, equal gradients and BatchNorm statistics."""

from __future__ import annotations

import pytest
import torch

from collapse_lab.data.feature_map import FeatureMap, FieldInfo
from collapse_lab.models import build_ensemble
from collapse_lab.strategies import build_strategy

FM = FeatureMap("toy", [FieldInfo("user", "categorical", 0, 1, 50),
                        FieldInfo("item", "categorical", 1, 1, 40),
                        FieldInfo("genres", "sequence", 2, 3, 12, max_len=3),
                        FieldInfo("age", "numeric", 0, 0, 1, padding_idx=None)])


def batch(rows: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.cat([torch.randint(1, 50, (rows, 1), generator=g), torch.randint(1, 40, (rows, 1), generator=g),
                     torch.randint(0, 12, (rows, 3), generator=g)], dim=1)
    return ids, torch.randn(rows, 1, generator=g), torch.randint(0, 2, (rows,), generator=g).float()


def pair(n: int, fusion: str, batch_norm: bool = True):
    kw = dict(num_students=n, hidden_units=(32, 16, 8), embedding_dim=4, net_dropout=0.0, batch_norm=batch_norm,
              fusion=fusion, seed=3, embedding_init_std=0.05)
    return build_ensemble(FM, form="loop", **kw), build_ensemble(FM, form="batched", **kw)


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("fusion", ["mean", "concat"])
@pytest.mark.parametrize("batch_norm", [True, False])
def test_same_init_same_outputs_same_gradients(n: int, fusion: str, batch_norm: bool) -> None:
    loop, batched = pair(n, fusion, batch_norm)
    sd_loop, sd_batched = loop.export_state_dict(), batched.export_state_dict()
    assert sd_loop.keys() == sd_batched.keys() and all(torch.equal(sd_loop[k], sd_batched[k]) for k in sd_loop)
    ids, values, labels = batch()
    kdef, vanilla = build_strategy("kdef", num_students=n), build_strategy("vanilla", num_students=n)
    def task(out, y):  # kdef + the fused BCE, so that every parameter (the concat head too) gets a gradient
        return {"loss": kdef(out, y)["loss"] + vanilla(out, y)["loss"]}
    for _ in range(2):  # train mode: batch statistics, running-statistic updates, gradients
        loop.train(), batched.train()
        a, b = loop(ids, values, return_hidden=True), batched(ids, values, return_hidden=True)
        assert max_abs(a["logits"], b["logits"]) <= 1e-5 and max_abs(a["fused_logit"], b["fused_logit"]) <= 1e-5
        assert a["hidden"].keys() == b["hidden"].keys()
        assert max(max_abs(a["hidden"][k], b["hidden"][k]) for k in a["hidden"]) <= 1e-5
        loss_a = task(a, labels)["loss"] + 1e-3 * loop.embedding_l2()
        loss_b = task(b, labels)["loss"] + 1e-3 * batched.embedding_l2()
        assert abs(loss_a.item() - loss_b.item()) <= 1e-6
        loop.zero_grad(), batched.zero_grad()
        loss_a.backward(), loss_b.backward()
        ga, gb = loop.export_gradients(), batched.export_gradients()
        assert ga.keys() == gb.keys() == {k for k in sd_loop if "running" not in k and "num_batches" not in k}
        for name in ga:
            # float32 rounding; a bias before BatchNorm has a true gradient of 0 (noise ~1e-7)
            torch.testing.assert_close(ga[name], gb[name], rtol=1e-4, atol=1e-6, msg=name)
        with torch.no_grad():  # the same plain SGD step on both, through the canonical state
            new = {k: v - 0.1 * ga[k] if k in ga else v for k, v in loop.export_state_dict().items()}
        loop.import_state_dict(new)
        batched.import_state_dict({k: v - 0.1 * gb[k] if k in gb else v
                                   for k, v in batched.export_state_dict().items()})
    sa, sb = loop.export_state_dict(), batched.export_state_dict()
    for name in sa:  # running means/vars and num_batches_tracked followed the same updates
        torch.testing.assert_close(sa[name], sb[name], rtol=1e-4, atol=1e-6, msg=name)
    if batch_norm:
        assert sb["students.0.layers.2.bn.num_batches_tracked"].item() == 2
        assert not torch.equal(sb["students.0.layers.0.bn.running_mean"], torch.zeros(32))
    loop.eval(), batched.eval()  # eval mode: running statistics
    ids2, values2, _ = batch(seed=1)
    a, b = loop(ids2, values2), batched(ids2, values2)
    assert max_abs(a["logits"], b["logits"]) <= 1e-5 and max_abs(a["fused_logit"], b["fused_logit"]) <= 1e-5


def test_batched_dropout_is_active_in_training_only() -> None:
    model = build_ensemble(FM, num_students=2, hidden_units=(64,), embedding_dim=4, net_dropout=0.5, form="batched",
                           embedding_init_std=0.05)
    ids, values, _ = batch()
    model.train()
    torch.manual_seed(0)
    first = model(ids, values)["logits"]
    second = model(ids, values)["logits"]
    assert max_abs(first, second) > 1e-4  # different dropout masks
    model.eval()
    assert torch.equal(model(ids, values)["logits"], model(ids, values)["logits"])


def test_no_hidden_layers_is_a_logistic_regression_in_both_forms() -> None:
    loop, batched = (build_ensemble(FM, num_students=2, hidden_units=(), embedding_dim=4, form=f, seed=1,
                                    embedding_init_std=0.05, fusion="concat") for f in ("loop", "batched"))
    ids, values, _ = batch()
    a, b = loop(ids, values), batched(ids, values)
    assert max_abs(a["logits"], b["logits"]) <= 1e-6 and max_abs(a["fused_logit"], b["fused_logit"]) <= 1e-6
    h = loop.embedding(ids, values)
    w, bias = loop.students[1].head.weight, loop.students[1].head.bias
    torch.testing.assert_close(a["logits"][:, 1], (h @ w.t() + bias).squeeze(-1))


@pytest.mark.parametrize("pooling", ["mean", "sum"])
def test_forms_agree_under_either_sequence_pooling(pooling: str) -> None:
    fm = FeatureMap("toy", [*FM.fields[:2], FieldInfo("genres", "sequence", 2, 3, 12, max_len=3, pooling=pooling),
                            FM.fields[3]])
    kw = dict(num_students=3, hidden_units=(16, 8), embedding_dim=4, net_dropout=0.0, batch_norm=True,
              fusion="mean", seed=5, embedding_init_std=0.05)
    loop, batched = build_ensemble(fm, form="loop", **kw), build_ensemble(fm, form="batched", **kw)
    ids, values, _ = batch(32, seed=1)
    a, b = loop.eval()(ids, values, return_hidden=True), batched.eval()(ids, values, return_hidden=True)
    assert max_abs(a["logits"], b["logits"]) <= 1e-5
    g = loop.embedding.tables["genres"].weight.detach()
    seq = ids[:, 2:5]
    mask = (seq != 0).float().unsqueeze(-1)  # (B, 3, 1)
    pooled = (g[seq] * mask).sum(1)
    if pooling == "mean":
        pooled = pooled / mask.sum(1).clamp(min=1)
    torch.testing.assert_close(a["input"][:, 8:12], pooled)  # the genres block of h, both forms
    torch.testing.assert_close(b["input"][:, 8:12], pooled)
