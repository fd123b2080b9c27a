"""Shared pieces of the generators u(x; z, θ).

Every generator takes sites X (n, d) in the unit box, a latent z (m,) and the
SPDE parameters θ = (log ρ, ν), and returns the field at X *for σ = 1*; the prior
multiplies by σ (σ enters analytically, the network never sees it; docs/method.md, "Generators").
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

__all__ = ["FourierFeatures", "Generator"]


class Generator(eqx.Module):
    """Interface of a generator. ``gaussian`` is True when u is linear in z ~ N(0, I)."""

    gaussian = False
    # True when the basis is the trunk scaled per column, Ψ(θ) = Φ diag(branch(θ)): then ΦᵀΦ can be
    # computed once per set of sites and every Gaussian likelihood costs O(m³), not O(n m²)
    diagonal_branch = False
    # True when the trunk is a tensor-product eigenbasis that ``separable_features`` can return as its
    # 1-D tables (:class:`~pinnprob.testfunctions.SeparableFeatures`): cheaper products Φw for large n·m
    separable_trunk = False

    def product_features(self, X: Float[Array, "n d"]):
        """Trunk features for products Φw (the latent path, predictions): the separable tables when
        the trunk has them, else the dense features."""
        return self.separable_features(X) if self.separable_trunk else self.features(X)

    @property
    def latent_dim(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, X: Float[Array, "n d"], z: Float[Array, " m"], log_range, nu) -> Float[Array, " n"]:
        raise NotImplementedError  # pragma: no cover


class FourierFeatures(eqx.Module):
    """x ↦ [cos(2π Bx), sin(2π Bx)] with a fixed random frequency matrix B (F, d).

    MLPs are biased against high frequencies; Fourier features remove the bias
    (Tancik et al. 2020). B is a constant (``jax.lax.stop_gradient``), not trained.
    """

    B: Float[Array, "F d"]

    def __init__(self, key: PRNGKeyArray, dim: int, num_features: int, scale: float):
        self.B = scale * jax.random.normal(key, (num_features, dim))

    @property
    def out_size(self) -> int:
        return 2 * self.B.shape[0]

    def __call__(self, X: Float[Array, "n d"]) -> Float[Array, "n 2F"]:
        proj = 2.0 * math.pi * X @ jax.lax.stop_gradient(self.B).T
        return jnp.concatenate([jnp.cos(proj), jnp.sin(proj)], axis=-1)
