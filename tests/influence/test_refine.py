"""EK-FAC-preconditioned CG refinement (influence/refine.py) against dense references.

References (independent of the engine's hooks, gradients from autograd on the parameters):
  gnh      G = Rᵀ R / N with R the rows √p_v (e_v − p_t)ᵀ J_t of ``reference.gnh_rows``;
  sampled  G = Σ_draws Dᵀ D / (N · draws), D the explicit per-sequence sampled-label gradients
           (``reference.per_example_gradients(targets=seed)``);
  PCG      ``reference.dense_pcg`` (textbook, one right-hand side at a time) on A = G + diag(λ) with
           M⁻¹ the dense block-diagonal EK-FAC inverse (``reference.dense_preconditioner``).
"""

from __future__ import annotations

import pytest
import torch
from conftest import lm_data, query_data, tiny_model

from llm_influence.influence import (
    FitConfig,
    ScoreConfig,
    fit_factors,
    make_batches,
    score_training,
)
from llm_influence.influence.errors import NonFiniteGradientError, RefinementError
from llm_influence.influence.pcg import pcg
from llm_influence.influence.products import (
    damped_operator,
    product_sums,
    sampled_gradients,
)
from llm_influence.influence.reference import (
    dense_pcg,
    dense_preconditioner,
    gnh_rows,
    module_slices,
    per_example_gradients,
)
from llm_influence.influence.refine import RefineConfig, query_gradients, refine_queries

V = 24


def _setup(arch: str, seed: int = 0):
    model = tiny_model(arch, hidden=8, ff=16, vocab=V, seed=seed)
    fit = make_batches(lm_data(6, 7, V, seed=3), 3)
    train = make_batches(lm_data(5, 7, V, seed=4), 5)
    queries = make_batches(query_data(3, 7, V, seed=5, prompt=3), 3)
    fcfg = FitConfig(
        dtype="float64", factor_dtype="float64", device="cpu", batch_size=3, progress=False
    )
    factors = fit_factors(model, fit, fcfg)
    return model, factors, fit, train, queries


def _flat(factors, vecs) -> torch.Tensor:
    return torch.cat([vecs[m].reshape(vecs[m].shape[0], -1) for m in factors.modules], 1)


