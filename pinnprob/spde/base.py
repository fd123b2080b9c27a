"""What an SPDE is: a domain, a named parameter space, a noise law and a weak form.

Two kinds, told apart by type (the loss picks its evaluation from it):

* :class:`DiagonalSPDE` — diagonal on the Laplacian eigenbasis of the box, L_θ φ_k = D_k(θ) φ_k,
  for any real order (the stationary Matérn, (κ² − Δ)^{α/2} τ);
* :class:`LocalSPDE` — an integer-order operator given by its bilinear form
  a_θ(u, ψ) = ∫ (κ² (τu) ψ + H∇(τu)·∇ψ) dx, evaluated by quadrature with first derivatives only
  (integration by parts; Neumann conditions are natural, no boundary term): Lindgren, Rue &
  Lindström (2011, JRSS-B 73(4), §3.2) for (κ²(x) − ∇·H(x)∇)(τ(x)u) = W.

σ enters every prior analytically: the SPDE is written for unit marginal standard deviation.
"""

from __future__ import annotations

import abc
import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from pinnprob.domain import Box
from pinnprob.noise import AbstractNoise
from pinnprob.parameters import ParameterSpace

__all__ = ["AbstractSPDE", "DiagonalSPDE", "LocalSPDE", "LocalCoefficients"]


class AbstractSPDE(eqx.Module):
    """An SPDE L_θ u = Ẇ on a box, with θ in a named :class:`~pinnprob.parameters.ParameterSpace`."""

    domain: eqx.AbstractVar[Box]
    space: eqx.AbstractVar[ParameterSpace]
    noise: eqx.AbstractVar[AbstractNoise]

    @property
    def dim(self) -> int:
        return self.domain.dim

    def noise_params(self, theta: Float[Array, " p"]) -> Float[Array, " q"] | None:
        """The noise law's own parameters at θ (:attr:`~pinnprob.noise.AbstractNoise.param_names`);
        default: none (white noise)."""
        return None

    def check(self, X=None, **values) -> None:
        """One ValueError for parameters (by name) that this SPDE and its training box do not accept;
        ``X`` (n, d), when given, are the sites where the parameters will be used (subclasses check
        fields that vary in space there)."""
        self.space.check(**values)


class DiagonalSPDE(AbstractSPDE):
    """An SPDE diagonal on the box eigenbasis: L_θ φ_k = D_k(θ) φ_k (any real order)."""

    @abc.abstractmethod
    def log_symbol(self, eigenvalues: Float[Array, " K"], theta: Float[Array, " p"]) -> Float[Array, " K"]:
        """log D_k(θ) for unit marginal sd, per eigenvalue λ_k, shape (K,)."""

    def spectral_feature(self, eigenvalues: Float[Array, " K"], theta: Float[Array, " p"]) -> Float[Array, " K"]:
        """A scalar per mode that amplitude networks see next to θ (default: the log symbol)."""
        return self.log_symbol(eigenvalues, theta)

    def tail_variance(self, lam_min: float, theta: Float[Array, " p"], num: int = 401, span: float = 60.0):
        """The variance (σ = 1) of the modes above ``lam_min`` at a point of the box's interior:
        Σ_{λ_k > λ_min} D_k(θ)⁻² φ_k(x)², by Weyl's law — the modes of a d-dimensional box have the
        density dN/dλ = ω_d (d/2) λ^{d/2−1} / (2π)^d per unit volume (ω_d the volume of the unit
        ball; Weyl 1911) and φ_k² averages to 1. Simpson's rule in t = log(λ/λ_min) over [0, span]
        (the integrand decays like e^{−(α − d/2)t}; the span is cut where λ would overflow the
        working precision). Within a few 1/√λ_min of a wall, where the Neumann modes' φ_k² reach 2
        (4 at a corner), this undercounts. ``lam_min`` a positive number (static)."""
        d = self.domain.dim
        omega = math.pi ** (d / 2) / math.gamma(d / 2 + 1)
        lam_min = float(lam_min)
        span = min(span, math.log(float(jnp.finfo(jnp.result_type(float)).max)) - math.log(lam_min) - 4.0)
        num = num + 1 - num % 2  # Simpson's rule needs an odd number of points
        t = jnp.linspace(0.0, span, num)
        lam = lam_min * jnp.exp(t)
        log_f = -2.0 * self.log_symbol(lam, theta) + math.log(omega * d / 2 / (2 * math.pi) ** d) + (d / 2) * jnp.log(lam)
        w = (t[1] - t[0]) / 3.0 * jnp.where(jnp.arange(num) % 2 == 1, 4.0, 2.0).at[0].set(1.0).at[-1].set(1.0)
        return jnp.exp(jax.nn.logsumexp(log_f + jnp.log(w)))


class LocalCoefficients(NamedTuple):
    """The coefficients of a local SPDE at q points: κ² (q,), H (q, d, d), log τ (q,), ∇ log τ (q, d)."""

    kappa2: Float[Array, " q"]
    H: Float[Array, "q d d"]
    log_tau: Float[Array, " q"]
    grad_log_tau: Float[Array, "q d"]


class LocalSPDE(AbstractSPDE):
    """(κ²(x) − ∇·H(x)∇)(τ(x) u) = Ẇ, given by its coefficients; the weak form is the bilinear form
    a_θ(u, ψ) = ∫ κ² τu ψ + H(τ∇u + uτ∇log τ)·∇ψ dx (no boundary term: Neumann)."""

    @abc.abstractmethod
    def coefficients(self, x: Float[Array, "q d"], theta: Float[Array, " p"]) -> LocalCoefficients:
        """κ², H, log τ and ∇ log τ at the points x, for unit marginal sd."""

    def tested(self, u: Float[Array, "q m"], grad_u: Float[Array, "q m d"], psi: Float[Array, "q K"],
               grad_psi: Float[Array, "q K d"], weights: Float[Array, " q"], x: Float[Array, "q d"],
               theta: Float[Array, " p"]) -> Float[Array, "K m"]:
        """a_θ(u_j, ψ_k) by quadrature for m fields u_j and K test functions ψ_k: shape (K, m)."""
        c = self.coefficients(x, theta)
        tau = jnp.exp(c.log_tau)
        v = tau[:, None] * u  # τu
        grad_v = tau[:, None, None] * (grad_u + u[..., None] * c.grad_log_tau[:, None, :])  # ∇(τu)
        Hgrad = jnp.einsum("qab,qmb->qma", c.H, grad_v)
        wk = weights[:, None]
        mass = (wk * c.kappa2[:, None] * psi).T @ v  # ∫ κ² τu ψ
        stiff = jnp.einsum("qk,qkd,qmd->km", wk, grad_psi, Hgrad)  # ∫ H∇(τu)·∇ψ
        return mass + stiff
