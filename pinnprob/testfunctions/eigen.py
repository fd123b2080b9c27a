"""Laplacian eigenbases of a box: the test functions on which the Matérn operator is diagonal.

On D = Π[0, L_i] the eigenfunctions of −Δ are products of 1-D functions
(design notes §2):

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

__all__ = ["BoxEigenbasis"]


def _frequency_1d(m: np.ndarray, L: float, bc: str) -> np.ndarray:
    """Angular frequency of 1-D eigenfunction number m."""
    if bc == "periodic":
        return 2.0 * math.pi * np.ceil(m / 2.0) / L
    return math.pi * m / L


class BoxEigenbasis(eqx.Module):
    """K orthonormal Laplacian eigenfunctions of a box, ordered by eigenvalue.

    ``modes`` holds the 1-D index of each factor, shape (K, d); ``eigenvalues``
    holds λ_k, shape (K,). Call it on points X of shape (n, d) to get Φ of shape (n, K).
    """

    domain: Box
    modes: Int[Array, "K d"]
    eigenvalues: Float[Array, " K"]

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

    def factors(self, X: Float[Array, "n d"]) -> list[Float[Array, "n K"]]:
        """The 1-D factors f_{m_i}(x_i) for each axis i, each of shape (n, K)."""
        out = []
        for i, L in enumerate(self.domain.lengths):
            m = self.modes[:, i][None, :]
            x = X[:, i : i + 1]
            if self.domain.bc == "neumann":
                c = jnp.where(m == 0, 1.0 / math.sqrt(L), math.sqrt(2.0 / L))
                f = c * jnp.cos(math.pi * m * x / L)
            elif self.domain.bc == "dirichlet":
                f = math.sqrt(2.0 / L) * jnp.sin(math.pi * m * x / L)
            else:  # periodic: m = 0 const, odd m cos, even m sin
                j = jnp.ceil(m / 2.0)
                arg = 2.0 * math.pi * j * x / L
                f = jnp.where(
                    m == 0,
                    1.0 / math.sqrt(L),
                    math.sqrt(2.0 / L) * jnp.where(m % 2 == 1, jnp.cos(arg), jnp.sin(arg)),
                )
            out.append(f)
        return out

    def __call__(self, X: Float[Array, "n d"]) -> Float[Array, "n K"]:
        """Φ_ik = φ_k(x_i)."""
        X = jnp.asarray(X)
        out = None
        for f in self.factors(X):
            out = f if out is None else out * f
        return out
