"""Rank-r compression of per-module query matrices (Grosse et al. 2023 §3.2: low-rank query batching).

Two costs dominate building the queries of a shard job: the EK-FAC solve (G+λ)⁻¹∇f_q and the
truncated SVD of its result. Both are cut here without changing the result beyond round-off:

- :class:`Eigenbasis` keeps the solve in the eigenbasis, R = (Q_Sᵀ ∇f Q_A) ⊘ (Λ+λ), with both
  rotations of all queries of a module done as one matmul each. Since Q_S and Q_A are orthogonal,
  the truncated SVD of P = Q_S R Q_Aᵀ is Q_S (truncated SVD of R) Q_Aᵀ: only the rank-r factors are
  rotated back (Q·(O²+I²)·r multiply-adds instead of Q·(O²I+OI²) for the dense P).
- :func:`low_rank` takes the eigenvectors of the smaller Gram side (one matmul and the
  eigendecomposition of a [k, k] matrix, k = min(O, I)), in float64 (see :func:`compress` for the
  measured accuracy of float32).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .factors import Factors
from .modules import small_lapack


def low_rank(
    p: torch.Tensor, rank: int, gram_dtype: torch.dtype | None = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best rank-r approximation P ≈ U Vᵀ of each P [Q, O, I] (truncated SVD), -> U [Q, O, r], V [Q, I, r].

    From the eigenvectors of the smaller Gram matrix (one LAPACK thread for small sizes, see
    ``small_lapack``): with W the top-r eigenvectors of PᵀP (I <= O), P W Wᵀ is the truncated SVD;
    U = P W carries the singular values, V = W. With O < I, from P Pᵀ: U = W, V = PᵀW (singular values
    in V). No division by singular values, so exact also for rank-deficient P and r = min(O, I).
    ``gram_dtype``: dtype of the Gram and its eigendecomposition (None = P's own dtype; float64 by
    default, as the refinement and the old two-pass path use it)."""
    Q, O, I = p.shape
    r = min(rank, O, I)
    pd = p if gram_dtype is None else p.to(gram_dtype)
    small_in = I <= O
    gram = pd.transpose(1, 2) @ pd if small_in else pd @ pd.transpose(1, 2)  # [Q, k, k]
    with small_lapack(gram.shape[-1], gram.device):
        _, w = torch.linalg.eigh(gram)
    w = w[..., -r:].flip(-1)  # top r, largest first
    if small_in:
        u, v = pd @ w, w
    else:
        u, v = w, pd.transpose(1, 2) @ w
    return u.to(p.dtype).contiguous(), v.to(p.dtype).contiguous()


def _left(q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """q @ x[j] for every j of x [Q, O, C], as one [O, O] x [O, Q·C] matmul."""
    Q, O, C = x.shape
    return (q @ x.transpose(0, 1).reshape(O, Q * C)).view(O, Q, C).transpose(0, 1)


@dataclass
class Eigenbasis:
    """P = Q_S R Q_Aᵀ per query, kept as R [Q, O, I] (the solve in the eigenbasis) and the module's
    orthogonal Q_S [O, O], Q_A [I, I]: what :func:`preconditioned_eigenbasis` returns."""

    inner: torch.Tensor
    q_s: torch.Tensor
    q_a: torch.Tensor

    @property
    def shape(self) -> torch.Size:
        return self.inner.shape

    def dense(self) -> torch.Tensor:
        """P itself [Q, O, I] (full-rank scoring, the re-score of the top-k)."""
        Q, O, I = self.inner.shape
        right = (self.inner.reshape(Q * O, I) @ self.q_a.T).view(Q, O, I)
        return _left(self.q_s, right).contiguous()

    def low_rank(
        self, rank: int, gram_dtype: torch.dtype | None = torch.float64
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The truncated SVD of P, from R's: (Q_S U_R, Q_A V_R)."""
        u, v = low_rank(self.inner, rank, gram_dtype)
        return _left(self.q_s, u).contiguous(), _left(self.q_a, v).contiguous()


def solve_in_eigenbasis(factors: Factors, name: str, g: torch.Tensor) -> Eigenbasis:
    """(G+λ)⁻¹ g for all queries g [Q, O, I] of one module, left in the eigenbasis (same maths as
    ``Factors.ihvp``; both rotations batched over the queries)."""
    qa, qs = factors.q_a[name], factors.q_s[name]
    Q, O, I = g.shape
    right = (g.reshape(Q * O, I) @ qa).view(Q, O, I)
    inner = _left(qs.T, right)
    inner = inner / (factors.lam[name] + factors.damping[name])
    return Eigenbasis(inner.contiguous(), qs, qa)


QueryMatrix = torch.Tensor | Eigenbasis


def dense(p: QueryMatrix) -> torch.Tensor:
    return p.dense() if isinstance(p, Eigenbasis) else p


def compress(p: QueryMatrix, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-r factors (U, V) of a dense matrix or an :class:`Eigenbasis` one, Gram in float64.

    Float32 Gram was measured (64 queries, rank 32, the benchmark's models, float32 scoring): it
    changed the EK-FAC scores by 1.2e-6 (GPT-NeoX) and 1.6e-5 (Llama) of the largest score and the
    raw gradients' by 2.3e-5: above the 1e-5 the tests allow, so float64 stays (``low_rank``'s
    ``gram_dtype`` takes float32 on request)."""
    if isinstance(p, Eigenbasis):
        return p.low_rank(rank, torch.float64)
    return low_rank(p, rank, torch.float64)
