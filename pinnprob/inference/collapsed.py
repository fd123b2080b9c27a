"""Gaussian observations with a Gaussian generator: the field integrated out, and recovered afterwards."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions import constraints

from pinnprob.inference.distribution import GenerativeField, _lowrank_gaussian_logpdf

__all__ = ["CollapsedGaussian", "conditional_latent"]


class CollapsedGaussian(dist.Distribution):
    """y = loc + f + ε, f ~ GenerativeField (Gaussian), ε ~ N(0, noise² I), with f integrated out:
    y ~ N(loc, σ²ΨΨᵀ + noise² I). ``log_prob`` by Woodbury (O(n m² + m³)) when n > m, by a dense
    Cholesky (O(n² m + n³)) otherwise. Event shape ``(n,)``."""

    arg_constraints = {"loc": constraints.real_vector, "noise": constraints.positive}
    support = constraints.real_vector
    pytree_data_fields = ("field", "loc", "noise")

    def __init__(self, field: GenerativeField, loc, noise, *, validate_args=None):
        if not field.gaussian:
            raise TypeError("the collapsed likelihood needs a Gaussian generator")
        self.field, self.loc, self.noise = field, jnp.asarray(loc), jnp.asarray(noise)
        super().__init__(batch_shape=(), event_shape=field.event_shape, validate_args=validate_args)

    @property
    def mean(self):
        return self.loc

    def sample(self, key, sample_shape=()):
        k1, k2 = jax.random.split(key)
        f = self.field.sample(k1, sample_shape)
        return self.loc + f + self.noise * jax.random.normal(k2, f.shape)

    def log_prob(self, value):
        # the jitter of the field is negligible next to the noise and is left out here
        return _lowrank_gaussian_logpdf(value - self.loc, self.field.basis(), self.noise**2)


def conditional_latent(key, field: GenerativeField, resid, noise):
    """One draw of z | y for y − mean = σΨz + ε, by Matheron's rule (exact, O(n² m + n³)):
    z* = z + Sᵀ(SSᵀ + noise² I)^{-1}(resid − S z − noise ε), S = σΨ, z, ε ~ N(0, I)."""
    S = field.basis()
    n, m = S.shape
    k1, k2 = jax.random.split(key)
    z = jax.random.normal(k1, (m,))
    e = jax.random.normal(k2, (n,))
    C = S @ S.T + noise**2 * jnp.eye(n)
    L = jnp.linalg.cholesky(C)
    w = jax.scipy.linalg.cho_solve((L, True), resid - S @ z - noise * e)
    return z + S.T @ w
