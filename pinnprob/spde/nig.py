"""The Matérn SPDE driven by normal-inverse-Gaussian noise: (κ² − Δ)(τu) = Ṁ on a box (α = 2).

Ṁ is unit-variance NIG (type-G) noise (:class:`~pinnprob.noise.NIGNoise`; Bolin 2014, Scand. J.
Stat. 41, 557; Wallin & Bolin 2015, Scand. J. Stat. 42, 1), so the field has the Matérn covariance
with ν = α − d/2 = 1 in 2-D and marginal variance 1 (σ enters the prior analytically), but skewed,
heavy-tailed marginals: μ sets the skewness, η the tails (η → ∞: the Gaussian Matérn). The operator
is the Matérn's, diagonal on the box eigenbasis; only the noise differs, and a sample-based loss
draws it (:meth:`~pinnprob.losses.WeakFormLoss.target_samples`). θ = (log range, μ, log η).

μ and η are per range² of noise, not per unit area of the box: the noise of area A has the law of
μ_A = μ/ρ, η_A = η/ρ² per unit area (:meth:`NIGMatern.noise_params`). A field averages its noise over
about a range², so with this scaling its marginal skewness and kurtosis depend on (μ, η) only, not on
the range nor on the map from the user's coordinates to the box (per unit area, skewness ∝ μ/(ηρ)).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from pinnprob.domain import Box
from pinnprob.noise import NIGNoise
from pinnprob.parameters import Axis, ParameterSpace
from pinnprob.spde.base import DiagonalSPDE
from pinnprob.spde.matern import MaternSPDE

__all__ = ["NIGMatern", "nig_space"]


def nig_space(range=(0.2, 0.5), mu=(-1.0, 1.0), eta=(4.0, 100.0)) -> ParameterSpace:
    """The parameters of :class:`NIGMatern` over a training box: practical range (log axis), the NIG
    skewness μ and tail parameter η (log axis), both per range² of noise (dimensionless)."""
    return ParameterSpace((
        Axis("range", *range, log=True, length_power=1, doc="practical range √8/κ"),
        Axis("mu", *mu, doc="NIG skewness μ per range² (its sign is the field's)"),
        Axis("eta", *eta, log=True, doc="NIG tail parameter η > 0 per range² (∞: Gaussian)"),
    ))


class NIGMatern(DiagonalSPDE):
    """(κ² − Δ)(τu) = Ṁ on a 2-D box with Ṁ unit NIG noise; θ = (log range, μ, log η); ν = 1."""

    domain: Box
    space: ParameterSpace = eqx.field(static=True, default_factory=nig_space)
    noise: NIGNoise = eqx.field(default_factory=NIGNoise)

    def __check_init__(self):
        if self.domain.dim != 2:
            raise ValueError(f"NIGMatern is written for 2-D boxes (α = 2, ν = 1), got dimension {self.domain.dim}")
        if self.space.names != ("range", "mu", "eta"):
            raise ValueError(f"NIGMatern's parameters are (range, mu, eta), got {self.space.names}")

    @classmethod
    def default_space(cls, dim: int = 2) -> ParameterSpace:
        return nig_space()

    def _matern(self, theta):
        """The same operator as the Matérn's at ν = 1: (MaternSPDE, its θ = (log range, 1))."""
        return MaternSPDE(self.domain), jnp.stack([theta[0], jnp.ones_like(theta[0])])

    def log_symbol(self, eigenvalues, theta):
        """The Matérn's log τ + log(κ² + λ_k) at ν = 1 (the noise law does not enter the operator)."""
        m, th = self._matern(theta)
        return m.log_symbol(eigenvalues, th)

    def spectral_feature(self, eigenvalues, theta):
        m, th = self._matern(theta)
        return m.spectral_feature(eigenvalues, th)

    def tail_variance(self, lam_min, theta, **kw):
        """The Matérn's at ν = 1: the covariance does not depend on the noise law (unit variance)."""
        m, th = self._matern(theta)
        return m.tail_variance(lam_min, th, **kw)

    def noise_params(self, theta):
        """The noise's (μ, η) per unit area of the box, (μ/ρ, η/ρ²), from θ = (log ρ, μ, log η) per range²."""
        return jnp.stack([theta[1] * jnp.exp(-theta[0]), jnp.exp(theta[2] - 2.0 * theta[0])])
