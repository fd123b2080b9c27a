"""The low-rank Gaussian generator: a learned trunk and a θ-dependent mixing matrix.

u(x; z, θ) = Σ_{f,j} t_f(x) B_fj(θ) z_j,   z ~ N(0, I_m)

t = MLP(Fourier features of x) has F outputs, B = MLP(θ) reshaped to (F, m).
This is the general "Gaussian, linear in z" family (docs/method.md, "Generators") with no
knowledge of the box: it must learn its basis from the weak form alone. Its
rank is at most m, which is a ceiling on the field variance it can represent
("rank is a ceiling") and the root of the loss pitfall (docs/method.md, "The pitfall").
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from pinnprob.generators.base import AbstractGaussianGenerator, FourierFeatures
from pinnprob.parameters import ParameterSpace

__all__ = ["LowRankGenerator"]


class LowRankGenerator(AbstractGaussianGenerator):
    """Gaussian generator u = t(x)ᵀ B(θ) z with a learned trunk t and branch B."""

    fourier: FourierFeatures
    trunk: eqx.nn.MLP
    branch_mlp: eqx.nn.MLP
    rank: int = eqx.field(static=True)
    num_features: int = eqx.field(static=True)
    space: ParameterSpace = eqx.field(static=True)

    def __init__(self, key: PRNGKeyArray, dim: int, space: ParameterSpace, rank: int = 64,
                 num_features: int | None = None, width: int = 128, depth: int = 2,
                 num_fourier: int = 128, fourier_scale: float = 8.0):
        # the covariance t Bᵀ B tᵀ has rank ≤ min(num_features, rank): default to as many trunk outputs as the rank
        num_features = rank if num_features is None else int(num_features)
        if num_features < rank:
            raise ValueError(f"num_features = {num_features} < rank = {rank} would cap the rank at {num_features}")
        k1, k2, k3 = jax.random.split(key, 3)
        self.fourier = FourierFeatures(k1, dim, num_fourier, fourier_scale)
        self.trunk = eqx.nn.MLP(self.fourier.out_size, num_features, width, depth, activation=jax.nn.tanh, key=k2)
        self.branch_mlp = eqx.nn.MLP(space.dim, num_features * rank, width, depth, activation=jax.nn.tanh, key=k3)
        self.rank = rank
        self.num_features = num_features
        self.space = space

    @property
    def latent_dim(self) -> int:
        return self.rank

    def features(self, X: Float[Array, "n d"]) -> Float[Array, "n F"]:
        """The trunk t(X), θ-independent."""
        return jax.vmap(self.trunk)(self.fourier(X)) / jnp.sqrt(self.num_features)

    def mixing(self, theta) -> Float[Array, "F m"]:
        """B(θ)."""
        th = self.space.normalize(theta)
        return self.branch_mlp(th).reshape(self.num_features, self.rank) / jnp.sqrt(self.rank)

    def branch(self, theta) -> Float[Array, "F m"]:
        return self.mixing(theta)

    def combine(self, features: Float[Array, "n F"], b: Float[Array, "F m"], z: Float[Array, " m"]) -> Float[Array, " n"]:
        return features @ (b @ z)

    def basis_from_branch(self, features: Float[Array, "n F"], b: Float[Array, "F m"]) -> Float[Array, "n m"]:
        return features @ b
