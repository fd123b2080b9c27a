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
from typing import NamedTuple

import equinox as eqx
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
