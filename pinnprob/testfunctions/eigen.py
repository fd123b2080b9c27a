"""Laplacian eigenbases of a box: the test functions on which the Matérn operator is diagonal.

On D = Π[0, L_i] the eigenfunctions of −Δ are products of 1-D functions:

* Neumann:   c_m cos(π m x / L),  m ≥ 0,  c_0 = 1/√L, c_m = √(2/L);  λ = (π m / L)²
* Dirichlet: √(2/L) sin(π m x / L), m ≥ 1;                            λ = (π m / L)²
* periodic:  1/√L, √(2/L) cos(2π j x/L), √(2/L) sin(2π j x/L);       λ = (2π j / L)²

They are orthonormal in L²(D), so the white-noise Gram matrix G = I, and the
operator acts as L φ_k = τ(κ² + λ_k)^{α/2} φ_k for any real α.
"""

from __future__ import annotations

import itertools
import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from pinnprob.domain import Box

__all__ = ["BoxEigenbasis", "SeparableFeatures", "dense_features"]


def _frequency_1d(m: np.ndarray, L: float, bc: str) -> np.ndarray:
    """Angular frequency of 1-D eigenfunction number m."""
    if bc == "periodic":
        return 2.0 * math.pi * np.ceil(m / 2.0) / L
    return math.pi * m / L


def _eigenfunction_1d(m, x, L: float, bc: str):
    """The 1-D eigenfunction number m (integer array) at x, broadcast (see the module notes)."""
    if bc == "neumann":
        c = jnp.where(m == 0, 1.0 / math.sqrt(L), math.sqrt(2.0 / L))
        return c * jnp.cos(math.pi * m * x / L)
    if bc == "dirichlet":
        return math.sqrt(2.0 / L) * jnp.sin(math.pi * m * x / L)
    # periodic: m = 0 const, odd m cos, even m sin
    j = jnp.ceil(m / 2.0)
    arg = 2.0 * math.pi * j * x / L
    return jnp.where(m == 0, 1.0 / math.sqrt(L), math.sqrt(2.0 / L) * jnp.where(m % 2 == 1, jnp.cos(arg), jnp.sin(arg)))


class BoxEigenbasis(eqx.Module):
    """K orthonormal Laplacian eigenfunctions of a box, ordered by eigenvalue.

    ``modes`` holds the 1-D index of each factor, shape (K, d); ``eigenvalues``
    holds λ_k, shape (K,). Call it on points X of shape (n, d) to get Φ of shape (n, K).
    ``grid`` (static, from the concrete modes at construction) is 1 + the largest 1-D index on
    each axis: the shape of the tensor-product grid of modes that :meth:`separable` uses.
    """

    domain: Box
    modes: Int[Array, "K d"]
    eigenvalues: Float[Array, " K"]
    grid: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, domain: Box, modes, eigenvalues):
        self.domain, self.modes, self.eigenvalues = domain, modes, eigenvalues
        self.grid = tuple(int(m) + 1 for m in np.max(np.asarray(modes), axis=0))

    @classmethod
    def create(cls, domain: Box, num_per_dim: int, max_frequency: float | None = None) -> "BoxEigenbasis":
        """All modes with 1-D index < ``num_per_dim`` on each axis, optionally only those
        whose frequency |ω| = √λ is at most ``max_frequency`` (a disk instead of a square).
        """
        if num_per_dim < 1:
            raise ValueError(f"num_per_dim must be >= 1, got {num_per_dim}")
        start = 1 if domain.bc == "dirichlet" else 0
        axes = [np.arange(start, start + num_per_dim) for _ in range(domain.dim)]
        grid = np.array(list(itertools.product(*axes)), dtype=np.int32).reshape(-1, domain.dim)
        freqs = np.stack(
            [_frequency_1d(grid[:, i], domain.lengths[i], domain.bc) for i in range(domain.dim)], axis=1
        )
        lam = np.sum(freqs**2, axis=1)
        keep = np.ones(len(lam), bool) if max_frequency is None else lam <= max_frequency**2 * (1 + 1e-12)
        order = np.lexsort((np.arange(keep.sum()), lam[keep]))
        return cls(domain, jnp.asarray(grid[keep][order]), jnp.asarray(lam[keep][order]))

    @property
    def size(self) -> int:
        return int(self.eigenvalues.shape[0])

    def tables(self, X: Float[Array, "n d"]) -> list[Float[Array, "n M"]]:
        """The 1-D eigenfunctions f_j(x_i), j = 0 .. grid_i − 1, on each axis i: shape (n, grid_i) each."""
        return [_eigenfunction_1d(jnp.arange(M)[None, :], X[:, i : i + 1], L, self.domain.bc)
                for i, (L, M) in enumerate(zip(self.domain.lengths, self.grid, strict=True))]

    def factors(self, X: Float[Array, "n d"]) -> list[Float[Array, "n K"]]:
        """The 1-D factors f_{m_i}(x_i) for each axis i, each of shape (n, K)."""
        return [_eigenfunction_1d(self.modes[:, i][None, :], X[:, i : i + 1], L, self.domain.bc)
                for i, L in enumerate(self.domain.lengths)]

    def separable(self, X: Float[Array, "n d"]) -> "SeparableFeatures":
        """Φ(X) kept as its 1-D tables (:class:`SeparableFeatures`): products with it cost
        n·Π grid_i in matrix products instead of reading the n × K matrix."""
        X = jnp.asarray(X)
        flat = jnp.ravel_multi_index(tuple(jnp.asarray(self.modes).T), self.grid, mode="clip")
        return SeparableFeatures(tuple(self.tables(X)), flat.astype(jnp.int32), self.grid)

    def __call__(self, X: Float[Array, "n d"]) -> Float[Array, "n K"]:
        """Φ_ik = φ_k(x_i)."""
        X = jnp.asarray(X)
        out = None
        for f in self.factors(X):
            out = f if out is None else out * f
        return out


