"""The Gaussian spectral generator: a learned spectral amplitude on a Laplacian eigenbasis trunk.

u(x; z, θ) = Σ_k a_w(θ, λ_k) z_k φ_k(x),   z ~ N(0, I_K)

A DeepONet-style branch/trunk split (Lu et al. 2021, Nat. Mach. Intell. 3, 218): the trunk φ_k(x) is the
orthonormal eigenbasis of the box (no parameters, computed once per data set),
the branch is a small network a_w of (θ, λ). The law is exactly Gaussian with
covariance Φ diag(a²) Φᵀ, and its rank K can be tens of thousands because the
branch is one scalar network evaluated per mode, not a K × K matrix.

With the same eigenfunctions as test functions the weak-form residuals are
r_k = τ(κ² + λ_k)^{α/2} a_w(θ, λ_k) z_k (docs/method.md, "The weak form"): no derivative of
the network, any real α. Training drives each r_k towards N(0, 1).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from pinnprob.generators.base import Generator
from pinnprob.params import ParamRange
from pinnprob.testfunctions.eigen import BoxEigenbasis, SeparableFeatures, dense_features

__all__ = ["SpectralGenerator"]


class SpectralGenerator(Generator):
    """Gaussian generator with trunk = box eigenbasis and branch = amplitude network a_w(θ, λ)."""

    gaussian = True
    diagonal_branch = True  # Ψ = Φ diag(a(θ))
    separable_trunk = True  # Φ = products of 1-D eigenfunctions (separable_features)
    basis: BoxEigenbasis
    net: eqx.nn.MLP
    param_range: ParamRange = eqx.field(static=True)
    log_lambda_max: float = eqx.field(static=True)

    def __init__(self, key: PRNGKeyArray, basis: BoxEigenbasis, param_range: ParamRange,
                 width: int = 64, depth: int = 3, log_lambda_max: float | None = None):
        self.basis = basis
        self.param_range = ParamRange(*param_range)
        self.net = eqx.nn.MLP(3, "scalar", width, depth, activation=jax.nn.tanh, key=key)
        self.log_lambda_max = float(log_lambda_max if log_lambda_max is not None
                                    else math.log1p(float(jnp.max(basis.eigenvalues))))

    @property
    def latent_dim(self) -> int:
        return self.basis.size

    def log_amplitudes(self, log_range, nu, eigenvalues: Float[Array, " K"] | None = None) -> Float[Array, " K"]:
        """log a_w(θ, λ_k) for each eigenvalue (default: the trunk's), shape (K,)."""
        lam = self.basis.eigenvalues if eigenvalues is None else eigenvalues
        th = self.param_range.normalize(log_range, nu)
        # frequency input: log(κ² + λ), the log of the operator's symbol up to τ and the power α/2,
        # scaled to about [−1, 1]; a feature of (θ, λ) that makes log a nearly bilinear in the inputs
        kappa2 = 8.0 * nu / jnp.exp(2.0 * log_range)
        s = 2.0 * jnp.log(kappa2 + lam) / self.log_lambda_max - 1.0
        inp = jnp.concatenate([jnp.broadcast_to(th, (lam.shape[0], 2)), s[:, None]], axis=1)
        return jax.vmap(self.net)(inp)

    def amplitudes(self, log_range, nu, eigenvalues=None) -> Float[Array, " K"]:
        """a_w(θ, λ_k): standard deviation of the coefficient ⟨u, φ_k⟩ for σ = 1."""
        return jnp.exp(self.log_amplitudes(log_range, nu, eigenvalues))

    def features(self, X: Float[Array, "n d"]) -> Float[Array, "n K"]:
        """The trunk Φ(X): θ-independent, computed once per set of sites."""
        return self.basis(X)

    def separable_features(self, X: Float[Array, "n d"]) -> SeparableFeatures:
        """The trunk Φ(X) as its 1-D tables: the same products, cheaper for large n·K."""
        return self.basis.separable(X)

    # DeepONet split: branch(θ) once per θ, trunk features once per set of sites, then combine.
    def branch(self, log_range, nu) -> Float[Array, " K"]:
        """The θ-dependent part: the amplitudes a(θ), shape (K,)."""
        return self.amplitudes(log_range, nu)

    def combine(self, features: Float[Array, "n K"] | SeparableFeatures, b: Float[Array, " K"],
                z: Float[Array, " K"]) -> Float[Array, " n"]:
        """u = Φ (a ⊙ z); Φ dense or separable."""
        return features @ (b * z)

    def basis_from_branch(self, features: Float[Array, "n K"], b: Float[Array, " K"]) -> Float[Array, "n K"]:
        """Ψ = Φ diag(a), dense (n, K)."""
        return dense_features(features) * b

    def basis_matrix(self, X: Float[Array, "n d"], log_range, nu) -> Float[Array, "n K"]:
        """Ψ = Φ(X) diag(a): the field is Ψ z and its covariance Ψ Ψᵀ."""
        return self.basis_from_branch(self.features(X), self.branch(log_range, nu))

    def __call__(self, X, z, log_range, nu):
        return self.combine(self.features(X), self.branch(log_range, nu), z)

    def with_basis(self, basis: BoxEigenbasis) -> "SpectralGenerator":
        """The same learned amplitude on another truncation of the eigenbasis (e.g. fewer modes)."""
        return eqx.tree_at(lambda g: g.basis, self, basis)
