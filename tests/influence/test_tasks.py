"""The engine with the regression (MSE) and classification (cross-entropy) tasks on a tiny MLP,
against brute force written out here (independent of influence/tasks.py and of the engine's hooks):

  per-example gradients and Jacobians J_n [k, P] by autograd on the parameters, one output at a
  time, in the engine's layout (per Linear [d_out, d_in + 1] row-major, bias last);
  activations a_n and output gradients g_n of every Linear from a hand-written forward pass;
  the exact GNH G = (1/N) Σ_n J_nᵀ H_n J_n with H = I (MSE) or diag(p) − ppᵀ (CE);
  the sampled targets re-drawn from the documented rule (seed, crc32 of the example's id/inputs):
  y ~ N(f, I) for regression, the inverse-CDF class of softmax(f) for classification.
"""

from __future__ import annotations

import zlib
from dataclasses import replace

import pytest
import torch
from torch import nn

from llm_influence.influence import (
    ClassificationTask,
    FitConfig,
    RefineConfig,
    RegressionTask,
    ScoreConfig,
    fit_covariance,
    fit_factors,
    precondition_queries,
    refine_queries,
    score_training,
)
from llm_influence.influence.comparison import estimator_scores
from llm_influence.influence.products import product_sums
from llm_influence.influence.reference import dense_preconditioner

N, Q, D_IN, K = 12, 3, 3, 2
MODULES = ["0", "2", "4"]
PATTERNS = [r"^0$", r"^2$", r"^4$"]
SEED = 7


def _mlp(k: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(D_IN, 5), nn.Tanh(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, k)
    ).double()


def _seed(seed: int, data: bytes) -> int:
    return (seed * 1_000_003 + zlib.crc32(data)) % (2**62)


