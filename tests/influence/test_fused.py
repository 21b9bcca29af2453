"""The fused pass (query groups + streaming top-k) against the old two-pass path built from the
engine's primitives: precondition_queries + score_training (total, layer, token for every pair) for
EK-FAC, and a second precondition/score pass with identity factors for the gradient dot product."""

from __future__ import annotations

import pytest
import torch
from conftest import lm_data, query_data, tiny_model

from llm_influence.influence import (
    FitConfig,
    ScoreConfig,
    build_factors,
    build_query_groups,
    fit_factors,
    make_batches,
    precondition_queries,
    score_groups,
    score_training,
)
from llm_influence.influence.topk import StreamingTopK

V, T, K = 48, 10, 3


@pytest.fixture(scope="module", params=["gpt_neox", "llama", "gpt2"])
def setup(request):
    model = tiny_model(request.param, vocab=V)
    fcfg = FitConfig(
        dtype="float64", factor_dtype="float64", device="cpu", batch_size=4, progress=False
    )
    return dict(
        model=model,
        factors=fit_factors(model, make_batches(lm_data(12, T, V, seed=1), 4), fcfg),
        train=make_batches(lm_data(14, T, V, seed=2), 4),
        queries=make_batches(query_data(5, T, V, seed=3), 2),
        fcfg=fcfg,
    )


def scfg(**kw):
    base = dict(dtype="float64", device="cpu", progress=False, rank=None, topk=K)
    base.update(kw)
    return ScoreConfig(**base)


def old_two_pass(s, cfg):
    """What the scoring stage did before: EK-FAC with per-token scores, then a gradient-dot pass."""
    model, factors = s["model"], s["factors"]
    q = precondition_queries(model, factors, s["queries"], cfg)
    ek = score_training(model, factors, q, s["train"], cfg)
    ident = build_factors(None, None, FitConfig(strategy="identity"), model=model)
    idq = precondition_queries(model, ident, s["queries"], cfg)
    gd = score_training(
        model, ident, idq, s["train"], ScoreConfig(**{**cfg.to_dict(), "per_token": False})
    )
    return ek, gd


@pytest.mark.parametrize("rank", [None, 3])
@pytest.mark.parametrize("contraction", ["auto", "dense_seq", "lowrank_seq"])
def test_fused_equals_old_two_pass(setup, rank, contraction):
    if rank is None and contraction == "lowrank_seq":
        pytest.skip("low-rank contraction needs compressed queries")
    cfg = scfg(rank=rank)
    ek, gd = old_two_pass(setup, cfg)
    model, factors = setup["model"], setup["factors"]
    groups = build_query_groups(model, factors, setup["queries"], cfg)
    out = score_groups(model, factors, groups, setup["train"], cfg, contraction=contraction)
    torch.testing.assert_close(out["ekfac"].total, ek.total.float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["ekfac"].layers, ek.layers.float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["graddot"].total, gd.total.float(), rtol=1e-5, atol=1e-6)
    assert out["graddot"].top is None  # tokens only for the first group by default
    top = out["ekfac"].top
    want = ek.total.topk(K, dim=1)
    assert torch.equal(top.index, want.indices)
    torch.testing.assert_close(top.total, want.values.float(), rtol=1e-5, atol=1e-6)
    for qi in range(ek.total.shape[0]):
        for j, col in enumerate(top.index[qi].tolist()):
            old = ek.tokens[qi, col]
            torch.testing.assert_close(
                top.tokens[qi, j, : old.shape[0]], old.float(), rtol=1e-5, atol=1e-6
            )
    # token scores sum to the total, layers to the total
    torch.testing.assert_close(top.tokens.sum(-1), top.total, rtol=1e-5, atol=1e-6)


def test_batching_does_not_change_the_top_k(setup):
    model, factors = setup["model"], setup["factors"]
    cfg = scfg(rank=3)
    groups = build_query_groups(model, factors, setup["queries"], cfg)
    data = lm_data(14, T, V, seed=2)
    a = score_groups(model, factors, groups, make_batches(data, 1), cfg)["ekfac"]
    b = score_groups(model, factors, groups, make_batches(data, 14), cfg)["ekfac"]
    assert torch.equal(a.top.index, b.top.index)
    torch.testing.assert_close(a.top.tokens, b.top.tokens, rtol=1e-5, atol=1e-6)
    assert a.meta["topk_entered"] >= b.meta["topk_entered"] == 5 * K


def test_rerank_full_replaces_top_k_with_full_rank(setup):
    model, factors = setup["model"], setup["factors"]
    cfg = scfg(rank=2, rerank_full=True)
    groups = build_query_groups(model, factors, setup["queries"], cfg)
    out = score_groups(model, factors, groups, setup["train"], cfg)["ekfac"]
    low = score_groups(model, factors, groups, setup["train"], scfg(rank=2))["ekfac"]
    full_groups = build_query_groups(model, factors, setup["queries"], scfg())
    full = score_groups(model, factors, full_groups, setup["train"], scfg())["ekfac"]
    is_top = torch.zeros_like(out.total, dtype=torch.bool)
    is_top.scatter_(1, low.top.index, True)
    assert torch.equal(out.top.index, low.top.index)  # chosen by the low-rank total
    torch.testing.assert_close(out.total[is_top], full.total[is_top], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.total[~is_top], low.total[~is_top], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.layers[is_top], full.layers[is_top], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.top.tokens.sum(-1), out.top.total, rtol=1e-5, atol=1e-6)


