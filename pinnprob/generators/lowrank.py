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

from pinnprob.generators.base import FourierFeatures, Generator
from pinnprob.params import ParamRange

__all__ = ["LowRankGenerator"]


class LowRankGenerator(Generator):
    """Gaussian generator u = t(x)ᵀ B(θ) z with a learned trunk t and branch B."""

    gaussian = True
    fourier: FourierFeatures
    trunk: eqx.nn.MLP
    branch_mlp: eqx.nn.MLP
    rank: int = eqx.field(static=True)
    num_features: int = eqx.field(static=True)
    param_range: ParamRange = eqx.field(static=True)

    def __init__(self, key: PRNGKeyArray, dim: int, param_range: ParamRange, rank: int = 64,
                 num_features: int | None = None, width: int = 128, depth: int = 2,
                 num_fourier: int = 128, fourier_scale: float = 8.0):
        # the covariance t Bᵀ B tᵀ has rank ≤ min(num_features, rank): default to as many trunk outputs as the rank
        num_features = rank if num_features is None else int(num_features)
        if num_features < rank:
            raise ValueError(f"num_features = {num_features} < rank = {rank} would cap the rank at {num_features}")
        k1, k2, k3 = jax.random.split(key, 3)
        self.fourier = FourierFeatures(k1, dim, num_fourier, fourier_scale)
        self.trunk = eqx.nn.MLP(self.fourier.out_size, num_features, width, depth, activation=jax.nn.tanh, key=k2)
        self.branch_mlp = eqx.nn.MLP(2, num_features * rank, width, depth, activation=jax.nn.tanh, key=k3)
        self.rank = rank
        self.num_features = num_features
        self.param_range = ParamRange(*param_range)

    @property
    def latent_dim(self) -> int:
        return self.rank

    def features(self, X: Float[Array, "n d"]) -> Float[Array, "n F"]:
        """The trunk t(X), θ-independent."""
        return jax.vmap(self.trunk)(self.fourier(X)) / jnp.sqrt(self.num_features)

    def mixing(self, log_range, nu) -> Float[Array, "F m"]:
        """B(θ)."""
        th = self.param_range.normalize(log_range, nu)
        return self.branch_mlp(th).reshape(self.num_features, self.rank) / jnp.sqrt(self.rank)

    def branch(self, log_range, nu) -> Float[Array, "F m"]:
        return self.mixing(log_range, nu)

    def combine(self, features: Float[Array, "n F"], b: Float[Array, "F m"], z: Float[Array, " m"]) -> Float[Array, " n"]:
        return features @ (b @ z)

    def basis_from_branch(self, features: Float[Array, "n F"], b: Float[Array, "F m"]) -> Float[Array, "n m"]:
        return features @ b

    def basis_matrix(self, X, log_range, nu) -> Float[Array, "n m"]:
        """Ψ = t(X) B(θ): the field is Ψ z, its covariance Ψ Ψᵀ."""
        return self.basis_from_branch(self.features(X), self.branch(log_range, nu))

    def __call__(self, X, z, log_range, nu):
        return self.combine(self.features(X), self.branch(log_range, nu), z)
