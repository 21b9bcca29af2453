"""Engine vs independent references (explicit autograd gradients, dense matrices), float64 tiny models."""

from __future__ import annotations

import pytest
import torch
from conftest import lm_data, query_data, tiny_model

from llm_influence.influence import (
    CorrectionStats,
    CovarianceStats,
    EmptyCompletionError,
    FactorMismatchError,
    Factors,
    FitConfig,
    ModuleMatchError,
    NonFiniteGradientError,
    ScoreConfig,
    SequenceTooLongError,
    build_factors,
    compute_eigenbasis,
    find_tracked_modules,
    fit_covariance,
    fit_eigen_correction,
    fit_factors,
    make_batches,
    precondition_queries,
    sample_targets,
    score_training,
    self_influence,
)
from llm_influence.influence.labels import summed_loss
from llm_influence.influence.reference import module_slices, per_example_gradients

V, T = 48, 10


@pytest.fixture(scope="module", params=["gpt_neox", "llama", "gpt2"])
def setup(request):
    model = tiny_model(request.param, vocab=V)
    fit = make_batches(lm_data(12, T, V, seed=1), 4)
    train = make_batches(lm_data(10, T, V, seed=2), 4)
    queries = make_batches(query_data(3, T, V, seed=3), 2)
    cfg = FitConfig(
        dtype="float64", factor_dtype="float64", device="cpu", batch_size=4, progress=False
    )
    cov = fit_covariance(model, fit, cfg)
    eig = compute_eigenbasis(cov)
    corr = fit_eigen_correction(model, fit, eig, cfg)
    factors = build_factors(eig, corr, cfg)
    return dict(
        arch=request.param,
        model=model,
        fit=fit,
        train=train,
        queries=queries,
        cfg=cfg,
        cov=cov,
        eig=eig,
        corr=corr,
        factors=factors,
    )


def scfg(**kw):
    base = dict(dtype="float64", device="cpu", progress=False, rank=None)
    base.update(kw)
    return ScoreConfig(**base)


def rel(a, b):
    return float((a - b).norm() / b.norm())


class TestCovariance:
    """A = Σ_tokens ā āᵀ (ā = [a, 1] if bias, masked), S = Σ_tokens g gᵀ with g = ∂L_sampled/∂s."""

    def test_explicit_sums(self, setup):
        model, fit, cov = setup["model"], setup["fit"], setup["cov"]
        named = dict(model.named_modules())
        mods = cov.modules
        store: dict[str, tuple] = {}

        def keep(m):
            def hook(mod, args, out):
                out.retain_grad()
                store[m] = (args[0], out)

            return hook

        hooks = [named[m].register_forward_hook(keep(m)) for m in mods]
        A = {m: 0 for m in mods}
        S = {m: 0 for m in mods}
        ntok = 0
        for b in fit:
            model.zero_grad()
            out = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
            loss = summed_loss(out, sample_targets(out, b, setup["cfg"].seed))
            loss.backward()
            msk = b["attention_mask"].unsqueeze(-1).double()
            for m in mods:
                a, o = store[m]
                a = a.detach()
                if cov.infos[mods.index(m)].bias:
                    a = torch.cat([a, torch.ones_like(a[..., :1])], -1)
                a = (a * msk).flatten(0, 1)
                g = (o.grad * msk).flatten(0, 1)
                A[m] = A[m] + a.T @ a
                S[m] = S[m] + g.T @ g
            ntok += int(b["attention_mask"].sum())
        for h in hooks:
            h.remove()
        for p in model.parameters():
            p.grad = None
        assert cov.n_tokens == ntok and cov.n_sequences == 12
        for m in mods:
            assert rel(cov.a_sum[m], A[m]) < 1e-10
            assert rel(cov.s_sum[m], S[m]) < 1e-10


