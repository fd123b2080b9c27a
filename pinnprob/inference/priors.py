"""Priors for the Matérn parameters: penalised-complexity priors and truncation to a training range."""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions.util import promote_shapes, validate_sample

__all__ = ["PCRange", "pc_sigma", "pc_priors", "Truncated", "truncate_to_range", "quantile"]


class PCRange(dist.Distribution):
    """Penalised-complexity prior for the range ρ of a d-dimensional Matérn field (Fuglstad et al. 2019).

    π(ρ) = (d/2) λ ρ^{−1−d/2} exp(−λ ρ^{−d/2}),  λ = −log(p) ρ0^{d/2},  so that P(ρ < ρ0) = p.
    """

    arg_constraints = {"range0": constraints.positive, "prob": constraints.open_interval(0.0, 1.0)}
    support = constraints.positive
    reparametrized_params = ["range0"]
    pytree_data_fields = ("range0", "prob")
    pytree_aux_fields = ("dim",)

    def __init__(self, range0, prob, dim: int = 2, *, validate_args=None):
        self.range0, self.prob = promote_shapes(range0, prob)
        self.dim = int(dim)
        batch_shape = jax.lax.broadcast_shapes(jnp.shape(range0), jnp.shape(prob))
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)

    @property
    def rate(self):
        return -jnp.log(self.prob) * self.range0 ** (self.dim / 2)

    def sample(self, key, sample_shape=()):
        u = jax.random.uniform(key, tuple(sample_shape) + self.batch_shape, minval=1e-12, maxval=1.0)
        return self.icdf(u)

    @validate_sample
    def log_prob(self, value):
        h = self.dim / 2
        lam = self.rate
        return math.log(h) + jnp.log(lam) - (1 + h) * jnp.log(value) - lam * value ** (-h)

    def cdf(self, value):
        return jnp.exp(-self.rate * value ** (-self.dim / 2))

    def icdf(self, q):
        return (-jnp.log(q) / self.rate) ** (-2.0 / self.dim)


def pc_sigma(sigma0, prob):
    """PC prior for the marginal sd: Exponential with P(σ > σ0) = p."""
    return dist.Exponential(-math.log(prob) / sigma0)


def pc_priors(range0, p_range, sigma0, p_sigma, dim: int = 2):
    """(range prior, sigma prior) with P(ρ < range0) = p_range and P(σ > sigma0) = p_sigma."""
    return PCRange(range0, p_range, dim), pc_sigma(sigma0, p_sigma)


class Truncated(dist.Distribution):
    """A univariate distribution with a CDF, truncated to [low, high] (sampling by inverse CDF)."""

    arg_constraints = {}
    reparametrized_params = []
    pytree_data_fields = ("base", "low", "high", "_flo", "_fhi")

    def __init__(self, base, low, high, *, validate_args=None):
        self.base = base
        self._flo, self._fhi = base.cdf(jnp.asarray(low, float)), base.cdf(jnp.asarray(high, float))
        # the support is [low, high] ∩ the base's support (arrays: this may run inside a trace)
        self.low = jnp.maximum(low, base.icdf(self._flo))
        self.high = jnp.minimum(high, base.icdf(self._fhi))
        super().__init__(batch_shape=base.batch_shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.interval(self.low, self.high)

    def sample(self, key, sample_shape=()):
        u = jax.random.uniform(key, tuple(sample_shape) + self.batch_shape)
        q = self._flo + u * (self._fhi - self._flo)
        return jnp.clip(self.base.icdf(q), self.low, self.high)

    def cdf(self, value):
        return jnp.clip((self.base.cdf(jnp.clip(value, self.low, self.high)) - self._flo) / (self._fhi - self._flo), 0, 1)

    def icdf(self, q):
        return jnp.clip(self.base.icdf(self._flo + q * (self._fhi - self._flo)), self.low, self.high)

    @validate_sample
    def log_prob(self, value):
        inside = (value >= self.low) & (value <= self.high)
        lp = self.base.log_prob(jnp.clip(value, self.low, self.high)) - jnp.log(self._fhi - self._flo)
        return jnp.where(inside, lp, -jnp.inf)


def _mass_inside(base, low, high, key=None, n=200_000) -> float:
    """P(low ≤ X ≤ high), by the CDF, else from ``n`` samples drawn with ``key`` (default key 0)."""
    try:
        return float(base.cdf(jnp.asarray(high)) - base.cdf(jnp.asarray(low)))
    except (NotImplementedError, AttributeError):
        x = base.sample(jax.random.key(0) if key is None else key, (n,))
        return float(jnp.mean((x >= low) & (x <= high)))


def quantile(d, q: float, key=None, n=200_000) -> float:
    """The q-quantile of a univariate distribution (by icdf, else from ``n`` samples drawn with ``key``,
    default key 0)."""
    try:
        return float(d.icdf(jnp.asarray(q)))
    except (NotImplementedError, AttributeError):
        return float(jnp.quantile(d.sample(jax.random.key(0) if key is None else key, (n,)), q))


def truncate_to_range(base, low: float, high: float, name: str):
    """``base`` restricted to [low, high]; warns with the prior mass that was cut when it is over 0.1 %."""
    mass = _mass_inside(base, low, high)
    if mass <= 0.0:
        raise ValueError(f"the prior for {name} puts no mass on the prior's training range [{low:g}, {high:g}]")
    if mass < 0.999:
        warnings.warn(
            f"the prior for {name} reaches beyond the generative prior's range [{low:g}, {high:g}]: "
            f"it was truncated to it, cutting {100 * (1 - mass):.1f} % of its mass",
            stacklevel=3,
        )
    if isinstance(base, dist.Uniform) and mass >= 0.999:
        return base
    try:
        base.cdf(jnp.asarray(low))
        base.icdf(jnp.asarray(0.5))
    except (NotImplementedError, AttributeError):
        raise ValueError(f"the prior for {name} must have cdf and icdf to be truncated; "
                         f"give one whose support lies in [{low:g}, {high:g}]") from None
    return Truncated(base, low, high)
