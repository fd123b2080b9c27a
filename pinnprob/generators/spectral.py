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

from pinnprob.generators.base import AbstractDiagonalGenerator
from pinnprob.spde.base import DiagonalSPDE
from pinnprob.testfunctions.eigen import BoxEigenbasis

__all__ = ["SpectralGenerator"]


class SpectralGenerator(AbstractDiagonalGenerator):
    """Gaussian generator with trunk = box eigenbasis and branch = amplitude network a_w(θ, λ), for a
    diagonal SPDE (its symbol's feature per mode is the network's frequency input)."""

    basis: BoxEigenbasis
    net: eqx.nn.MLP
    spde: DiagonalSPDE
    log_lambda_max: float = eqx.field(static=True)

    def __init__(self, key: PRNGKeyArray, basis: BoxEigenbasis, spde: DiagonalSPDE,
                 width: int = 64, depth: int = 3, log_lambda_max: float | None = None):
        self.basis = basis
        self.spde = spde
        self.net = eqx.nn.MLP(spde.space.dim + 1, "scalar", width, depth, activation=jax.nn.tanh, key=key)
        self.log_lambda_max = float(log_lambda_max if log_lambda_max is not None
                                    else math.log1p(float(jnp.max(basis.eigenvalues))))

    @property
    def space(self):
        return self.spde.space

    def log_amplitudes(self, theta, eigenvalues: Float[Array, " K"] | None = None) -> Float[Array, " K"]:
        """log a_w(θ, λ_k) for each eigenvalue (default: the trunk's), shape (K,)."""
        lam = self.basis.eigenvalues if eigenvalues is None else eigenvalues
        th = self.space.normalize(theta)
        # frequency input: the SPDE's feature per mode (for the Matérn log(κ² + λ), the log of the
        # operator's symbol up to τ and the power α/2), scaled to about [−1, 1]; it makes log a nearly
        # bilinear in the inputs
        s = 2.0 * self.spde.spectral_feature(lam, theta) / self.log_lambda_max - 1.0
        inp = jnp.concatenate([jnp.broadcast_to(th, (lam.shape[0], th.shape[-1])), s[:, None]], axis=1)
        return jax.vmap(self.net)(inp)

    def tail_variance(self, theta):
        """The exact spectrum's variance above the trained trunk's largest eigenvalue, by Weyl's law
        (:meth:`~pinnprob.spde.DiagonalSPDE.tail_variance`): what a truncated eigenbasis cannot carry,
        put back as a variance independent between sites (its correlation length is below
        1/√λ_max, 0.0025 of the box for the shipped 2-D trunk). Kept at the trained trunk's cutoff
        when :meth:`with_basis` keeps fewer modes (``fit`` adds the exact variance of those)."""
        return self.spde.tail_variance(math.expm1(self.log_lambda_max), theta)

    def for_inference(self, theta_bounds):
        """With θ of dimension ≤ 2, the branch read from a table over ``theta_bounds``
        (:class:`~pinnprob.generators.TabulatedGenerator`): the same law to ~1e-5, a NUTS gradient
        several times cheaper; otherwise itself."""
        from pinnprob.generators.tabulated import TabulatedGenerator

        if self.space.dim != 2:
            return self
        return TabulatedGenerator(self, theta_bounds[0], theta_bounds[1], num_range=49)

    def with_basis(self, basis: BoxEigenbasis) -> "SpectralGenerator":
        """The same learned amplitude on another truncation of the eigenbasis (e.g. fewer modes)."""
        return eqx.tree_at(lambda g: g.basis, self, basis)
