"""The field of a generative prior at given sites, as a NumPyro distribution."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax.scipy.linalg import cho_solve, solve_triangular
from numpyro.distributions import constraints
from numpyro.distributions.util import validate_sample

from pinnprob.generators.base import AbstractGaussianGenerator
from pinnprob.inference.linalg import gaussian_logpdf

__all__ = ["GenerativeField", "LatentOnlyError"]


class LatentOnlyError(NotImplementedError):
    """log_prob was asked of a push-forward generator, whose law has no tractable density."""


class GenerativeField(dist.Distribution):
    """Law of the field (u(x_1), ..., u(x_n)) of a generative prior, event shape ``(n,)``.

    ``u = σ g(X; z, θ)``, z ~ N(0, I_m), θ (batch + (p,)) the SPDE's parameters in natural
    coordinates (:meth:`pinnprob.parameters.ParameterSpace.theta`; for the Matérn (log range, ν) in
    unit-box units). Build it with :meth:`pinnprob.GenerativePrior.distribution`, which takes the
    parameters by name. ``features`` are the trunk features of the sites (what the generator's
    ``features`` or ``product_features`` return); each evaluation then costs one branch pass and
    an O(n m) product.

    * ``sample`` runs the generator (and adds the site part, below).
    * ``log_prob`` is exact for Gaussian generators: N(0, σ²(ΨΨᵀ + diag δ) + ε σ² I) with δ the
      generator's site variance (the part below its resolution, independent between sites; zero
      for the spectral generator) and the documented jitter ε (default 1e-5, relative to σ²) that
      makes the low-rank covariance proper; computed by a dense Cholesky when n ≤ m and by
      Woodbury when n > m.
    * :meth:`from_latent` gives the latent part σΨz only: a model that samples the field through its
      latent (:func:`pinnprob.inference.latent_field`) should add σ²δ (:meth:`site_variance`) to its
      observation variance, as :func:`pinnprob.fit` does.
    * For push-forward generators ``log_prob`` raises :class:`LatentOnlyError`; use the latent
      reparameterisation (:func:`pinnprob.inference.latent_field`).

    A pytree by NumPyro's contract: ``jax.jit`` can take and return it, and
    ``numpyro.distributions.batch_util.vmap_over(d, theta=0, sigma=0)`` gives the axes that map
    it over a batch of parameters.
    """

    arg_constraints = {"theta": constraints.independent(constraints.real, 1), "sigma": constraints.positive}
    support = constraints.real_vector
    reparametrized_params = ["theta", "sigma"]
    # NumPyro rebuilds a distribution from its declared fields alone (``tree_unflatten``). The generator
    # is kept split: its arrays are data (they may be traced, and ``vmap_over`` leaves them unmapped), the
    # rest of it (activation functions, static shapes; hashable) is auxiliary.
    pytree_data_fields = ("theta", "sigma", "features", "_generator_arrays")
    pytree_aux_fields = ("jitter", "_generator_static")

    def __init__(self, generator, features, theta, sigma=1.0, *, jitter: float = 1e-5, validate_args=None):
        self._generator_arrays, self._generator_static = eqx.partition(generator, eqx.is_array)
        self.features = features
        self.jitter = float(jitter)
        theta = jnp.asarray(theta)
        p = generator.space.dim
        if theta.ndim < 1 or theta.shape[-1] != p:
            raise ValueError(f"theta must have shape (..., {p}) for this generator's parameters "
                             f"{list(generator.space.names)}, got {theta.shape}")
        sigma = jnp.asarray(sigma)
        batch_shape = jax.lax.broadcast_shapes(theta.shape[:-1], jnp.shape(sigma))
        self.theta = jnp.broadcast_to(theta, batch_shape + (p,))
        self.sigma = jnp.broadcast_to(sigma, batch_shape)
        super().__init__(batch_shape=batch_shape, event_shape=(features.shape[0],), validate_args=validate_args)

    @property
    def generator(self):
        """The generator u(x; z, θ) (reassembled from its arrays and static part)."""
        return eqx.combine(self._generator_arrays, self._generator_static)

    @property
    def params(self) -> dict:
        """The SPDE's parameters by name (user values, unit-box units), each of shape ``batch_shape``."""
        return self.generator.space.values(self.theta)

    # -- pieces ---------------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    @property
    def gaussian(self) -> bool:
        return isinstance(self.generator, AbstractGaussianGenerator)

    def _branches(self):
        """Branch outputs for every batch element, leading shape ``batch_shape``."""
        f = self.generator.branch
        th = self.theta.reshape(-1, self.theta.shape[-1])
        b = jax.vmap(f)(th)
        return jax.tree_util.tree_map(lambda x: x.reshape(self.batch_shape + x.shape[1:]), b)

    # The heavy methods are jitted (jax.jit binds ``self``, a pytree by NumPyro's contract): NumPyro's
    # initialisation (find_valid_initial_params, one chain) evaluates the model and its gradient
    # eagerly, op by op, each op compiled on its own (40-site fits, timed ad hoc on this project's CPU:
    # the shipped Matérn prior by SVI 25 s → 18 s, by NUTS 12 s → 9.5 s; the convolution prior by SVI
    # 71 s → 53 s). Under an outer jit (a sampler's step) the call is inlined.
    @jax.jit
    def from_latent(self, z):
        """The field for latent values z of shape ``sample_shape + batch_shape + (m,)``."""
        b = self._branches()
        z = jnp.asarray(z)
        lead = z.shape[: z.ndim - 1 - len(self.batch_shape)]
        zf = z.reshape((-1, math.prod(self.batch_shape), self.latent_dim))
        bf = jax.tree_util.tree_map(lambda x: x.reshape((math.prod(self.batch_shape),) + x.shape[len(self.batch_shape):]), b)
        g = jax.vmap(lambda zz: jax.vmap(lambda z1, b1: self.generator.combine(self.features, b1, z1))(zz, bf))(zf)
        g = g.reshape(lead + self.batch_shape + self.event_shape)
        return self.sigma[..., None] * g

    @jax.jit  # see from_latent
    def site_variance(self):
        """σ²δ, the variance per site the latent does not carry, shape ``batch_shape + (n,)``."""
        if not self.gaussian:
            return jnp.zeros(self.batch_shape + self.event_shape)
        th = self.theta.reshape(-1, self.theta.shape[-1])
        v = jax.vmap(lambda t: self.generator.site_variance_at(self.features, t))(th)
        return self.sigma[..., None] ** 2 * v.reshape(self.batch_shape + self.event_shape)

    def basis(self):
        """σΨ(θ) of shape ``batch_shape + (n, m)`` (Gaussian generators): the field is σΨ z."""
        if not self.gaussian:
            raise LatentOnlyError("basis() exists only for Gaussian generators")
        b = self._branches()
        Bf = jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[len(self.batch_shape):]), b)
        Psi = jax.vmap(lambda b1: self.generator.basis_from_branch(self.features, b1))(Bf)
        Psi = Psi.reshape(self.batch_shape + Psi.shape[1:])
        return self.sigma[..., None, None] * Psi

    # -- Distribution API -------------------------------------------------------------------------
    def sample(self, key, sample_shape=()):
        z = jax.random.normal(key, tuple(sample_shape) + self.batch_shape + (self.latent_dim,))
        e = jax.random.normal(jax.random.fold_in(key, 1), tuple(sample_shape) + self.batch_shape + self.event_shape)
        return self.from_latent(z) + jnp.sqrt(self.site_variance()) * e

    @property
    def mean(self):
        return jnp.zeros(self.batch_shape + self.event_shape)

    @property
    def covariance_matrix(self):
        S = self.basis()
        n = self.event_shape[0]
        d = self.site_variance() + self.jitter * self.sigma[..., None] ** 2
        return S @ jnp.swapaxes(S, -1, -2) + d[..., None] * jnp.eye(n)

    @property
    def variance(self):
        S = self.basis()
        return jnp.sum(S**2, -1) + self.site_variance() + self.jitter * self.sigma[..., None] ** 2

    @validate_sample
    def log_prob(self, value):
        if not self.gaussian:
            raise LatentOnlyError(
                "log_prob is not available for a push-forward (non-Gaussian) generator: its law has no "
                "tractable density. Sample the latent instead: wrap the model with "
                "pinnprob.inference.latent_field(model), which turns each field site `f` into a standard "
                "normal site `f_latent` and a deterministic site `f`."
            )
        return self._log_prob(value)

    @jax.jit  # see from_latent
    def _log_prob(self, value):
        S = self.basis()  # (..., n, m)
        eps = self.jitter * self.sigma[..., None] ** 2 + self.site_variance()  # (..., n)
        return _lowrank_gaussian_logpdf(value, S, eps)