class Case:
    """One task with its brute-force loss, Hessian and sampled targets."""

    def __init__(self, kind: str):
        g = torch.Generator().manual_seed(1)
        x = torch.randn(N + Q, D_IN, generator=g, dtype=torch.float64)
        self.kind = kind
        if kind == "regression":
            self.task, self.k = RegressionTask(), K
            y = torch.randn(N + Q, K, generator=g, dtype=torch.float64)
            batch = lambda s: {"inputs": x[s], "targets": y[s]}  # noqa: E731
        else:
            self.task, self.k = ClassificationTask(), 3
            y = torch.randint(0, 3, (N + Q,), generator=g)
            ids = torch.arange(N + Q) + 100
            batch = lambda s: {"inputs": x[s], "labels": y[s], "ids": ids[s]}  # noqa: E731
            self.ids = ids
        self.model = _mlp(self.k)
        self.x, self.y = x, y
        self.train = [batch(slice(0, 5)), batch(slice(5, N))]
        self.queries = [batch(slice(N, N + Q))]

    # -- brute force ----------------------------------------------------------------------------
    def loss(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "regression":
            return 0.5 * ((f - y) ** 2).sum()
        return -torch.log_softmax(f, -1)[y]

    def hessian(self, f: torch.Tensor) -> torch.Tensor:
        if self.kind == "regression":
            return torch.eye(self.k, dtype=f.dtype)
        p = torch.softmax(f, -1)
        return torch.diag(p) - torch.outer(p, p)

    def sampled(self, n: int, f: torch.Tensor, seed: int) -> torch.Tensor:
        if self.kind == "regression":
            gen = torch.Generator().manual_seed(_seed(seed, self.x[n].numpy().tobytes()))
            return f.detach() + torch.randn(self.k, generator=gen, dtype=torch.float64)
        gen = torch.Generator().manual_seed(_seed(seed, self.ids[n : n + 1].numpy().tobytes()))
        u = torch.rand(1, generator=gen, dtype=torch.float64)[0]
        return (torch.softmax(f.detach(), -1).cumsum(-1) > u).nonzero()[0, 0]

    def params(self):
        return [p for m in MODULES for p in (self.model.get_submodule(m).weight,
                                              self.model.get_submodule(m).bias)]  # fmt: skip

    def flat(self, grads) -> torch.Tensor:
        return torch.cat(
            [torch.cat([w, b[:, None]], 1).flatten() for w, b in zip(grads[::2], grads[1::2])]
        )

    def grad(self, n: int, seed: int | None = None) -> torch.Tensor:
        f = self.model(self.x[n])
        y = self.y[n] if seed is None else self.sampled(n, f, seed)
        return self.flat(torch.autograd.grad(self.loss(f, y), self.params()))

    def jacobian(self, n: int) -> torch.Tensor:
        rows = []
        for j in range(self.k):
            f = self.model(self.x[n])
            rows.append(self.flat(torch.autograd.grad(f[j], self.params())))
        return torch.stack(rows)  # [k, P]

    def gnh(self) -> torch.Tensor:
        G = 0
        for n in range(N):
            J = self.jacobian(n)
            G = G + J.T @ self.hessian(self.model(self.x[n]).detach()) @ J
        return G / N

    def layer_io(self, seed: int | None):
        """Per module (a_n with the bias 1, g_n = ∂loss_n/∂s_n) for every training example."""
        out = {m: ([], []) for m in MODULES}
        for n in range(N):
            h, pre = self.x[n], []
            for i, m in enumerate(MODULES):
                lin = self.model.get_submodule(m)
                s = lin.weight @ h + lin.bias
                pre.append((torch.cat([h.detach(), torch.ones(1, dtype=h.dtype)]), s))
                h = torch.tanh(s) if i < len(MODULES) - 1 else s
            y = self.y[n] if seed is None else self.sampled(n, h, seed)
            gs = torch.autograd.grad(self.loss(h, y), [s for _, s in pre])
            for m, (a, _), gm in zip(MODULES, pre, gs):
                out[m][0].append(a)
                out[m][1].append(gm)
        return {m: (torch.stack(a), torch.stack(g)) for m, (a, g) in out.items()}


@pytest.fixture(scope="module", params=["regression", "classification"])
def case(request) -> Case:
    return Case(request.param)


def _fit_cfg(**kw) -> FitConfig:
    return FitConfig(dtype="float64", factor_dtype="float64", device="cpu", progress=False,
                     module_patterns=PATTERNS, seed=SEED, **kw)  # fmt: skip


SC = ScoreConfig(rank=None, dtype="float64", device="cpu", per_token=False, progress=False)


@pytest.mark.parametrize("sample_labels", [False, True])
def test_covariances_match_brute_force(case, sample_labels):
    """A = mean a aᵀ over examples, S = mean g gᵀ (own targets, or the documented sampled ones)."""
    cov = fit_covariance(
        case.model, case.train, _fit_cfg(sample_labels=sample_labels), task=case.task
    )
    io = case.layer_io(SEED if sample_labels else None)
    assert (cov.n_tokens, cov.n_sequences) == (N, N)
    for m in MODULES:
        A, S = cov.covariances(m)
        a, g = io[m]
        torch.testing.assert_close(A, a.T @ a / N, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(S, g.T @ g / N, rtol=1e-10, atol=1e-12)


def test_ekfac_eigenvalues_match_per_example_gradients(case):
    """Λ_m = mean_n (Q_Sᵀ DW_n Q_A)², DW_n the explicit sampled-target per-example gradient."""
    fac = fit_factors(case.model, case.train, _fit_cfg(strategy="ekfac"), task=case.task)
    D = torch.stack([case.grad(n, SEED) for n in range(N)])
    start = 0
    for m, info in zip(fac.modules, fac.infos):
        size = info.d_out * info.d_in_h
        dw = D[:, start : start + size].view(N, info.d_out, info.d_in_h)
        start += size
        lam = ((fac.q_s[m].T @ dw @ fac.q_a[m]) ** 2).mean(0)
        torch.testing.assert_close(fac.lam[m], lam, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("strategy", ["identity", "kfac", "ekfac"])
def test_scores_match_dense_preconditioner(case, strategy):
    """score = ∇f_qᵀ M⁻¹ ∇L_n with explicit gradients and the factors as a dense matrix."""
    fac = fit_factors(case.model, case.train, _fit_cfg(strategy=strategy), task=case.task)
    q = precondition_queries(case.model, fac, case.queries, SC, task=case.task)
    total = score_training(case.model, fac, q, case.train, SC, task=case.task).total.double()
    Gq = torch.stack([case.grad(n) for n in range(N, N + Q)])
    Gt = torch.stack([case.grad(n) for n in range(N)])
    M = torch.eye(Gq.shape[1], dtype=torch.float64)
    if strategy != "identity":
        M = dense_preconditioner(fac, fac.modules)
    torch.testing.assert_close(total, (Gq @ M @ Gt.T).float().double(), rtol=1e-5, atol=1e-6)


def test_operator_products_match_brute_force(case):
    """gnh: G v with the exact GNH; sampled: (1/N) Σ_n D_n ⟨D_n, v⟩ over the sampled gradients."""
    fac = fit_factors(case.model, case.train, _fit_cfg(strategy="ekfac"), task=case.task)
    g = torch.Generator().manual_seed(3)
    vec = {
        i.name: torch.randn(2, i.d_out, i.d_in_h, generator=g, dtype=torch.float64)
        for i in fac.infos
    }
    flat = torch.cat([vec[m].flatten(1) for m in fac.modules], 1)  # [2, P]
    rc = RefineConfig(dtype="float64", device="cpu", progress=False, seed=SEED, label_samples=1)
    got = product_sums(
        case.model, fac, case.train, vec, replace(rc, products="gnh"), task=case.task
    )
    got = got.mean()
    got = torch.cat([got[m].flatten(1) for m in fac.modules], 1)
    torch.testing.assert_close(got, flat @ case.gnh(), rtol=1e-9, atol=1e-11)
    D = torch.stack([case.grad(n, SEED) for n in range(N)])
    got = product_sums(case.model, fac, case.train, vec, rc, task=case.task).mean()
    got = torch.cat([got[m].flatten(1) for m in fac.modules], 1)
    torch.testing.assert_close(got, flat @ D.T @ D / N, rtol=1e-9, atol=1e-11)


def test_exact_and_refined_match_damped_gnh_inverse(case):
    """Exact row of estimator_scores; EK-FAC + 80 PCG steps (gnh, > P: converged) = ∇f_qᵀ(G+D)⁻¹∇L_n."""
    G = case.gnh()
    scores, _ = estimator_scores(case.model, case.train, case.queries, estimators=("exact", "gradient_dot"),
                                 modules=MODULES, task=case.task)  # fmt: skip
    Gq = torch.stack([case.grad(n) for n in range(N, N + Q)])
    Gt = torch.stack([case.grad(n) for n in range(N)])
    damp, start = torch.empty(G.shape[0], dtype=torch.float64), 0
    for m in MODULES:  # λ_m = 0.1 × mean of the exact block's diagonal (estimator_scores' rule)
        lin = case.model.get_submodule(m)
        size = lin.weight.numel() + lin.bias.numel()
        damp[start : start + size] = 0.1 * G.diagonal()[start : start + size].mean()
        start += size
    exact = Gq @ torch.linalg.solve(G + torch.diag(damp), Gt.T)
    torch.testing.assert_close(scores["exact"], exact, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(scores["gradient_dot"], Gq @ Gt.T, rtol=1e-10, atol=1e-12)
    fac = fit_factors(case.model, case.train, _fit_cfg(strategy="ekfac"), task=case.task)
    start = 0
    for m, info in zip(fac.modules, fac.infos):
        fac.damping[m] = float(damp[start])
        start += info.d_out * info.d_in_h
    rc = RefineConfig(steps=80, products="gnh", dtype="float64", device="cpu", progress=False)
    ref = refine_queries(case.model, fac, case.queries, case.train, rc, SC, task=case.task)
    refined = score_training(case.model, fac, ref.queries, case.train, SC, task=case.task).total
    torch.testing.assert_close(refined.double(), exact.float().double(), rtol=1e-5, atol=1e-6)


def test_fused_groups_and_self_influence(case):
    """The fused pass (query groups) and self-influence work with the example tasks: ekfac group
    = ∇f_qᵀ M⁻¹ ∇L_n, graddot group = ∇f_qᵀ ∇L_n, self-influence = ∇L_nᵀ M⁻¹ ∇L_n."""
    from llm_influence.influence import build_query_groups, score_groups, self_influence

    fac = fit_factors(case.model, case.train, _fit_cfg(strategy="ekfac"), task=case.task)
    sc = ScoreConfig(rank=None, dtype="float64", device="cpu", topk=4, progress=False)
    groups = build_query_groups(case.model, fac, case.queries, sc, task=case.task)
    out = score_groups(case.model, fac, groups, case.train, sc, task=case.task)
    Gq = torch.stack([case.grad(n) for n in range(N, N + Q)])
    Gt = torch.stack([case.grad(n) for n in range(N)])
    M = dense_preconditioner(fac, fac.modules)
    torch.testing.assert_close(out["ekfac"].total.double(), (Gq @ M @ Gt.T).float().double())
    torch.testing.assert_close(out["graddot"].total.double(), (Gq @ Gt.T).float().double())
    top = out["ekfac"].top  # per-token scores of the top-k: one position per example
    torch.testing.assert_close(top.tokens.sum(-1), top.total)
    own = self_influence(case.model, fac, case.train, sc, task=case.task).double()
    torch.testing.assert_close(own, torch.einsum("np,pq,nq->n", Gt, M, Gt).float().double())
