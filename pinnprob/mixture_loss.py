"""The weak-form loss of a variance-mixture generator: an exact second-moment term plus a sample
divergence against exact draws of the tested type-G noise.

For a diagonal SPDE with test functions φ_k the box eigenbasis, the residuals are r_k = D_k(θ) ⟨u, φ_k⟩.
The generator's tested noise has covariance I by construction
(:class:`~pinnprob.generators.VarianceMixtureGenerator`), so Cov r = diag(s²), s_k = D_k a_k, and
the Gaussian part of the loss is the exact KL per mode, ½(s_k² − 1 − log s_k²). The rest of the law
(skewness, tails, the dependence the shared mixing variables create) is compared from samples:
residuals tested against ``num_modes`` random eigenfunctions and ``num_bumps`` compactly supported
bumps of the range's width at random centres (the bumps see the local averages whose tails the field
inherits; single cosines average the noise over the whole box), against the same test functions of
exact draws of the noise (:meth:`~pinnprob.noise.AbstractNoise.cell_masses`) on the generator's cells.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from pinnprob.losses import SAMPLE_DIVERGENCES, mode_probabilities, sample_divergence
from pinnprob.spde.base import DiagonalSPDE
from pinnprob.testfunctions.eigen import BoxEigenbasis, _eigenfunction_1d

__all__ = ["MixtureWeakFormLoss", "bump_coefficients"]


def bump_coefficients(basis: BoxEigenbasis, centres: Float[Array, "b d"], width: Float[Array, ""],
                      num_points: int = 512) -> Float[Array, "K b"]:
    """⟨ψ_b, φ_k⟩ for the product bumps ψ_b(x) = Π_i cos²(π(x_i − c_bi)/(2w)) on |x_i − c_bi| < w (cut by
    the box), by the midpoint rule with ``num_points`` per axis; columns scaled to unit norm, (K, b)."""
    out = None
    for i, (L, Mi) in enumerate(zip(basis.domain.lengths, basis.grid, strict=True)):
        t = (jnp.arange(num_points) + 0.5) * (L / num_points)
        d = (t[None, :] - centres[:, i : i + 1]) / width
        b = jnp.where(jnp.abs(d) < 1.0, jnp.cos(0.5 * math.pi * d) ** 2, 0.0)  # (b, Q)
        f = _eigenfunction_1d(jnp.arange(Mi)[None, :], t[:, None], L, basis.domain.bc)  # (Q, Mi)
        hat = (b @ f) * (L / num_points)  # (b, Mi)
        col = hat[:, basis.modes[:, i]].T  # (K, b)
        out = col if out is None else out * col
    return out / jnp.linalg.norm(out, axis=0, keepdims=True)


class MixtureWeakFormLoss(eqx.Module):
    """KL of the residuals' second moments + a sample divergence of their law against the tested
    noise's, for one θ (p,): ``__call__(generator, key, theta) -> scalar`` (vmap it over a batch)."""

    spde: DiagonalSPDE
    divergence: str = eqx.field(static=True, default="energy")
    num_samples: int = eqx.field(static=True, default=256)
    num_modes: int = eqx.field(static=True, default=64)
    num_bumps: int = eqx.field(static=True, default=32)
    bump_width: float = eqx.field(static=True, default=1.0)  # in practical ranges
    kl_thetas: int = eqx.field(static=True, default=8)
    kl_modes: int = eqx.field(static=True, default=512)

    def __check_init__(self):
        if self.divergence not in SAMPLE_DIVERGENCES + ("kl",):
            raise ValueError(f"the variance-mixture loss takes 'kl' (the exact second-moment term alone; the "
                             f"mixing law stays at its base) or a sample divergence {SAMPLE_DIVERGENCES}, "
                             f"got {self.divergence!r}")

    def second_moment_kl(self, gen, key, theta) -> Array:
        """KL(N(0, s_k²) ‖ N(0, 1)) averaged over ``kl_modes`` modes drawn ∝ (λ_k + λ₁)^{-d/2} (about
        uniform in log λ, so that the low modes, which carry the covariance, are not drowned by the
        many high ones), exact in each (the generator's tested noise has covariance I)."""
        lam = gen.basis.eigenvalues
        lam = lam[jax.random.choice(key, lam.shape[0], (self.kl_modes,), p=mode_probabilities(lam, gen.basis.domain.dim))]
        log_s = self.spde.log_symbol(lam, theta) + gen.log_amplitudes(theta, lam)
        return jnp.mean(0.5 * (jnp.exp(2.0 * log_s) - 1.0 - 2.0 * log_s))

    def test_matrix(self, key: PRNGKeyArray, gen, theta) -> Float[Array, "K t"]:
        """The test functions of this step as columns over the modes: ``num_modes`` unit vectors (modes
        drawn ∝ (λ + λ₁)^{-d/2}) and ``num_bumps`` bumps of width ``bump_width`` ranges, (K, t)."""
        basis = gen.basis
        k1, k2 = jax.random.split(key)
        lam = basis.eigenvalues
        idx = jax.random.choice(k1, lam.shape[0], (self.num_modes,), replace=False,
                                p=mode_probabilities(lam, basis.domain.dim))
        E = jax.nn.one_hot(idx, lam.shape[0]).T
        centres = jax.random.uniform(k2, (self.num_bumps, basis.domain.dim)) * jnp.asarray(basis.domain.lengths)
        width = self.bump_width * jnp.exp(theta[0])  # θ_0 = log range
        return jnp.concatenate([E, bump_coefficients(basis, centres, width)], axis=1)

    def residual_samples(self, key, gen, theta) -> tuple[Float[Array, "S K"], Float[Array, "S K"]]:
        """(generated residuals D ⊙ ⟨u, φ⟩ with the amplitudes held fixed, exact tested noise), each (S, K)."""
        k1, k2, k3 = jax.random.split(key, 3)
        log_d = self.spde.log_symbol(gen.basis.eigenvalues, theta)
        # the two halves of the latent drawn apart: XLA CPU recomputes a single fused draw per slice
        half = (self.num_samples, gen.latent_dim // 2)
        z = jnp.concatenate([jax.random.normal(k1, half), jax.random.normal(k3, half)], axis=1)
        # the exact KL trains the amplitudes; the samples train the mixing law only (through them the
        # amplitudes would trade the variance for the tails)
        scale = jax.lax.stop_gradient(jnp.exp(log_d) * gen.amplitudes(theta))
        r = jax.vmap(lambda zz: gen.projection(gen.noise(zz, theta)))(z) * scale
        areas = jnp.full(gen.num_cells, gen.cell_area)
        m = self.spde.noise.cell_masses(k2, areas, self.num_samples, self.spde.noise_params(theta))
        y = gen.projection(m / math.sqrt(gen.cell_area))
        return r, y

    def __call__(self, gen, key: PRNGKeyArray, theta: Float[Array, " p"]) -> Array:
        k_test, k_samp, k_div, k_theta, k_kl = jax.random.split(key, 5)
        # the exact term costs little next to the samples: averaged over θ and kl_thetas more from the box
        thetas = jnp.concatenate([theta[None], self.spde.space.sample(k_theta, self.kl_thetas)])
        keys = jax.random.split(k_kl, thetas.shape[0])
        kl = jnp.mean(jax.vmap(lambda k, t: self.second_moment_kl(gen, k, t))(keys, thetas))
        if self.divergence == "kl":
            return kl
        T = self.test_matrix(k_test, gen, theta)
        r, y = self.residual_samples(k_samp, gen, theta)
        x, y = r @ T, y @ T
        d = sample_divergence(self.divergence, k_div, x, y, jnp.eye(T.shape[1])) / T.shape[1]
        return kl + d
