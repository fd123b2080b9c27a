"""Weak-form losses for local SPDEs: the bilinear form by quadrature, against tested noise.

For a :class:`~pinnprob.spde.LocalSPDE` with bilinear form a_θ(u, ψ) (first derivatives only) and
test functions ψ_1..ψ_K (compactly supported bumps; a support cut by the boundary tests the natural
Neumann condition), the residuals are r_k = a_θ(u, ψ_k) and the tested noise is N(0, Σ) with
Σ = noise.tested_covariance(G), G_kl = ∫ ψ_k ψ_l (Lindgren, Rue & Lindström 2011, §2.3: the same
Galerkin identity that gives the finite-element precision). The loss is D(law of r, N(0, Σ)):

* Gaussian generators, u = Ψ(x) z: r = R z with R_kj = a_θ(ψ_j-th column of Ψ, ψ_k), so
  Cov r = R Rᵀ and KL / W2 are closed-form;
* process convolutions (:class:`~pinnprob.generators.AbstractConvolutionGenerator`), whose z_j is the
  noise of cell j: the residual map is known column by column, R*_kj = h ψ_k(c_j) (each column is
  the operator's Green's function at c_j, tested), and the loss is ‖R − R*‖²_F / ‖R*‖²_F over a
  random subset of cells — an upper bound of W2²(law of r, tested noise)/‖R*‖², since
  W2(N(0, RRᵀ), N(0, R*R*ᵀ)) ≤ ‖R − R*‖_F. Both derivatives are moved onto the test functions,
  a_θ(v, ψ) = ∫ v (κ²ψ − ∇·H∇ψ) dx + ∮ v n·H∇ψ ds (H constant in x), so the kernel's log
  singularity is integrated, never differentiated;
* push-forward generators: samples of r, sample-based divergences.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from pinnprob.generators.base import AbstractConvolutionGenerator, AbstractGaussianGenerator, AbstractGenerator
from pinnprob.losses import GAUSSIAN_DIVERGENCES, check_divergence, gaussian_residual_divergence, sample_divergence
from pinnprob.spde.base import LocalSPDE

__all__ = ["LocalWeakFormLoss", "field_and_gradient"]


def field_and_gradient(fn, X: Float[Array, "q d"]):
    """(f(X), ∇f(X)) for a pointwise map ``fn`` (d,) → (m,): shapes (q, m) and (q, m, d), by forward
    mode (one pass per dimension d)."""
    val = jax.vmap(fn)(X)
    grad = jax.vmap(jax.jacfwd(fn))(X)
    return val, grad


class LocalWeakFormLoss(eqx.Module):
    """D(law of (a_θ(u, ψ_k))_k, tested noise) for one θ (p,) of a local SPDE.

    ``test`` has ``point(x) -> (K,)`` (e.g. :class:`~pinnprob.testfunctions.BumpTestFunctions`);
    ``quad_points`` (q, d), ``quad_weights`` (q,) integrate over the domain. ``__call__(generator, key,
    theta) -> scalar``, per test function (divided by K)."""

    spde: LocalSPDE
    test: eqx.Module
    quad_points: Float[Array, "q d"]
    quad_weights: Float[Array, " q"]
    gram: Float[Array, "K K"]
    boundary_points: Float[Array, "b d"] | None
    boundary_normals: Float[Array, "b d"] | None
    boundary_weights: Float[Array, " b"] | None
    divergence: str = eqx.field(static=True, default="kl")
    num_samples: int = eqx.field(static=True, default=256)
    jitter: float = eqx.field(static=True, default=1e-4)
    num_cells: int = eqx.field(static=True, default=64)

    def __init__(self, spde: LocalSPDE, test, quad_points, quad_weights, divergence: str = "kl",
                 num_samples: int = 256, jitter: float = 1e-4, boundary=None, num_cells: int = 64):
        check_divergence(divergence)
        self.spde, self.test = spde, test
        self.quad_points, self.quad_weights = jnp.asarray(quad_points), jnp.asarray(quad_weights)
        psi = jax.vmap(test.point)(self.quad_points)
        self.gram = (psi * self.quad_weights[:, None]).T @ psi  # G by the same quadrature as the residuals
        self.divergence, self.num_samples, self.jitter = divergence, int(num_samples), float(jitter)
        # (points, outward normals, weights) of a rule on the boundary, for the paired path's ∮ term
        if boundary is None:
            self.boundary_points = self.boundary_normals = self.boundary_weights = None
        else:
            self.boundary_points, self.boundary_normals, self.boundary_weights = (jnp.asarray(b) for b in boundary)
        self.num_cells = int(num_cells)

    def target(self) -> Float[Array, "K K"]:
        """Covariance of the tested noise, (K, K)."""
        return self.spde.noise.tested_covariance(self.gram)

    def residual_map(self, gen: AbstractGaussianGenerator, theta) -> Float[Array, "K m"]:
        """R (K, m): r = R z for a Gaussian generator, R_kj = a_θ(Ψ_{·j}, ψ_k) by quadrature."""
        feats = lambda x: gen.basis_matrix(x[None], theta)[0]  # noqa: E731  (d,) → (m,)
        u, gu = field_and_gradient(feats, self.quad_points)
        psi, gpsi = field_and_gradient(self.test.point, self.quad_points)
        return self.spde.tested(u, gu, psi, gpsi, self.quad_weights, self.quad_points, theta)

    def paired(self, gen: AbstractConvolutionGenerator, key: PRNGKeyArray, theta) -> Array:
        """‖R − R*‖²_F / ‖R*‖²_F over ``num_cells`` random cells (see the module notes)."""
        C = gen.centres()
        idx = jax.random.choice(key, C.shape[0], (self.num_cells,), replace=False)
        v = gen.kernel_columns(self.quad_points, theta, idx)  # (q, s) = h k(x_q, c_j)
        c = self.spde.coefficients(self.quad_points, theta)
        psi = jax.vmap(self.test.point)(self.quad_points)  # (q, K)
        hess = jax.vmap(jax.jacfwd(jax.jacfwd(self.test.point)))(self.quad_points)  # (q, K, d, d), forward mode
        adj = c.kappa2[:, None] * psi - jnp.einsum("qab,qkab->qk", c.H, hess)  # κ²ψ − ∇·H∇ψ (H constant)
        R = (self.quad_weights[:, None] * adj).T @ v  # (K, s)
        if self.boundary_points is not None:
            xb = self.boundary_points
            vb = gen.kernel_columns(xb, theta, idx)  # (b, s)
            Hb = self.spde.coefficients(xb, theta).H
            gpsi = jax.vmap(jax.jacfwd(self.test.point))(xb)  # (b, K, d)
            flux = jnp.einsum("bd,bde,bke->bk", self.boundary_normals, Hb, gpsi)  # n·H∇ψ
            R = R + (self.boundary_weights[:, None] * flux).T @ vb
        target = gen.spacing ** (C.shape[1] / 2.0) * jax.vmap(self.test.point)(C[idx]).T  # h^{d/2} ψ_k(c_j)
        return jnp.sum((R - target) ** 2) / jnp.sum(target**2)

    def __call__(self, gen: AbstractGenerator, key: PRNGKeyArray, theta: Float[Array, " p"]) -> Array:
        if isinstance(gen, AbstractConvolutionGenerator):
            return self.paired(gen, key, theta)
        target = self.target()
        K = target.shape[0]
        if isinstance(gen, AbstractGaussianGenerator):
            R = self.residual_map(gen, theta)
            if self.divergence in GAUSSIAN_DIVERGENCES:
                return gaussian_residual_divergence(self.divergence, R, target, self.jitter)
            k1, k2, k3 = jax.random.split(key, 3)
            x = jax.random.normal(k1, (self.num_samples, R.shape[1])) @ R.T
        else:
            k1, k2, k3 = jax.random.split(key, 3)
            z = jax.random.normal(k1, (self.num_samples, gen.latent_dim))
            psi, gpsi = field_and_gradient(self.test.point, self.quad_points)

            def one(zz):
                u, gu = field_and_gradient(lambda x: gen(x[None], zz, theta), self.quad_points)
                return self.spde.tested(u, gu, psi, gpsi, self.quad_weights, self.quad_points, theta)[:, 0]

            x = jax.vmap(one)(z)
        L = jnp.linalg.cholesky(target + 1e-10 * jnp.eye(K))
        y = jax.random.normal(k2, (self.num_samples, K)) @ L.T
        name = {"kl": "kl_mm", "w2": "w2_mm"}.get(self.divergence, self.divergence)
        return sample_divergence(name, k3, x, y, target) / K