def dense_preconditioner(setup):
    """Dense reference of the same approximation: Q = Q_S ⊗ Q_A from eigh(A), eigh(S); Λ from explicit
    per-sequence (sampled-label) autograd gradients; K = Q diag(Λ+λ) Qᵀ inverted densely, per module."""
    model, cov = setup["model"], setup["cov"]
    mods = cov.modules
    per_seq = per_example_gradients(model, mods, setup["fit"], targets=setup["cfg"].seed)  # [N, P]
    blocks = []
    for m, sl, _info in zip(mods, module_slices(model, mods), cov.infos):
        A, S = cov.covariances(m)
        _, qa = torch.linalg.eigh(A)
        _, qs = torch.linalg.eigh(S)
        Qk = torch.kron(qs, qa)  # acts on row-major vec of [O, I]
        lam = ((per_seq[:, sl] @ Qk) ** 2).mean(0)
        damp = 0.1 * lam.mean()
        K = Qk @ torch.diag(lam + damp) @ Qk.T
        blocks.append((sl, torch.linalg.inv(K)))
    return blocks


def test_ihvp_matches_dense_reference(setup):
    model, factors = setup["model"], setup["factors"]
    q = precondition_queries(model, factors, setup["queries"], scfg())
    gq = per_example_gradients(model, factors.modules, setup["queries"])  # [Q, P]
    for (sl, Kinv), m in zip(dense_preconditioner(setup), factors.modules):
        ref = gq[:, sl] @ Kinv
        assert rel(q.dense[m].reshape(q.n_queries, -1), ref) <= 1e-5, m


@pytest.mark.parametrize(
    "contraction", ["dense_token", "dense_seq", "lowrank_token", "lowrank_seq", "auto"]
)
def test_scores_match_explicit_gradient_products(setup, contraction):
    model, factors = setup["model"], setup["factors"]
    rank = None if contraction.startswith("dense") else 10_000  # low rank with r = full dims
    per_token = contraction.endswith("token") or contraction == "auto"
    cfg = scfg(rank=rank, per_token=per_token)
    q = precondition_queries(model, factors, setup["queries"], cfg)
    s = score_training(model, factors, q, setup["train"], cfg, contraction=contraction)
    P = torch.cat([q.matrix(m).reshape(q.n_queries, -1) for m in factors.modules], 1)
    gt = per_example_gradients(model, factors.modules, setup["train"])
    ref = P @ gt.T
    assert rel(s.total.double(), ref) < 1e-5
    # full rank (dense) gives the same numbers
    full = score_training(
        model,
        factors,
        precondition_queries(model, factors, setup["queries"], scfg()),
        setup["train"],
        scfg(per_token=False),
    )
    assert rel(s.total.double(), full.total.double()) < 1e-5


def test_low_rank_approximation_close(setup):
    model, factors = setup["model"], setup["factors"]
    full = score_training(
        model,
        factors,
        precondition_queries(model, factors, setup["queries"], scfg()),
        setup["train"],
        scfg(),
    )
    q4 = precondition_queries(model, factors, setup["queries"], scfg(rank=4))
    s4 = score_training(model, factors, q4, setup["train"], scfg(rank=4))
    gt = per_example_gradients(model, factors.modules, setup["train"])
    P = torch.cat([q4.matrix(m).reshape(q4.n_queries, -1) for m in factors.modules], 1)
    assert rel(s4.total.double(), P @ gt.T) < 1e-5  # exact for its own rank-4 approximation
    c = torch.corrcoef(torch.stack([s4.total.flatten(), full.total.flatten()]))[0, 1]
    assert c > 0.8
    # re-ranking the top-k with full rank restores those entries exactly
    cfg = scfg(rank=4, rerank_topk=3)
    qr = precondition_queries(model, factors, setup["queries"], cfg)
    sr = score_training(model, factors, qr, setup["train"], cfg)
    top = s4.total.topk(3, dim=1)  # the entries chosen by the low-rank pass
    for qi in range(sr.total.shape[0]):
        assert torch.allclose(
            sr.total[qi, top.indices[qi]], full.total[qi, top.indices[qi]], rtol=1e-5
        )


