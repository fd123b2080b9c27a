"""Dense factorisations for the collapsed likelihoods: a Cholesky factor without symmetrisation, the
diagonal of an inverse and a triangular inverse by blocks, and the Gaussian log density with its
gradient written out.

JAX exposes no LAPACK trtri or potri, and reverse mode through a Cholesky factor costs about 7× the
factorisation (two n × n triangular solves against the factor's cotangent, at a single-threaded
triangular solve's speed on a CPU). The gradient of a Gaussian log density needs only C⁻¹ (or its
diagonal), which these helpers form from the factor by matrix products, multithreaded on a CPU and
native on a GPU.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve, solve_triangular
from jaxtyping import Array, Float

__all__ = ["cholesky", "gaussian_logpdf", "inverse_diagonal", "triangular_inverse"]


def cholesky(A: Float[Array, "n n"]) -> Float[Array, "n n"]:
    """The lower Cholesky factor of A, symmetric by construction: LAPACK reads its lower triangle only,
    so the symmetrisation jnp.linalg.cholesky does first ((A + Aᵀ)/2, whose transpose cost 0.45 s at
    n = 8 269 on a 2-core CPU against 2.1 s for the factorisation) is skipped."""
    return jax.lax.linalg.cholesky(A, symmetrize_input=False)


def _inverse_block_columns(L, block: int):
    """[(j0, j1, X[j0:, j0:j1])]: the block columns of X = L⁻¹ (L (n, n) lower-triangular) below its
    diagonal, X_jj = L_jj⁻¹, X_ij = −L_ii⁻¹ Σ_{j≤k<i} L_ik X_kj: n³/3 flops, all in matrix products
    (a triangular solve against the identity ignores the identity's zeros: n³)."""
    n = L.shape[0]
    edges = list(range(0, n, block)) + [n]
    inv = [solve_triangular(L[a:b, a:b], jnp.eye(b - a, dtype=L.dtype), lower=True)
           for a, b in zip(edges[:-1], edges[1:], strict=True)]
    out = []
    for j in range(len(inv)):
        col = [inv[j]]  # X_jj, X_(j+1)j, …: the nonzero blocks of X's block column j
        for i in range(j + 1, len(inv)):
            col.append(-inv[i] @ (L[edges[i]:edges[i + 1], edges[j]:edges[i]] @ jnp.concatenate(col, 0)))
        out.append((edges[j], edges[j + 1], col))
    return out


def inverse_diagonal(L: Float[Array, "n n"], block: int = 1024) -> Float[Array, " n"]:
    """diag(A⁻¹) for A = LLᵀ, L lower-triangular: the columns' sums of squares of X = L⁻¹, formed
    block column by block column and never held whole (n³/3 flops in matrix products). At n = 8 269 in
    float64 on a 2-core CPU: 2.6 s, against 3.5 s for L⁻¹ by halves (2n³/3 flops: the halves' products
    ignore their factors' zeros) and 2.3 s for the Cholesky itself; at n = 3 000, 0.28 s against
    0.25 s (benchmarks/gram_gradient.py)."""
    return jnp.concatenate([sum(jnp.sum(c**2, 0) for c in col) for _, _, col in _inverse_block_columns(L, block)])


def triangular_inverse(L: Float[Array, "n n"], block: int = 1024) -> Float[Array, "n n"]:
    """L⁻¹ of a lower-triangular L, block column by block column (n³/3 flops in matrix products)."""
    X = jnp.zeros_like(L)
    for j0, j1, col in _inverse_block_columns(L, block):
        X = X.at[j0:, j0:j1].set(jnp.concatenate(col, 0))
    return X


def gaussian_logpdf(value: Float[Array, "*batch n"], C: Float[Array, "n n"]) -> Float[Array, "*batch"]:
    """log N(value | 0, C) by a Cholesky of C (one C, any batch of values), its gradient written out:
    ∂/∂value = −C⁻¹value, ∂/∂C = ½(ααᵀ − C⁻¹) per value, α = C⁻¹value, with C⁻¹ = L⁻ᵀL⁻¹ from
    :func:`triangular_inverse` (n³/3 + n³ flops in matrix products, where reverse mode through the
    factor costs two n × n triangular solves)."""
    n = C.shape[-1]
    v = jnp.reshape(value, (-1, n))
    return jnp.reshape(_gaussian_terms(v, C), value.shape[:-1]) - 0.5 * n * math.log(2 * math.pi)


@jax.custom_vjp
def _gaussian_terms(v, C):
    """−½(vᵀC⁻¹v + log det C) per row of v (k, n)."""
    return _gaussian_fwd(v, C)[0]


def _gaussian_fwd(v, C):
    L = jnp.linalg.cholesky(C)  # symmetrised first: C may come from a caller (n ≤ a few thousand: cheap)
    a = cho_solve((L, True), v.T).T  # (k, n): C⁻¹v per row
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(L)))
    return -0.5 * (jnp.sum(v * a, 1) + logdet), (L, a)


def _gaussian_bwd(res, g):
    L, a = res
    X = triangular_inverse(L)
    Cinv = X.T @ X
    C_bar = 0.5 * ((a.T * g) @ a - jnp.sum(g) * Cinv)
    return -g[:, None] * a, C_bar


_gaussian_terms.defvjp(_gaussian_fwd, _gaussian_bwd)
