"""Weak-form losses for diagonal SPDEs: the law of the tested residuals against the tested noise.

For a :class:`~pinnprob.spde.DiagonalSPDE` and test functions φ_1..φ_K the orthonormal eigenbasis
of the box (G = I), the residuals are r_k(z) = ⟨L_θ u(·; z), φ_k⟩ = D_k(θ) ⟨u(·; z), φ_k⟩ (for the
Matérn D_k = τ(κ² + λ_k)^{α/2}; docs/method.md, "The weak form") and the loss is
D(law of r, N(0, I)) for a divergence D. Local SPDEs have their own loss
(:class:`pinnprob.local_loss.LocalWeakFormLoss`).

Three evaluation paths, chosen by the generator's type:

* spectral (trunk = test basis, Gaussian): r_k = s_k ξ_k with s_k = τ(κ² + λ_k)^{α/2} a_k,
  so every Gaussian divergence is a sum over modes; a random subset of modes is
  drawn each step (PINN-style collocation, in frequency);
* Gaussian (any trunk): Cov r = R Rᵀ with R = D Φ_qᵀ diag(w) Ψ(X_q), by quadrature;
* push-forward: samples of r through the network, sample-based divergences only, against draws of
  the SPDE's noise law tested on the basis (N(0, I) for white noise; :meth:`WeakFormLoss.target_samples`).

``weighting="field"`` compares ⟨u, φ_k⟩ with its target law N(0, D_k^{-2}) instead of
r_k with N(0, 1): a decreasing spectral weight, one fix for the pitfall of §5.
"""

from __future__ import annotations


import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from pinnprob import divergences as dv
from pinnprob.generators.base import (
    AbstractDiagonalGenerator,
    AbstractGaussianGenerator,
    AbstractGenerator,
    AbstractPushForwardGenerator,
)
from pinnprob.spde.base import DiagonalSPDE
from pinnprob.testfunctions.eigen import BoxEigenbasis

__all__ = ["WeakFormLoss", "GAUSSIAN_DIVERGENCES", "SAMPLE_DIVERGENCES", "sample_divergence", "check_divergence",
           "gaussian_residual_divergence"]

GAUSSIAN_DIVERGENCES = ("kl", "w2")
SAMPLE_DIVERGENCES = ("sliced_w2", "mmd", "energy", "kl_mm", "w2_mm")


def check_divergence(name: str) -> None:
    if name not in GAUSSIAN_DIVERGENCES + SAMPLE_DIVERGENCES:
        raise ValueError(f"unknown divergence {name!r}; choose from {GAUSSIAN_DIVERGENCES + SAMPLE_DIVERGENCES}")


def gaussian_residual_divergence(name: str, R: Float[Array, "K m"], target: Float[Array, "K K"], jitter: float) -> Array:
    """KL or W2 between N(0, R Rᵀ) (the law of residuals r = R z) and N(0, target), per test function.
    rank(R Rᵀ) ≤ m: KL is infinite when m < K; a jitter relative to the target's scale keeps it finite."""
    K = target.shape[0]
    cov = R @ R.T
    if name == "kl":
        jit = jitter * jnp.mean(jnp.diag(target))
        return dv.gaussian_kl(cov + jit * jnp.eye(K), target) / K
    return dv.gaussian_w2(cov, target) / K


def sample_divergence(name: str, key: PRNGKeyArray, x: Float[Array, "S K"], y: Float[Array, "S K"],
                       target_cov: Float[Array, "K K"]) -> Array:
    if name == "sliced_w2":
        return dv.sliced_wasserstein(key, x, y)
    if name == "mmd":
        return dv.mmd(x, y)
    if name == "energy":
        return dv.energy_distance(x, y)
    if name == "kl_mm":
        return dv.moment_matched_kl(x, target_cov)
    if name == "w2_mm":
        return dv.moment_matched_w2(x, target_cov)
    raise ValueError(f"unknown sample divergence {name!r}; choose from {SAMPLE_DIVERGENCES}")


def mode_probabilities(eigenvalues: Float[Array, " K"], dim: int) -> Float[Array, " K"]:
    """The law modes are drawn from each step, ∝ (λ_k + λ_1)^{-d/2}: about uniform in log λ, so that
    the low frequencies (which carry the field's variance) are not drowned by the many high ones."""
    lam1 = jnp.min(jnp.where(eigenvalues > 0, eigenvalues, jnp.inf))
    p = (eigenvalues + lam1) ** (-dim / 2.0)
    return p / jnp.sum(p)


