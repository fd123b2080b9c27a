"""The push-forward generator: nonlinear in the latent, on an eigenbasis trunk.

u(x; z, θ) = Σ_k b_k(z, θ) φ_k(x),   b = MLP([z, θ]),   z ~ N(0, I_m)

Its law is not Gaussian in general (the family needed for non-Gaussian forcing,
a push-forward of a Gaussian, Salmona et al. 2022, NeurIPS), so it has no density and is trained with sample-based
divergences only (sliced Wasserstein, MMD, energy, moment-matched KL / W2).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from pinnprob.generators.base import Generator
from pinnprob.params import ParamRange
from pinnprob.testfunctions.eigen import BoxEigenbasis

__all__ = ["PushForwardGenerator"]


class PushForwardGenerator(Generator):
    """u = Φ(x) b(z, θ) with a network b nonlinear in z."""

    gaussian = False
    basis: BoxEigenbasis
    branch_mlp: eqx.nn.MLP
    latent: int = eqx.field(static=True)
    param_range: ParamRange = eqx.field(static=True)

    def __init__(self, key: PRNGKeyArray, basis: BoxEigenbasis, param_range: ParamRange,
                 latent_dim: int | None = None, width: int = 256, depth: int = 3):
        self.basis = basis
        self.latent = int(latent_dim or basis.size)
        self.branch_mlp = eqx.nn.MLP(self.latent + 2, basis.size, width, depth, activation=jax.nn.gelu, key=key)
        self.param_range = ParamRange(*param_range)

    @property
    def latent_dim(self) -> int:
        return self.latent

    def features(self, X: Float[Array, "n d"]) -> Float[Array, "n K"]:
        return self.basis(X)

    def coefficients(self, z: Float[Array, " m"], log_range, nu) -> Float[Array, " K"]:
        """b(z, θ) = ⟨u, φ_k⟩ for σ = 1."""
        return self.branch_net(z, self.param_range.normalize(log_range, nu))

    def branch(self, log_range, nu) -> Float[Array, " 2"]:
        """The normalised θ (the network mixes it with z, so nothing more can be precomputed)."""
        return self.param_range.normalize(log_range, nu)

    def combine(self, features: Float[Array, "n K"], b: Float[Array, " 2"], z: Float[Array, " m"]) -> Float[Array, " n"]:
        return features @ self.branch_net(z, b)

    def branch_net(self, z, th):
        return self.branch_mlp(jnp.concatenate([z, th]))

    def __call__(self, X, z, log_range, nu):
        return self.features(X) @ self.coefficients(z, log_range, nu)