def test_layer_and_token_sums(setup):
    model, factors = setup["model"], setup["factors"]
    for rank in (None, 3):
        cfg = scfg(rank=rank)
        s = score_training(
            model,
            factors,
            precondition_queries(model, factors, setup["queries"], cfg),
            setup["train"],
            cfg,
        )
        scale = s.total.abs().max()
        assert s.layers.shape == (3, 10, len(factors.modules)) and s.tokens.shape == (3, 10, T)
        assert (s.layers.sum(-1) - s.total).abs().max() <= 1e-5 * scale
        assert (s.tokens.sum(-1) - s.total).abs().max() <= 1e-5 * scale
        # padding positions carry no score
        mask = torch.cat([b["attention_mask"] for b in setup["train"]])
        assert s.tokens[:, mask == 0].abs().max() == 0


def test_shard_merge_equals_single_pass(setup):
    model, fit, cfg = setup["model"], setup["fit"], setup["cfg"]
    c1 = fit_covariance(model, fit[:1], cfg).merge(fit_covariance(model, fit[1:], cfg))
    for m in c1.modules:
        assert torch.allclose(c1.a_sum[m], setup["cov"].a_sum[m], rtol=1e-12, atol=1e-12)
        assert torch.allclose(c1.s_sum[m], setup["cov"].s_sum[m], rtol=1e-12, atol=1e-12)
    assert (c1.n_tokens, c1.n_sequences) == (setup["cov"].n_tokens, setup["cov"].n_sequences)
    # different batching too: labels are sampled per sequence, not per batch
    rebatched = make_batches({k: torch.cat([b[k] for b in fit]) for k in fit[0]}, 5)
    r1 = fit_eigen_correction(model, rebatched[:2], setup["eig"], cfg).merge(
        fit_eigen_correction(model, rebatched[2:], setup["eig"], cfg)
    )
    for m in r1.modules:
        assert torch.allclose(r1.lam_sum[m], setup["corr"].lam_sum[m], rtol=1e-10)
    f1 = build_factors(setup["eig"], r1, cfg)
    assert f1.damping == pytest.approx(setup["factors"].damping, rel=1e-10)


def test_self_influence_is_diagonal_of_pairwise(setup):
    model, factors, train = setup["model"], setup["factors"], setup["train"]
    q = precondition_queries(model, factors, train, scfg(per_token=False))
    pair = score_training(model, factors, q, train, scfg(per_token=False))
    si = self_influence(model, factors, train, scfg())
    assert torch.allclose(si, pair.total.diagonal(), rtol=1e-5)
    assert (si > 0).all()


def test_padding_and_prompt_masking(setup):
    model, factors = setup["model"], setup["factors"]
    cfg = scfg()
    q = precondition_queries(model, factors, setup["queries"], cfg)
    # extra right padding with arbitrary pad ids changes nothing
    data = lm_data(4, T, V, seed=9, pad_last=False)
    padded = {
        k: torch.cat([v, torch.full((4, 5), 0 if k != "input_ids" else 7)], 1)
        for k, v in data.items()
    }
    padded["labels"][:, T:] = -100
    a = score_training(model, factors, q, make_batches(data, 4), cfg)
    b = score_training(model, factors, q, make_batches(padded, 4), cfg)
    assert torch.allclose(a.total, b.total, rtol=1e-6)
    assert b.tokens[:, :, T:].abs().max() == 0
    # masked prompt labels: the label values there do not matter; padded query tokens do not matter
    qd = query_data(3, T, V, seed=3)
    qd2 = {k: v.clone() for k, v in qd.items()}
    pad = qd2["attention_mask"] == 0
    qd2["input_ids"][pad] = 5
    q2 = precondition_queries(model, factors, make_batches(qd2, 2), cfg)
    for m in factors.modules:
        assert torch.allclose(q.dense[m], q2.dense[m], rtol=1e-8, atol=1e-12)