class SeparableFeatures(eqx.Module):
    """The trunk features Φ(X) (n × K) of a tensor-product eigenbasis, kept as the 1-D tables
    T_i (n × M_i) and the flat index of each mode in the grid Π M_i.

    Φ_nk = Π_i T_i[n, m_ki], so Φw = contract(T_1, ..., T_d; W) with W the grid holding w at the
    modes: matrix products of cost n·Π M_i (≈ 1.3 n K for a disk of modes) whose operands fit in
    cache, where Φw with a dense Φ is memory-bound (it reads n·K numbers per product: a NUTS gradient
    2× dearer at n = 2000, K = 2946 on a quiet CPU, more under shared memory bandwidth;
    docs/results/inference.md). ``dense()`` builds Φ.
    """

    tables: tuple[Float[Array, "n M"], ...]
    flat_index: Int[Array, " K"]
    grid: tuple[int, ...] = eqx.field(static=True)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.tables[0].shape[0]), int(self.flat_index.shape[0]))

    def _grid(self, w: Float[Array, " K"]) -> Float[Array, "..."]:
        # the modes are distinct, so a scatter-set (its adjoint is a gather)
        return jnp.zeros(math.prod(self.grid), w.dtype).at[self.flat_index].set(w, unique_indices=True).reshape(self.grid)

    def __matmul__(self, w: Float[Array, " K"]) -> Float[Array, " n"]:
        """Φ w, by contracting the last axis with a matrix product, then the others row by row."""
        if w.ndim != 1:
            raise ValueError(f"SeparableFeatures @ w takes w of shape (K,), got {w.shape}")
        W = self._grid(w)
        n, Md = self.tables[0].shape[0], self.grid[-1]
        V = (self.tables[-1] @ W.reshape(-1, Md).T).reshape((n,) + self.grid[:-1])  # (n, M_1 .. M_{d-1})
        for T in reversed(self.tables[:-1]):
            V = jnp.einsum("n...j,nj->n...", V, T)
        return V

    def __rmatmul__(self, r: Float[Array, " n"]) -> Float[Array, " K"]:
        """rᵀΦ (= Φᵀr), shape (K,)."""
        if r.ndim != 1:
            raise ValueError(f"r @ SeparableFeatures takes r of shape (n,), got {r.shape}")
        n = self.tables[0].shape[0]
        if len(self.tables) == 1:
            G = r @ self.tables[0]
        else:
            V = r[:, None] * self.tables[0]  # (n, M_1), then (n, M_1, .., M_{d-1})
            for T in self.tables[1:-1]:
                V = jnp.einsum("n...,nj->n...j", V, T)
            G = V.reshape(n, -1).T @ self.tables[-1]  # (Π M_{<d}, M_d)
        return G.reshape(-1)[self.flat_index]

    def dense(self) -> Float[Array, "n K"]:
        """Φ itself, (n, K)."""
        out = None
        for T, i in zip(self.tables, jnp.unravel_index(self.flat_index, self.grid), strict=True):
            out = T[:, i] if out is None else out * T[:, i]
        return out


def dense_features(features) -> Float[Array, "n K"]:
    """Φ as an array, whether given dense or as :class:`SeparableFeatures`."""
    return features.dense() if isinstance(features, SeparableFeatures) else features
