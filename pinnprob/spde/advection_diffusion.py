"""The advection–diffusion SPDE of Clarotto et al. (2024, Spatial Statistics 62, 100847, eq. 1):

    [∂_t + (1/c)(κ² − ∇·H∇)^α + (1/c) γ·∇] u(x, t) = (τ/√c) Ẇ(x, t),

Ẇ space-time white noise, on a periodic spatial box (a torus) × time. Every term is diagonal in the
Fourier modes e^{iω·x}: the coefficient of mode ω is a complex Ornstein–Uhlenbeck process with rate
λ_ω = [(κ² + ωᵀHω)^α + i γ·ω]/c (Clarotto et al. 2024, §2.2), and the stationary solution's spatial
marginal at a fixed time has the spectral density τ²/(2(κ² + ωᵀHω)^α): a Matérn field with
ν = α − d/2 in the metric H⁻¹ (so α > d/2; α = 1 in 2-D has no point values).

Parameters in the user's terms, and their conversions (both ways: :func:`to_operator_params`,
:func:`from_operator_params`):

* ``range`` ρ = √(8ν)/κ, ν = α − d/2: the practical range of the spatial marginal;
* ``time_range`` ρ_t = 2c/κ^{2α}: the lag at which the correlation of the slowest mode (the spatial
  mean, rate κ^{2α}/c) falls to e^{−2} ≈ 0.135 — the Matérn practical-range convention for an
  exponential; a site's own autocorrelation falls faster (its modes are faster);
* ``velocity_x1`` (, ``velocity_x2``) v = γ/c: the pattern moves by v·s in a lag s (the correlation
  of u(x, t + s) with u(y, t) peaks at x − y = v s); length per time;
* ``angle``, ``ratio`` (2-D): H = R(angle) diag(r, 1/r) R(angle)ᵀ, det H = 1
  (:func:`pinnprob.fem.anisotropy_matrix`);
* ``alpha``: the order α of the spatial operator;
* σ, the marginal sd, enters analytically: τ² = 2σ² Γ(α) (4π)^{d/2} κ^{2ν} √det H / Γ(ν).

All functions are pure ``jax.numpy`` and broadcast over their arguments.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln
from jaxtyping import Array, ArrayLike, Float
from scipy import special

from pinnprob.domain import Box
from pinnprob.fem import anisotropy_matrix
from pinnprob.noise import AbstractNoise, GaussianWhiteNoise
from pinnprob.parameters import Axis, ParameterSpace
from pinnprob.spde.base import AbstractSPDE

__all__ = ["AdvectionDiffusion", "AdvectionDiffusionParams", "advection_diffusion_space", "to_operator_params",
           "from_operator_params", "velocity_names"]


def velocity_names(dim: int) -> tuple[str, ...]:
    """The names of the velocity's components: ``velocity_x1`` (, ``velocity_x2``)."""
    return tuple(f"velocity_x{i + 1}" for i in range(dim))


class AdvectionDiffusionParams(NamedTuple):
    """The operator's parameters: κ, c, τ (scalars), γ (d,), H (d, d), α."""

    kappa: Array
    c: Array
    tau: Array
    gamma: Array
    H: Array
    alpha: Array


def _xp(*args):
    # NumPy in, NumPy out (float64, for the truths); JAX arrays in, JAX out (traceable)
    import jax

    return jnp if any(isinstance(a, jax.Array) for a in args) else np


def _log_tau2_over_sigma2(xp, kappa, alpha, det_h, d):
    # σ² = (τ²/2) ∫ (κ² + ωᵀHω)^{−α} dω/(2π)^d = τ² Γ(ν) / (2 Γ(α) (4π)^{d/2} κ^{2ν} √det H), ν = α − d/2
    lgamma = gammaln if xp is jnp else special.gammaln
    nu = alpha - d / 2.0
    return (math.log(2.0) + lgamma(alpha) + (d / 2.0) * math.log(4.0 * math.pi) + 2.0 * nu * xp.log(kappa)
            + 0.5 * xp.log(det_h) - lgamma(nu))