def test_save_load_roundtrip_and_fingerprint(setup, tmp_path):
    model, factors = setup["model"], setup["factors"]
    factors.save(tmp_path / "f.safetensors")
    setup["cov"].save(tmp_path / "c.safetensors")
    setup["corr"].save(tmp_path / "r.safetensors")
    setup["eig"].save(tmp_path / "e.safetensors")
    f2 = Factors.load(tmp_path / "f.safetensors", model=model)
    assert f2.damping == factors.damping and f2.fingerprint == factors.fingerprint
    c2 = CovarianceStats.load(tmp_path / "c.safetensors")
    r2 = CorrectionStats.load(tmp_path / "r.safetensors")
    from llm_influence.influence import Eigenbasis

    e2 = Eigenbasis.load(tmp_path / "e.safetensors")
    f3 = build_factors(compute_eigenbasis(c2), r2, setup["cfg"])
    assert f3.damping == pytest.approx(factors.damping, rel=1e-12)
    assert e2.modules == factors.modules
    other = tiny_model(setup["arch"], vocab=V, seed=5)
    with pytest.raises(FactorMismatchError, match="fingerprint"):
        Factors.load(tmp_path / "f.safetensors", model=other)
    with pytest.raises(FactorMismatchError):
        precondition_queries(other, factors, setup["queries"], scfg())


def test_kfac_and_identity(setup):
    model, fit = setup["model"], setup["fit"]
    kf = build_factors(
        setup["eig"], None, FitConfig(strategy="kfac", factor_dtype="float64", progress=False)
    )
    m = kf.modules[0]
    A, S = setup["cov"].covariances(m)
    dense = torch.kron(S, A)  # row-major vec of [O, I]
    v = torch.randn(A.shape[0] * S.shape[0], dtype=torch.float64)
    ref = torch.linalg.solve(dense + kf.damping[m] * torch.eye(len(v), dtype=torch.float64), v)
    got = kf.ihvp(m, v.view(S.shape[0], A.shape[0])).reshape(-1)
    assert rel(got, ref) < 1e-6
    ident = fit_factors(model, fit, FitConfig(strategy="identity", device="cpu", progress=False))
    s = score_training(
        model,
        ident,
        precondition_queries(model, ident, setup["queries"], scfg()),
        setup["train"],
        scfg(),
    )
    gq = per_example_gradients(model, ident.modules, setup["queries"])
    gt = per_example_gradients(model, ident.modules, setup["train"])
    assert rel(s.total.double(), gq @ gt.T) < 1e-5


class TestBadInput:
    def test_unknown_pattern(self):
        model = tiny_model("gpt_neox", vocab=V)
        with pytest.raises(ModuleMatchError, match="nonexistent"):
            find_tracked_modules(model, [r"\.mlp\.dense_h_to_4h$", "nonexistent"])

    def test_no_matching_layers(self):
        model = torch.nn.Sequential(torch.nn.Embedding(4, 4), torch.nn.Tanh())
        with pytest.raises(ModuleMatchError, match="no trackable"):
            find_tracked_modules(model)

    def test_empty_completion(self, setup):
        qd = query_data(2, T, V)
        qd["labels"][1] = -100
        with pytest.raises(EmptyCompletionError, match=r"\[1\]"):
            precondition_queries(setup["model"], setup["factors"], make_batches(qd, 2), scfg())

    def test_too_long(self, setup):
        d = lm_data(2, 40, V)  # context is 32
        with pytest.raises(SequenceTooLongError, match="40"):
            fit_covariance(setup["model"], make_batches(d, 2), setup["cfg"])

    def test_non_finite_names_layer_and_batch(self):
        model = tiny_model("llama", vocab=V)
        name = find_tracked_modules(model)[3]
        with torch.no_grad():
            dict(model.named_modules())[name].weight[0, 0] = float("nan")
        cfg = FitConfig(dtype="float64", device="cpu", progress=False)
        with pytest.raises(NonFiniteGradientError, match=rf"{name}.*batch 0"):
            fit_covariance(model, make_batches(lm_data(2, T, V), 2), cfg)

    def test_config_ranges(self):
        with pytest.raises(ValueError, match="strategy"):
            FitConfig(strategy="diag")
        with pytest.raises(ValueError, match="damping"):
            FitConfig(damping=-1.0)
        with pytest.raises(ValueError, match="rank"):
            ScoreConfig(rank=0)
