"""The Matérn SPDE (κ² − Δ)^{α/2}(τu) = W and its parameter conversions.

Users think in (range ρ, marginal sd σ, smoothness ν); the operator is written
in (κ, τ, α).  The conversions (Lindgren, Rue & Lindström 2011, §2):

* ν = α − d/2,  ρ = √(8ν)/κ,
* σ² = Γ(ν) / (Γ(ν + d/2) (4π)^{d/2} κ^{2ν} τ²)   (marginal variance on R^d).

All functions are pure ``jax.numpy`` and broadcast over their arguments, so they
are jit-, vmap- and grad-able.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
from jax.scipy.special import gammaln
from jaxtyping import Array, ArrayLike, Float

from pinnprob.domain import Box
from pinnprob.noise import AbstractNoise, GaussianWhiteNoise
from pinnprob.parameters import ParameterSpace, matern_space
from pinnprob.spde.base import DiagonalSPDE

__all__ = [
    "MaternSPDE",
    "alpha_from_nu",
    "nu_from_alpha",
    "kappa_from_range",
    "range_from_kappa",
    "tau_from_sigma",
    "sigma_from_tau",
    "to_operator_params",
    "from_operator_params",
]


def alpha_from_nu(nu: ArrayLike, d: int) -> Array:
    """α = ν + d/2."""
    return jnp.asarray(nu) + d / 2.0


def nu_from_alpha(alpha: ArrayLike, d: int) -> Array:
    """ν = α − d/2."""
    return jnp.asarray(alpha) - d / 2.0


def kappa_from_range(rho: ArrayLike, nu: ArrayLike) -> Array:
    """κ = √(8ν)/ρ, with ρ the practical range (correlation ≈ 0.13 at distance ρ)."""
    return jnp.sqrt(8.0 * jnp.asarray(nu)) / jnp.asarray(rho)


def range_from_kappa(kappa: ArrayLike, nu: ArrayLike) -> Array:
    """ρ = √(8ν)/κ."""
    return jnp.sqrt(8.0 * jnp.asarray(nu)) / jnp.asarray(kappa)


def _log_sigma2_times_tau2(kappa, nu, d):
    # log(σ² τ²) = log Γ(ν) − log Γ(ν + d/2) − (d/2) log(4π) − 2ν log κ   (Lindgren, Rue & Lindström 2011, §2)
    return gammaln(nu) - gammaln(nu + d / 2.0) - (d / 2.0) * math.log(4.0 * math.pi) - 2.0 * nu * jnp.log(kappa)


def tau_from_sigma(sigma: ArrayLike, kappa: ArrayLike, nu: ArrayLike, d: int) -> Array:
    """τ such that the stationary solution on R^d has marginal standard deviation σ."""
    sigma, kappa, nu = jnp.asarray(sigma), jnp.asarray(kappa), jnp.asarray(nu)
    return jnp.exp(0.5 * _log_sigma2_times_tau2(kappa, nu, d)) / sigma


def sigma_from_tau(tau: ArrayLike, kappa: ArrayLike, nu: ArrayLike, d: int) -> Array:
    """Marginal standard deviation on R^d of the solution with precision scale τ."""
    tau, kappa, nu = jnp.asarray(tau), jnp.asarray(kappa), jnp.asarray(nu)
    return jnp.exp(0.5 * _log_sigma2_times_tau2(kappa, nu, d)) / tau


def to_operator_params(rho: ArrayLike, sigma: ArrayLike, nu: ArrayLike, d: int) -> tuple[Array, Array, Array]:
    """(ρ, σ, ν) → (κ, τ, α)."""
    kappa = kappa_from_range(rho, nu)
    return kappa, tau_from_sigma(sigma, kappa, nu, d), alpha_from_nu(nu, d)


def from_operator_params(kappa: ArrayLike, tau: ArrayLike, alpha: ArrayLike, d: int) -> tuple[Array, Array, Array]:
    """(κ, τ, α) → (ρ, σ, ν)."""
    nu = nu_from_alpha(alpha, d)
    return range_from_kappa(kappa, nu), sigma_from_tau(tau, kappa, nu, d), nu


class MaternSPDE(DiagonalSPDE):
    """The Matérn SPDE (κ² − Δ)^{α/2}(τu) = W on a box, θ = (log range, ν).

    The operator is diagonal in the Laplacian eigenbasis of the box:
    L φ_k = τ (κ² + λ_k)^{α/2} φ_k, which is all the weak form needs for any real α
    (Lindgren, Rue & Lindström 2011, §2). τ is set from σ = 1 (the prior scales by σ).
    """

    domain: Box
    space: ParameterSpace = eqx.field(static=True, default_factory=matern_space)
    noise: AbstractNoise = eqx.field(default_factory=GaussianWhiteNoise)

    @classmethod
    def default_space(cls, dim: int = 2) -> ParameterSpace:
        """range ∈ [0.05, 1] (unit-box units), ν ∈ [0.5, 2.5]."""
        return matern_space()

    def symbol(self, eigenvalues: Float[ArrayLike, "*k"], kappa, tau, alpha) -> Float[Array, "*k"]:
        """τ (κ² + λ)^{α/2}: the action of the operator on the eigenfunction with eigenvalue λ."""
        return tau * (kappa**2 + jnp.asarray(eigenvalues)) ** (alpha / 2.0)

    def operator_params(self, rho, sigma, nu):
        """(ρ, σ, ν) → (κ, τ, α) for this dimension."""
        return to_operator_params(rho, sigma, nu, self.dim)

    def log_symbol(self, eigenvalues, theta):
        """log D_k = log τ + (α/2) log(κ² + λ_k) for σ = 1, θ = (log ρ, ν)."""
        log_range, nu = theta[0], theta[1]
        kappa = kappa_from_range(jnp.exp(log_range), nu)
        tau = tau_from_sigma(1.0, kappa, nu, self.dim)
        alpha = nu + self.dim / 2.0
        return jnp.log(tau) + 0.5 * alpha * jnp.log(kappa**2 + jnp.asarray(eigenvalues))

    def tail_variance(self, lam_min, theta, **kw):
        """In 2-D in closed form: ∫_{λ_min}^∞ (4π τ²)⁻¹ (κ² + λ)^{−α} dλ = (κ²/(κ² + λ_min))^ν for σ = 1
        (Weyl's density 1/(4π); α = ν + 1); otherwise by quadrature (:class:`DiagonalSPDE`)."""
        if self.dim != 2:
            return super().tail_variance(lam_min, theta, **kw)
        nu = theta[1]
        kappa2 = 8.0 * nu / jnp.exp(2.0 * theta[0])
        return jnp.exp(nu * (jnp.log(kappa2) - jnp.log(kappa2 + float(lam_min))))

    def spectral_feature(self, eigenvalues, theta):
        """log(κ² + λ_k): the log of the base symbol, whose power α/2 and scale τ the network learns."""
        kappa2 = 8.0 * theta[1] / jnp.exp(2.0 * theta[0])
        return jnp.log(kappa2 + jnp.asarray(eigenvalues))