def to_operator_params(*, range: ArrayLike, time_range: ArrayLike, velocity: ArrayLike, alpha: ArrayLike,
                       sigma: ArrayLike = 1.0, H: ArrayLike | None = None) -> AdvectionDiffusionParams:
    """(ρ, ρ_t, v (d,), α, σ, H) → (κ, c, τ, γ, H, α); d is the length of ``velocity``; H defaults to I.
    NumPy (float64) for NumPy or Python inputs, JAX if any input is a JAX array."""
    xp = _xp(range, time_range, velocity, alpha, sigma, H)
    v = xp.atleast_1d(xp.asarray(velocity, dtype=float))
    d = v.shape[-1]
    H = xp.eye(d) if H is None else xp.asarray(H, dtype=float)
    alpha = xp.asarray(alpha, dtype=float)
    nu = alpha - d / 2.0
    kappa = xp.sqrt(8.0 * nu) / xp.asarray(range, dtype=float)
    c = 0.5 * xp.asarray(time_range, dtype=float) * kappa ** (2.0 * alpha)
    tau = xp.asarray(sigma, dtype=float) * xp.exp(0.5 * _log_tau2_over_sigma2(xp, kappa, alpha, xp.linalg.det(H), d))
    return AdvectionDiffusionParams(kappa, c, tau, c * v, H, alpha)


def from_operator_params(p: AdvectionDiffusionParams) -> dict:
    """(κ, c, τ, γ, H, α) → the user's terms: ``range``, ``time_range``, ``velocity`` (d,), ``alpha``, ``sigma``."""
    xp = _xp(*p)
    d = xp.atleast_1d(p.gamma).shape[-1]
    nu = p.alpha - d / 2.0
    sigma = p.tau * xp.exp(-0.5 * _log_tau2_over_sigma2(xp, p.kappa, p.alpha, xp.linalg.det(p.H), d))
    return {"range": xp.sqrt(8.0 * nu) / p.kappa, "time_range": 2.0 * p.c / p.kappa ** (2.0 * p.alpha),
            "velocity": p.gamma / p.c, "alpha": p.alpha, "sigma": sigma}


def advection_diffusion_space(dim: int, range=(0.1, 0.5), time_range=(0.5, 4.0), velocity=(-0.2, 0.2),
                              alpha=None, angle=(0.0, math.pi), ratio=(1.0, 2.5)) -> ParameterSpace:
    """The parameters of :class:`AdvectionDiffusion` in ``dim`` = 1 or 2 space dimensions over a training
    box (lengths in units of the spatial box, times in the same time unit throughout): range, time_range,
    velocity_x1 (, velocity_x2), alpha (, angle, ratio in 2-D). ``alpha`` defaults to [1, 2] in 1-D
    (ν ∈ [½, 3/2]) and [1.5, 2.5] in 2-D (ν ∈ [½, 3/2])."""
    alpha = (1.0, 2.0) if alpha is None and dim == 1 else (1.5, 2.5) if alpha is None else alpha
    axes = [Axis("range", *range, log=True, length_power=1, doc="practical range √(8ν)/κ of the spatial marginal"),
            Axis("time_range", *time_range, log=True, time_power=1,
                 doc="lag 2c/κ^{2α} at which the slowest mode's correlation is e^{−2}")]
    axes += [Axis(n, *velocity, length_power=1, time_power=-1, doc=f"advection velocity γ/c along x{i + 1}")
             for i, n in enumerate(velocity_names(dim))]
    axes.append(Axis("alpha", *alpha, doc="order α of the spatial operator (ν = α − d/2)"))
    if dim == 2:
        axes += [Axis("angle", *angle, doc="direction of the longer range, radians from the x₁ axis"),
                 Axis("ratio", *ratio, log=True, doc="ratio of the ranges along and across the direction")]
    return ParameterSpace(tuple(axes))