def _unflat(factors, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    out, s = {}, 0
    for info in factors.infos:
        n = info.d_out * info.d_in_h
        out[info.name] = flat[:, s : s + n].reshape(-1, info.d_out, info.d_in_h)
        s += n
    return out


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _rcfg(**kw) -> RefineConfig:
    return RefineConfig(
        **{"dtype": "float64", "device": "cpu", "batch_size": 2, "progress": False, **kw}
    )


def _scfg(**kw) -> ScoreConfig:
    return ScoreConfig(
        **{
            "dtype": "float64",
            "device": "cpu",
            "batch_size": 4,
            "progress": False,
            "rank": None,
            **kw,
        }
    )


@pytest.mark.parametrize("arch", ["gpt_neox", "llama", "gpt2"])
def test_gnh_product_equals_dense_gnh(arch):
    model, factors, fit, _, _ = _setup(arch)
    g = torch.Generator().manual_seed(0)
    P = sum(i.d_out * i.d_in_h for i in factors.infos)
    v = torch.randn(5, P, generator=g, dtype=torch.float64)
    got = product_sums(
        model, factors, fit, _unflat(factors, v), _rcfg(products="gnh", query_chunk=2)
    )
    R, n = gnh_rows(model, factors.modules, fit)
    assert got.n_sequences == n == 6
    want = (R.T @ (R @ v.T) / n).T
    assert _rel(_flat(factors, got.mean()), want) <= 1e-6


@pytest.mark.parametrize("arch", ["gpt_neox", "llama"])
def test_sampled_product_equals_dense_sampled_fisher(arch):
    model, factors, fit, _, _ = _setup(arch)
    g = torch.Generator().manual_seed(1)
    P = sum(i.d_out * i.d_in_h for i in factors.infos)
    v = torch.randn(4, P, generator=g, dtype=torch.float64)
    got = product_sums(model, factors, fit, _unflat(factors, v), _rcfg(label_samples=2, seed=5))
    D = torch.cat([per_example_gradients(model, factors.modules, fit, targets=s) for s in (5, 6)])
    assert got.n_sequences == D.shape[0] == 12
    want = (D.T @ (D @ v.T) / D.shape[0]).T
    assert _rel(_flat(factors, got.mean()), want) <= 1e-6
    # shards of the fit set merge exactly into the whole product
    halves = [product_sums(model, factors, part, _unflat(factors, v), _rcfg(label_samples=2, seed=5))
              for part in (fit[:1], fit[1:])]  # fmt: skip
    merged = halves[0].merge(halves[1])
    assert merged.n_sequences == 12
    assert _rel(_flat(factors, merged.mean()), want) <= 1e-10


def test_cached_sampled_gradients_give_the_streamed_products():
    """The per-sequence gradients kept after the first CG step give the products a pass would."""
    model, factors, fit, _, queries = _setup("llama")
    g = torch.Generator().manual_seed(2)
    P = sum(i.d_out * i.d_in_h for i in factors.infos)
    v = _unflat(factors, torch.randn(3, P, generator=g, dtype=torch.float64))
    cfg = _rcfg(label_samples=2, seed=5)
    streamed = product_sums(model, factors, fit, v, cfg)
    cached = sampled_gradients(model, factors, fit, cfg)
    assert cached.n_sequences == streamed.n_sequences == 12
    got = cached.product_sums(v)
    assert _rel(_flat(factors, got.mean()), _flat(factors, streamed.mean())) <= 1e-10
    # the operator takes the cached route by default and the streamed one when it does not fit
    on = damped_operator(model, factors, fit, cfg)(v)
    off = damped_operator(model, factors, fit, _rcfg(label_samples=2, seed=5, cache_bytes=0))(v)
    assert _rel(_flat(factors, on), _flat(factors, off)) <= 1e-10


@pytest.mark.parametrize("products", ["gnh", "sampled"])
def test_pcg_steps_equal_dense_pcg_and_scores_follow(products):
    model, factors, fit, train, queries = _setup("gpt_neox")
    modules = factors.modules
    if products == "gnh":
        R, n = gnh_rows(model, modules, fit)
        G = R.T @ R / n
    else:
        D = per_example_gradients(model, modules, fit, targets=0)
        G = D.T @ D / D.shape[0]
    damp = torch.cat([torch.full((sl.stop - sl.start,), factors.damping[m]) for m, sl in
                      zip(modules, module_slices(model, modules))]).double()  # fmt: skip
    A = G + torch.diag(damp)
    Minv = dense_preconditioner(factors, modules)
    Gq = per_example_gradients(model, modules, queries)  # [Q, P]
    Gt = per_example_gradients(model, modules, train)
    exact = torch.linalg.solve(A, Gq.T)
    energy = []
    for steps in (1, 2, 4):
        ref = refine_queries(
            model, factors, queries, fit, _rcfg(steps=steps, products=products), _scfg()
        )
        want = dense_pcg(A, Minv, Gq.T, steps).T
        got = _flat(factors, ref.queries.dense)
        assert _rel(got, want) <= 1e-6, steps
        # recurrence residuals are the true relative residuals ‖A x_k − b‖ / ‖b‖
        true_res = (A @ want.T - Gq.T).norm(dim=0) / Gq.norm(dim=1)
        assert torch.allclose(ref.residuals[-1], true_res, rtol=1e-6, atol=1e-9)
        assert ref.residuals.shape == (steps + 1, 3) and torch.all(ref.residuals[0] == 1)
        err = want.T - exact
        energy.append(
            float(((err * (A @ err)).sum(0) / (exact * (A @ exact)).sum(0)).sqrt().mean())
        )
        scores = score_training(model, factors, ref.queries, train, _scfg(per_token=False)).total
        assert _rel(scores, want @ Gt.T) <= 1e-6
    # one run keeps the iterates of earlier steps: the same as separate runs
    run = refine_queries(
        model, factors, queries, fit, _rcfg(steps=4, products=products), _scfg(), also_steps=[1, 2]
    )
    assert sorted(run.at) == [1, 2, 4]
    for k in (1, 2):
        assert _rel(_flat(factors, run.at[k].dense), dense_pcg(A, Minv, Gq.T, k).T) <= 1e-6
    # CG's guarantee: the error in the (G+λ)-norm falls with every step
    assert energy[0] > energy[1] > energy[2]
    # one step is the EK-FAC solution times the optimal per-query step: same direction
    one = _flat(
        factors,
        refine_queries(
            model, factors, queries, fit, _rcfg(steps=1, products=products), _scfg()
        ).queries.dense,
    )
    ekfac = (Minv @ Gq.T).T
    cos = (one * ekfac).sum(1) / (one.norm(dim=1) * ekfac.norm(dim=1))
    assert torch.allclose(cos, torch.ones(3, dtype=torch.float64), atol=1e-10)
    # rank-r compression applies to the refined gradients; metrics report the residual per step
    r2 = refine_queries(
        model, factors, queries, fit, _rcfg(steps=2, products=products), _scfg(rank=2)
    )
    assert r2.queries.low_rank and r2.queries.u[modules[0]].shape[-1] == 2
    assert r2.queries.strategy == "ekfac_pcg2"
    m = r2.metrics()
    assert (
        m["steps"] == 2
        and len(m["residual_mean"]) == 3
        and m["preconditioned_residual_mean"][0] == 1.0
    )


def test_bad_refine_settings_raise():
    for kw, msg in (({"steps": -1}, "steps must be >= 0"), ({"steps": 1.5}, "steps must be an integer"),
                    ({"steps": True}, "steps must be an integer"), ({"products": "exact"}, "products must be"),
                    ({"label_samples": 0}, "label_samples must be >= 1")):  # fmt: skip
        with pytest.raises(ValueError, match=msg):
            RefineConfig(**kw)


def test_breakdown_and_nonfinite_products_raise():
    model, factors, fit, _, queries = _setup("gpt_neox")
    b = query_gradients(model, factors, queries, _scfg())
    ident = lambda v: v  # noqa: E731

    def negative_on_query_1(v):
        out = {m: x.clone() for m, x in v.items()}
        for m in out:
            out[m][1] *= -1
        return out

    with pytest.raises(RefinementError, match="step 1 for query 1"):
        pcg(negative_on_query_1, ident, b, 2)
    # a damping that makes G + λ indefinite is caught at the step it shows up, not silently used
    bad = factors.to("cpu", torch.float64)
    bad.damping = {m: -1e3 for m in bad.modules}
    with pytest.raises(RefinementError, match="not positive definite"):
        pcg(damped_operator(model, bad, fit, _rcfg(products="sampled")), ident, b, 1)
    nan_model, nan_factors = model, factors
    with torch.no_grad():
        nan_model.gpt_neox.layers[1].mlp.dense_4h_to_h.weight[0, 0] = float("nan")
    nan_factors.fingerprint = __import__(
        "llm_influence.influence", fromlist=["x"]
    ).model_fingerprint(nan_model, nan_factors.modules)
    with pytest.raises(NonFiniteGradientError):
        product_sums(nan_model, nan_factors, fit, b, _rcfg())