def _dense_gaussian_logpdf(value, C):
    """log N(value | 0, C) by a Cholesky of C (..., n, n); value (..., n), batch shapes broadcast. One C:
    :func:`~pinnprob.inference.linalg.gaussian_logpdf`, its gradient written out."""
    n = C.shape[-1]
    if C.ndim == 2:
        return gaussian_logpdf(value, C)
    batch = jnp.broadcast_shapes(value.shape[:-1], C.shape[:-2])
    L = jnp.broadcast_to(jnp.linalg.cholesky(C), batch + (n, n))
    w = solve_triangular(L, jnp.broadcast_to(value, batch + (n,))[..., None], lower=True)[..., 0]
    logdet = 2 * jnp.sum(jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)), -1)
    return -0.5 * (jnp.sum(w**2, -1) + logdet + n * math.log(2 * math.pi))


def _lowrank_gaussian_logpdf(value, S, eps):
    """log N(value | 0, S Sᵀ + diag(eps)), batched, eps (..., n) or (...) (then eps I); dense Cholesky if
    n ≤ m, Woodbury otherwise."""
    n, m = S.shape[-2], S.shape[-1]
    eps = jnp.asarray(eps)
    eps = jnp.broadcast_to(eps[..., None] if eps.ndim < S.ndim - 1 else eps, S.shape[:-1])  # (..., n)
    value = jnp.broadcast_to(value, jnp.broadcast_shapes(value.shape, S.shape[:-1]))
    if n <= m:
        return _dense_gaussian_logpdf(value, S @ jnp.swapaxes(S, -1, -2) + eps[..., None] * jnp.eye(n))
    # Woodbury with D = diag(eps): (D + S Sᵀ)^{-1} = D⁻¹ − D⁻¹S (I_m + SᵀD⁻¹S)^{-1} SᵀD⁻¹,
    # log det = log det D + log det(I_m + SᵀD⁻¹S)
    Sd = S / jnp.sqrt(eps)[..., None]  # D^{-1/2} S
    vd = value / jnp.sqrt(eps)
    St = jnp.swapaxes(Sd, -1, -2)
    cap = St @ Sd + jnp.eye(m)
    L = jnp.linalg.cholesky(cap)
    Stv = (St @ vd[..., None])[..., 0]
    quad = jnp.sum(vd**2, -1) - jnp.sum(Stv * cho_solve((L, True), Stv[..., None])[..., 0], -1)
    logdet = jnp.sum(jnp.log(eps), -1) + 2 * jnp.sum(jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)), -1)
    return -0.5 * (quad + logdet + n * math.log(2 * math.pi))