class WeakFormLoss(eqx.Module):
    """D(law of the weak-form residuals at θ, law of ⟨W, φ⟩) for one θ (p,) of a diagonal SPDE.

    ``__call__(generator, key, theta) -> scalar``; average it over a batch of θ with
    ``jax.vmap``. Losses are per test function (divided by K).
    """

    spde: DiagonalSPDE
    test: BoxEigenbasis
    quad_points: Float[Array, "q d"] | None
    quad_weights: Float[Array, " q"] | None
    divergence: str = eqx.field(static=True)
    weighting: str = eqx.field(static=True, default="none")
    num_samples: int = eqx.field(static=True, default=256)
    num_modes: int | None = eqx.field(static=True, default=None)
    exact_projection: bool = eqx.field(static=True, default=False)
    jitter: float = eqx.field(static=True, default=1e-4)

    def __check_init__(self):
        check_divergence(self.divergence)
        if self.weighting not in ("none", "field"):
            raise ValueError(f"weighting must be 'none' or 'field', got {self.weighting!r}")
        if not self.exact_projection and self.quad_points is None:
            raise ValueError("a quadrature (quad_points, quad_weights) is needed unless exact_projection=True")

    # -- helpers -----------------------------------------------------------------------------
    def mode_probabilities(self) -> Float[Array, " K"]:
        """Sampling law of the modes drawn each step (:func:`mode_probabilities`)."""
        return mode_probabilities(self.test.eigenvalues, self.spde.dim)

    def _project(self, values_q: Float[Array, "q m"]) -> Float[Array, "K m"]:
        """⟨φ_k, v_j⟩ by quadrature."""
        phi = self.test(self.quad_points)
        return phi.T @ (self.quad_weights[:, None] * values_q)

    # -- the three paths ----------------------------------------------------------------------
    def _spectral(self, gen: AbstractDiagonalGenerator, key, theta):
        k_modes, k_div = jax.random.split(key)
        lam = self.test.eigenvalues
        if self.num_modes is not None and self.num_modes < lam.shape[0]:
            idx = jax.random.choice(k_modes, lam.shape[0], (self.num_modes,), p=self.mode_probabilities())
            lam = lam[idx]
        log_d = self.spde.log_symbol(lam, theta)
        log_s = log_d + gen.log_amplitudes(theta, lam)  # log std of r_k
        K = lam.shape[0]
        if self.divergence == "kl":
            # KL(N(0, s²) || N(0, 1)) = ½(s² − 1 − log s²), per mode (invariant to weighting)
            return jnp.mean(0.5 * (jnp.exp(2 * log_s) - 1.0 - 2 * log_s))
        scale = jnp.exp(-log_d) if self.weighting == "field" else jnp.ones_like(log_d)
        if self.divergence == "w2":
            return jnp.mean((scale * (jnp.exp(log_s) - 1.0)) ** 2)
        k1, k2, k3 = jax.random.split(k_div, 3)
        x = jax.random.normal(k1, (self.num_samples, K)) * (jnp.exp(log_s) * scale)
        y = jax.random.normal(k2, (self.num_samples, K)) * scale
        return sample_divergence(self.divergence, k3, x, y, jnp.diag(scale**2)) / K

    def _gaussian(self, gen: AbstractGaussianGenerator, key, theta):
        A = self._project(gen.basis_matrix(self.quad_points, theta))  # (K, m) = ⟨φ_k, ψ_j⟩
        log_d = self.spde.log_symbol(self.test.eigenvalues, theta)
        K = A.shape[0]
        if self.weighting == "field":
            R, target = A, jnp.diag(jnp.exp(-2 * log_d))
        else:
            R, target = jnp.exp(log_d)[:, None] * A, jnp.eye(K)
        if self.divergence in GAUSSIAN_DIVERGENCES:
            return gaussian_residual_divergence(self.divergence, R, target, self.jitter)
        k1, k2, k3 = jax.random.split(key, 3)
        x = jax.random.normal(k1, (self.num_samples, R.shape[1])) @ R.T
        y = jax.random.normal(k2, (self.num_samples, K)) * jnp.sqrt(jnp.diag(target))
        return sample_divergence(self.divergence, k3, x, y, target) / K

    def target_samples(self, key: PRNGKeyArray, theta, num: int) -> Float[Array, "num K"]:
        """``num`` draws of the noise tested against the test basis, (num, K): N(0, I) for white noise,
        the noise law's own draws otherwise (:meth:`~pinnprob.noise.AbstractNoise.orthonormal_samples`)."""
        return self.spde.noise.orthonormal_samples(key, self.test, self.spde.domain, num, self.spde.noise_params(theta))

    def _pushforward(self, gen: AbstractGenerator, key, theta):
        k1, k2, k3 = jax.random.split(key, 3)
        z = jax.random.normal(k1, (self.num_samples, gen.latent_dim))
        if self.exact_projection:
            c = jax.vmap(lambda zz: gen.coefficients(zz, theta))(z)  # (S, K)
        else:
            u_q = jax.vmap(lambda zz: gen(self.quad_points, zz, theta))(z)  # (S, q)
            c = self._project(u_q.T).T
        log_d = self.spde.log_symbol(self.test.eigenvalues, theta)
        K = c.shape[1]
        if self.weighting == "field":
            x, sd = c, jnp.exp(-log_d)
        else:
            x, sd = c * jnp.exp(log_d), jnp.ones(K)
        y = self.target_samples(k2, theta, self.num_samples) * sd
        name = {"kl": "kl_mm", "w2": "w2_mm"}.get(self.divergence, self.divergence)
        return sample_divergence(name, k3, x, y, jnp.diag(sd**2)) / K

    def __call__(self, gen: AbstractGenerator, key: PRNGKeyArray, theta: Float[Array, " p"]) -> Array:
        # the evaluation follows the generator's type: per mode for a diagonal generator whose trunk is
        # the test basis, by quadrature for other Gaussian ones, from samples for push-forward ones
        if isinstance(gen, AbstractDiagonalGenerator) and self.exact_projection:
            return self._spectral(gen, key, theta)
        if isinstance(gen, AbstractGaussianGenerator):
            return self._gaussian(gen, key, theta)
        if isinstance(gen, AbstractPushForwardGenerator) or not self.exact_projection:
            return self._pushforward(gen, key, theta)
        raise TypeError(f"exact_projection needs a generator with coefficients on the test basis, got {type(gen).__name__}")
