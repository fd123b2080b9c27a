"""The non-stationary, anisotropic Matérn SPDE with α = 2 (ν = 1) on the unit square:

    (κ²(x) − ∇·H∇)(τ(x) u) = W,   Neumann boundary,

(Lindgren, Rue & Lindström 2011, JRSS-B 73(4), §3.2; Fuglstad et al. 2015, Spatial Statistics 14).
Parameters in the user's terms: a log-range field log ρ(x) = log ρ₀ + t₁(x₁ − ½) + t₂(x₂ − ½)
(ρ₀ the range at the centre, t the trends of log range per unit length), κ(x) = √8/ρ(x); a constant
anisotropy H = R(angle) diag(r, 1/r) R(angle)ᵀ with r = ``ratio``, the ratio of the ranges along and
across the direction ``angle`` (det H = 1); and τ(x) from unit marginal sd, locally:
σ² = Γ(ν)/(Γ(α)(4π)^{d/2} κ^{2ν} τ² √det H) = 1/(4π κ² τ²) (Lindgren et al. 2011, §2; their eq. for
σ² with the metric H). With constant coefficients the covariance is Matérn ν = 1 in the metric H⁻¹.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from pinnprob._validation import is_traced
from pinnprob.domain import Box
from pinnprob.fem import anisotropy_matrix
from pinnprob.noise import AbstractNoise, GaussianWhiteNoise
from pinnprob.parameters import Axis, ParameterSpace
from pinnprob.spde.base import LocalCoefficients, LocalSPDE

__all__ = ["NonStationaryMatern", "nonstationary_space"]


def nonstationary_space(range=(0.08, 0.25), range_trend_x1=(-0.7, 0.7), range_trend_x2=(-0.7, 0.7),
                        angle=(0.0, math.pi), ratio=(1.0, 2.5)) -> ParameterSpace:
    """The parameters of :class:`NonStationaryMatern` over a training box (defaults: the shipped one)."""
    return ParameterSpace((
        Axis("range", *range, log=True, length_power=1, doc="range ρ₀ at the centre of the square"),
        Axis("range_trend_x1", *range_trend_x1, length_power=-1, doc="d log ρ / d x₁"),
        Axis("range_trend_x2", *range_trend_x2, length_power=-1, doc="d log ρ / d x₂"),
        Axis("angle", *angle, doc="direction of the longer range, radians from the x₁ axis"),
        Axis("ratio", *ratio, log=True, doc="ratio of the ranges along and across the direction"),
    ))


class NonStationaryMatern(LocalSPDE):
    """(κ²(x) − ∇·H∇)(τ(x)u) = W on the unit square, ν = 1, θ = (log ρ₀, t₁, t₂, angle, log ratio).

    ``field_bounds`` (static) are the ranges ρ(x) the prior claims at every site; :meth:`check`
    refuses parameters whose range field leaves them at a site."""

    domain: Box
    space: ParameterSpace = eqx.field(static=True, default_factory=nonstationary_space)
    noise: AbstractNoise = eqx.field(default_factory=GaussianWhiteNoise)
    field_bounds: tuple = eqx.field(static=True, default=(0.05, 0.5))

    def __check_init__(self):
        if self.domain.dim != 2:
            raise ValueError(f"NonStationaryMatern is 2-D, got a {self.domain.dim}-D domain")

    @classmethod
    def default_space(cls, dim: int = 2) -> ParameterSpace:
        return nonstationary_space()

    # -- the user's terms ----------------------------------------------------------------------
    @staticmethod
    def log_range_field(x, theta):
        """log ρ(x) for points x (..., 2): log ρ₀ + t₁(x₁ − ½) + t₂(x₂ − ½)."""
        x = jnp.asarray(x)
        return theta[0] + theta[1] * (x[..., 0] - 0.5) + theta[2] * (x[..., 1] - 0.5)

    def range_field(self, x, theta):
        """ρ(x), the practical range at points x (..., 2) (unit-box units)."""
        return jnp.exp(self.log_range_field(x, theta))

    def H(self, theta):
        """The anisotropy matrix (2, 2), det H = 1 (:func:`pinnprob.fem.anisotropy_matrix`, the FEM truth's)."""
        return anisotropy_matrix(jnp.asarray(theta[3]), jnp.asarray(theta[4]))

    def coefficients(self, x, theta) -> LocalCoefficients:
        log_rho = self.log_range_field(x, theta)
        log_kappa = 0.5 * math.log(8.0) - log_rho  # κ = √(8ν)/ρ, ν = 1
        # σ² = 1/(4π κ² τ² √det H) = 1 with det H = 1: log τ = −log κ − ½ log 4π
        log_tau = -log_kappa - 0.5 * math.log(4.0 * math.pi)
        grad = jnp.broadcast_to(jnp.stack([theta[1], theta[2]]), x.shape)  # ∇ log τ = ∇ log ρ
        H = jnp.broadcast_to(self.H(theta), x.shape[:-1] + (2, 2))
        return LocalCoefficients(jnp.exp(2 * log_kappa), H, log_tau, grad)

    def check(self, X=None, **values) -> None:
        """The parameters in the training box, and (given sites X (n, 2)) the range field inside
        ``field_bounds`` at every site: one ValueError."""
        super().check(**values)
        if X is None or any(is_traced(v) for v in values.values()):
            return
        X = np.asarray(X, np.float64)
        lr = (math.log(float(values["range"])) + float(values["range_trend_x1"]) * (X[:, 0] - 0.5)
              + float(values["range_trend_x2"]) * (X[:, 1] - 0.5))
        rho = np.exp(lr)
        lo, hi = self.field_bounds
        bad = (rho < lo * (1 - 1e-6)) | (rho > hi * (1 + 1e-6))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"the range field leaves [{lo:g}, {hi:g}] (unit-box units) at {int(bad.sum())} site(s) "
                             f"(first: row {i}, range {rho[i]:.4g}); use smaller trends or another range")

