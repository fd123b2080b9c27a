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

from pinnprob.generators.base import AbstractPushForwardGenerator
from pinnprob.parameters import ParameterSpace
from pinnprob.testfunctions.eigen import BoxEigenbasis

__all__ = ["PushForwardGenerator"]


class PushForwardGenerator(AbstractPushForwardGenerator):
    """u = Φ(x) b(z, θ) with a network b nonlinear in z."""

    basis: BoxEigenbasis
    branch_mlp: eqx.nn.MLP
    latent: int = eqx.field(static=True)
    space: ParameterSpace = eqx.field(static=True)

    def __init__(self, key: PRNGKeyArray, basis: BoxEigenbasis, space: ParameterSpace,
                 latent_dim: int | None = None, width: int = 256, depth: int = 3):
        self.basis = basis
        self.latent = int(latent_dim or basis.size)
        self.branch_mlp = eqx.nn.MLP(self.latent + space.dim, basis.size, width, depth, activation=jax.nn.gelu, key=key)
        self.space = space

    @property
    def latent_dim(self) -> int:
        return self.latent

    def features(self, X: Float[Array, "n d"]) -> Float[Array, "n K"]:
        return self.basis(X)

    def coefficients(self, z: Float[Array, " m"], theta) -> Float[Array, " K"]:
        """b(z, θ) = ⟨u, φ_k⟩ for σ = 1."""
        return self.branch_net(z, self.space.normalize(theta))

    def branch(self, theta) -> Float[Array, " p"]:
        """The normalised θ (the network mixes it with z, so nothing more can be precomputed)."""
        return self.space.normalize(theta)

    def combine(self, features: Float[Array, "n K"], b: Float[Array, " p"], z: Float[Array, " m"]) -> Float[Array, " n"]:
        return features @ self.branch_net(z, b)

    def branch_net(self, z, th):
        return self.branch_mlp(jnp.concatenate([z, th]))

