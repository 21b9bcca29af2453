"""The query-side compression: the EK-FAC solve kept in the eigenbasis and its rank-r factors
against the dense solve and an independent truncated SVD (float64 references)."""

from __future__ import annotations

import pytest
import torch

from llm_influence.influence.factors import Factors
from llm_influence.influence.low_rank import compress, low_rank, solve_in_eigenbasis
from llm_influence.influence.modules import ModuleInfo


def _factors(O: int, I: int, dtype) -> Factors:
    g = torch.Generator().manual_seed(0)
    qs = torch.linalg.qr(torch.randn(O, O, generator=g, dtype=torch.float64))[0]
    qa = torch.linalg.qr(torch.randn(I, I, generator=g, dtype=torch.float64))[0]
    lam = torch.rand(O, I, generator=g, dtype=torch.float64) ** 3
    f = Factors(
        "ekfac",
        ["m"],
        [ModuleInfo("m", O, I, False)],
        {"m": qa},
        {"m": qs},
        {"m": lam},
        {"m": 0.05},
        "fp",
    )
    return f.to("cpu", dtype)


def _gradients(Q: int, O: int, I: int, T: int, dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)  # like a query gradient: a sum of T token outer products
    a = torch.randn(Q, T, I, generator=g, dtype=torch.float64)
    s = torch.randn(Q, T, O, generator=g, dtype=torch.float64)
    return (s.transpose(1, 2) @ a).to(dtype)


def _rank_r(p: torch.Tensor, r: int) -> torch.Tensor:
    u, s, vh = torch.linalg.svd(p.double(), full_matrices=False)
    return u[..., :r] * s[..., None, :r] @ vh[..., :r, :]


def _rel(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float(((x.double() - ref).norm(dim=(1, 2)) / ref.norm(dim=(1, 2))).max())


@pytest.mark.parametrize("O,I", [(24, 10), (10, 24)])
def test_eigenbasis_solve_equals_the_dense_ihvp(O, I):
    f = _factors(O, I, torch.float64)
    g = _gradients(5, O, I, 6, torch.float64)
    e = solve_in_eigenbasis(f, "m", g)
    assert e.shape == g.shape
    torch.testing.assert_close(e.dense(), f.ihvp("m", g), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("O,I", [(24, 10), (10, 24)])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_rank_r_factors_match_the_truncated_svd(O, I, dtype, tol):
    """Float32 matrices (Gram in float64) against float64's SVD."""
    f64 = _factors(O, I, torch.float64)
    g = _gradients(5, O, I, 6, torch.float64)
    ref = _rank_r(f64.ihvp("m", g), 4)
    e = solve_in_eigenbasis(_factors(O, I, dtype), "m", g.to(dtype))
    u, v = compress(e, 4)
    assert u.dtype == dtype and u.shape == (5, O, 4) and v.shape == (5, I, 4)
    assert _rel(u @ v.transpose(1, 2), ref) < tol
    # a dense matrix (raw gradients): exact at its rank, truncated SVD below it
    u, v = compress(g.to(dtype), 6)
    assert _rel(u @ v.transpose(1, 2), g) < tol
    u, v = low_rank(g.to(dtype), 3)
    assert _rel(u @ v.transpose(1, 2), _rank_r(g, 3)) < tol