def test_candidates_restrict_the_top_k_only(setup):
    model, factors = setup["model"], setup["factors"]
    cfg = scfg(rank=3)
    groups = build_query_groups(model, factors, setup["queries"], cfg)
    g = torch.Generator().manual_seed(0)
    cand = torch.rand(5, 14, generator=g) < 0.4
    cand[0] = False
    cand[0, :2] = True  # fewer candidates than k: an empty slot
    plain = score_groups(model, factors, groups, setup["train"], cfg)["ekfac"]
    out = score_groups(model, factors, groups, setup["train"], cfg, candidates=cand)["ekfac"]
    torch.testing.assert_close(out.total, plain.total)
    for qi in range(5):
        allowed = cand[qi].nonzero().flatten()
        k = min(K, len(allowed))
        best = allowed[plain.total[qi, allowed].topk(k).indices]
        assert out.top.index[qi, :k].tolist() == best.tolist()
        assert (out.top.index[qi, k:] == -1).all()
        assert torch.isnan(out.top.total[qi, k:]).all()


def test_extra_group_is_one_entry(setup):
    """A new estimator is one more builder; it gets its own totals and layers from the same pass."""
    model, factors = setup["model"], setup["factors"]
    cfg = scfg(rank=3)
    builders = {
        "ekfac": lambda x: {m: x.factors.ihvp(m, g) for m, g in x.gradients.items()},
        "graddot": lambda x: dict(x.gradients),
        "twice": lambda x: {m: 2 * g for m, g in x.gradients.items()},
    }
    groups = build_query_groups(model, factors, setup["queries"], cfg, builders)
    out = score_groups(model, factors, groups, setup["train"], cfg, token_groups=["ekfac", "twice"])
    torch.testing.assert_close(out["twice"].total, 2 * out["graddot"].total, rtol=1e-5, atol=1e-6)
    assert out["twice"].layers.shape == out["ekfac"].layers.shape
    assert out["twice"].top is not None


def test_streaming_top_k_matches_sort():
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(4, 50, generator=g, dtype=torch.float64).float()
    top = StreamingTopK(4, 5, 1)
    for s in range(0, 50, 7):
        qs, slots, bs = top.update(scores[:, s : s + 7], s)
        top.fill(qs, slots, scores[qs, s + bs][:, None], scores[qs, s + bs][:, None])
    res = top.result()
    want = scores.topk(5, dim=1)
    assert torch.equal(res.index, want.indices)
    torch.testing.assert_close(res.total, want.values)


class TestBadInput:
    def test_unknown_token_group(self, setup):
        model, factors = setup["model"], setup["factors"]
        groups = build_query_groups(model, factors, setup["queries"], scfg(rank=3))
        with pytest.raises(ValueError, match="token group 'nope'"):
            score_groups(model, factors, groups, setup["train"], scfg(), token_groups=["nope"])

    def test_rerank_needs_full_rank_rows(self, setup):
        model, factors = setup["model"], setup["factors"]
        groups = build_query_groups(model, factors, setup["queries"], scfg(rank=3))
        with pytest.raises(ValueError, match="rerank_full needs the full-rank"):
            score_groups(model, factors, groups, setup["train"], scfg(rank=3, rerank_full=True))

    def test_candidate_mask_shape(self, setup):
        model, factors = setup["model"], setup["factors"]
        groups = build_query_groups(model, factors, setup["queries"], scfg(rank=3))
        with pytest.raises(ValueError, match="candidates must be"):
            score_groups(
                model, factors, groups, setup["train"], scfg(), candidates=torch.ones(2, 14) > 0
            )
        with pytest.raises(ValueError, match="candidates cover 10"):
            score_groups(
                model, factors, groups, setup["train"], scfg(), candidates=torch.ones(5, 10) > 0
            )

    def test_group_with_wrong_shape(self, setup):
        model, factors = setup["model"], setup["factors"]
        bad = {"x": lambda x: {m: g[:, :1] for m, g in x.gradients.items()}}
        with pytest.raises(ValueError, match="query group 'x', module"):
            build_query_groups(model, factors, setup["queries"], scfg(rank=3), bad)


def test_preallocated_tables_equal_the_concatenated_ones(setup):
    """Given the sequence count, the tables are filled in place (flat memory): same numbers;
    a wrong count is an error, not a silently truncated or padded table."""
    cfg = scfg(rank=3)
    model, factors = setup["model"], setup["factors"]
    groups = build_query_groups(model, factors, setup["queries"], cfg)
    n = sum(int(b["input_ids"].shape[0]) for b in setup["train"])
    cat = score_groups(model, factors, groups, setup["train"], cfg)
    pre = score_groups(model, factors, groups, setup["train"], cfg, n_sequences=n)
    for name in groups:
        assert torch.equal(cat[name].total, pre[name].total)
        assert torch.equal(cat[name].layers, pre[name].layers)
    for wrong, msg in ((n + 1, "held"), (n - 1, "more than")):
        with pytest.raises(ValueError, match=msg):
            score_groups(model, factors, groups, setup["train"], cfg, n_sequences=wrong)