class AdvectionDiffusion(AbstractSPDE):
    """The advection–diffusion SPDE on a periodic box (``domain``, bc ``"periodic"``, d = 1 or 2) × time,
    written for unit marginal sd; θ over :func:`advection_diffusion_space`.

    Diagonal in the space-time Fourier modes e^{i(ω·x + ϖt)}: its symbol is
    D(ω, ϖ) = (√c/τ)[i ϖ + λ_ω] with λ_ω = [(κ² + ωᵀHω)^α + iγ·ω]/c (Clarotto et al. 2024, §2.2)."""

    domain: Box
    space: ParameterSpace = eqx.field(static=True, default=None)
    noise: AbstractNoise = eqx.field(default_factory=GaussianWhiteNoise)

    @classmethod
    def default_space(cls, dim: int = 1) -> ParameterSpace:
        """:func:`advection_diffusion_space` of ``dim`` with its default box."""
        return advection_diffusion_space(dim)

    def __post_init__(self):
        if self.space is None:
            object.__setattr__(self, "space", advection_diffusion_space(self.domain.dim))

    def __check_init__(self):
        d = self.domain.dim
        if d not in (1, 2):
            raise ValueError(f"AdvectionDiffusion is 1-D or 2-D in space, got a {d}-D domain")
        if self.domain.bc != "periodic":
            raise ValueError(f"AdvectionDiffusion lives on a periodic box (a torus), got bc={self.domain.bc!r}")
        lo = self.space.bounds("alpha")[0]
        if lo <= d / 2:
            raise ValueError(f"alpha must exceed d/2 = {d / 2:g} (ν = α − d/2 > 0: with α ≤ d/2 the field has no "
                             f"point values), got a training box from {lo:g}")

    @property
    def velocity_names(self) -> tuple[str, ...]:
        return velocity_names(self.dim)

    def operator_params(self, theta: Float[Array, " p"]) -> AdvectionDiffusionParams:
        """θ (natural coordinates of :attr:`space`) → (κ, c, τ, γ, H, α), for σ = 1."""
        v = self.space.values(theta)
        H = (anisotropy_matrix(jnp.asarray(v["angle"]), jnp.log(v["ratio"])) if self.dim == 2 else jnp.eye(1))
        return to_operator_params(range=v["range"], time_range=v["time_range"],
                                  velocity=jnp.stack([v[n] for n in self.velocity_names]), alpha=v["alpha"], H=H)

    def rates(self, omega: Float[Array, "K d"], theta: Float[Array, " p"]) -> tuple[Float[Array, " K"], Float[Array, " K"]]:
        """Re λ_ω and Im λ_ω, the complex OU rate of each spatial Fourier mode ω (K, d): shapes (K,), (K,)."""
        p = self.operator_params(theta)
        omega = jnp.asarray(omega)
        q = jnp.einsum("ka,ab,kb->k", omega, p.H, omega)
        return (p.kappa**2 + q) ** p.alpha / p.c, omega @ p.gamma / p.c

    def log_mode_variance(self, omega: Float[Array, "K d"], theta: Float[Array, " p"]) -> Float[Array, " K"]:
        """log of τ²/(2(κ² + ωᵀHω)^α) = (τ²/c)/(2 Re λ_ω): the stationary variance of mode ω's coefficient
        per unit volume of the torus (the spectral density of the spatial marginal), shape (K,)."""
        p = self.operator_params(theta)
        omega = jnp.asarray(omega)
        q = jnp.einsum("ka,ab,kb->k", omega, p.H, omega)
        return 2.0 * jnp.log(p.tau) - math.log(2.0) - p.alpha * jnp.log(p.kappa**2 + q)

    def log_symbol(self, frequencies: Float[Array, "K e"], theta: Float[Array, " p"]) -> Float[Array, " K"]:
        """log |D(ω, ϖ)| = ½ log(c/τ²) + ½ log((Re λ_ω)² + (ϖ + Im λ_ω)²) for space-time frequencies
        (ω, ϖ) in the rows of ``frequencies`` (K, d + 1), the time frequency last; σ = 1."""
        frequencies = jnp.asarray(frequencies)
        re, im = self.rates(frequencies[:, :-1], theta)
        p = self.operator_params(theta)
        return 0.5 * (jnp.log(p.c) - 2.0 * jnp.log(p.tau)) + 0.5 * jnp.log(re**2 + (frequencies[:, -1] + im) ** 2)
