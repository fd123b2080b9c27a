"""Noise laws of an SPDE's forcing, as seen through test functions.

The weak form tests the forcing against test functions ψ_1..ψ_K; a noise law says what the law of
(⟨Ṁ, ψ_1⟩, ..., ⟨Ṁ, ψ_K⟩) is. For Gaussian white noise it is N(0, G) with G_kl = ∫ ψ_k ψ_l
(Walsh 1986, ch. 1), the identity for an orthonormal basis. For the others it has no closed form
but exact samples are cheap: the noise's masses M(A_j) on a fine grid of disjoint cells A_j are
independent, and ⟨Ṁ, ψ_k⟩ ≈ Σ_j ψ_k(c_j) M(A_j) (:meth:`AbstractNoise.tested_samples`).

Every noise here has unit variance per unit area, so that the field's scale σ stays outside the
noise (it enters the prior analytically).
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

__all__ = ["AbstractNoise", "AbstractGaussianNoise", "AbstractTypeGNoise", "GaussianWhiteNoise", "NIGNoise", "cell_grid", "inverse_gaussian"]


class AbstractNoise(eqx.Module):
    """A noise law: how the forcing acts on test functions. ``params`` are the law's own parameters
    (none for white noise), in the order of :attr:`param_names`."""

    param_names = ()

    @abc.abstractmethod
    def cell_masses(self, key: PRNGKeyArray, areas: Float[Array, " J"], num: int,
                    params: Float[Array, " q"] | None = None) -> Float[Array, "num J"]:
        """``num`` exact draws of the masses M(A_j) of disjoint cells with areas h_j: (num, J)."""

    def tested_samples(self, key: PRNGKeyArray, values: Float[Array, "J K"], areas: Float[Array, " J"],
                       num: int, params: Float[Array, " q"] | None = None) -> Float[Array, "num K"]:
        """``num`` draws of the tested noise (⟨Ṁ, ψ_k⟩)_k by the midpoint rule on the cells:
        Σ_j ψ_k(c_j) M(A_j), with ``values`` = ψ_k(c_j) (J, K); shape (num, K)."""
        return self.cell_masses(key, areas, num, params) @ values

    @abc.abstractmethod
    def orthonormal_samples(self, key: PRNGKeyArray, test, domain, num: int,
                            params: Float[Array, " q"] | None = None) -> Float[Array, "num K"]:
        """``num`` draws of the noise tested against an orthonormal basis ``test`` (X (n, d) → (n, K)) on
        the box ``domain``: what a sample-based weak-form loss compares its residuals with."""


class AbstractGaussianNoise(AbstractNoise):
    """A Gaussian noise law: the tested noise is N(0, Σ(G)) for test functions with Gram matrix G."""

    @abc.abstractmethod
    def tested_covariance(self, gram: Float[Array, "K K"]) -> Float[Array, "K K"]:
        """Covariance of the tested noise, (K, K), from the test functions' Gram matrix (K, K)."""


class GaussianWhiteNoise(AbstractGaussianNoise):
    """Unit Gaussian white noise W: ⟨W, ψ_k⟩ ~ N(0, G), G the Gram matrix of the test functions."""

    def tested_covariance(self, gram):
        return gram

    def cell_masses(self, key, areas, num, params=None):
        """W(A_j) ~ N(0, h_j), independent."""
        areas = jnp.asarray(areas)
        return jnp.sqrt(areas) * jax.random.normal(key, (num, areas.shape[0]), dtype=areas.dtype)

    def orthonormal_samples(self, key, test, domain, num, params=None):
        """N(0, I): exact, no grid (the Gram matrix of an orthonormal basis is the identity)."""
        K = test(jnp.zeros((1, domain.dim))).shape[-1]
        return jax.random.normal(key, (num, K))


def cell_grid(domain, cells_per_side: int) -> tuple[Float[Array, "J d"], Float[Array, " J"]]:
    """Centres (J, d) and areas (J,) of a regular grid of ``cells_per_side``^d cells covering the box."""
    axes = [(jnp.arange(cells_per_side) + 0.5) * (L / cells_per_side) for L in domain.lengths]
    C = jnp.stack(jnp.meshgrid(*axes, indexing="ij"), -1).reshape(-1, domain.dim)
    area = math.prod(L / cells_per_side for L in domain.lengths)
    return C, jnp.full(C.shape[0], area)


def inverse_gaussian(key: PRNGKeyArray, mean: Float[Array, "..."], shape_param: Float[Array, "..."],
                     sample_shape: tuple = ()) -> Float[Array, "..."]:
    """Exact draws of the inverse Gaussian IG(mean m, shape λ) (variance m³/λ), by the transformation
    with multiple roots of Michael, Schucany & Haas (1976, Am. Stat. 30, 88), written in the form
    x = m / (1 + b/2 + √(b + b²/4)), b = m y/λ, y ~ χ²₁, which does not cancel when b is large (small
    cells); shape ``sample_shape + broadcast(m, λ).shape``."""
    mean, shape_param = jnp.broadcast_arrays(jnp.asarray(mean), jnp.asarray(shape_param))
    shape = tuple(sample_shape) + mean.shape
    k1, k2 = jax.random.split(key)
    y = jax.random.normal(k1, shape, dtype=mean.dtype) ** 2
    b = mean * y / shape_param
    x = mean / (1.0 + 0.5 * b + jnp.sqrt(b + 0.25 * b * b))  # the smaller root
    u = jax.random.uniform(k2, shape, dtype=mean.dtype)
    return jnp.where(u * (mean + x) <= mean, x, mean * mean / x)


class AbstractTypeGNoise(AbstractNoise):
    """Type-G noise (Bolin 2014, Scand. J. Stat. 41, 557, §3): on a cell of area h a normal variance–mean
    mixture of a mixing variable V (a subordinator's increment, mean h); ``params`` start (μ, ...)."""

    @staticmethod
    @abc.abstractmethod
    def mixing_variance(params, area):
        """Var(V/h) for a cell of area h."""

    @staticmethod
    @abc.abstractmethod
    def log_mixing_quantiles(scores, variance) -> np.ndarray:
        """log F⁻¹(Φ(z)) of V/h at normal scores z (q,) for variances v (n,): (n, q), in NumPy."""


class NIGNoise(AbstractTypeGNoise):
    """Normal-inverse-Gaussian (type-G) noise of unit variance per unit area (Bolin 2014, Scand. J. Stat.
    41, 557, §3; Wallin & Bolin 2015, Scand. J. Stat. 42, 1, eq. 2.3): on a cell of area h,

        M(A) = (μ (V − h) + √V Z) / √(1 + μ²/η),   V ~ IG(mean h, shape η h²),  Z ~ N(0, 1),

    mean 0 and variance h for every (μ, η); μ ∈ R sets the skewness (its sign), η > 0 the tails
    (η → ∞: Gaussian white noise). ``params`` = (μ, η)."""

    param_names = ("mu", "eta")
    cells_per_side: int = eqx.field(static=True, default=128)

    @staticmethod
    def check(mu, eta) -> None:
        """μ finite and η > 0 (finite): one ValueError otherwise."""
        mu_a, eta_a = np.asarray(mu, np.float64), np.asarray(eta, np.float64)
        if not np.all(np.isfinite(mu_a)):
            raise ValueError(f"the NIG skewness mu must be finite, got {mu}")
        if not np.all(np.isfinite(eta_a)) or np.any(eta_a <= 0):
            raise ValueError(f"the NIG tail parameter eta must be finite and > 0, got {eta}")

    def cell_masses(self, key, areas, num, params):
        """Exact, independent M(A_j) for cells of areas h_j: (num, J)."""
        mu, eta = params[0], params[1]
        areas = jnp.asarray(areas)
        kv, kz = jax.random.split(key)
        V = inverse_gaussian(kv, areas, eta * areas**2, (num,))
        Z = jax.random.normal(kz, V.shape, dtype=V.dtype)
        return (mu * (V - areas) + jnp.sqrt(V) * Z) / jnp.sqrt(1.0 + mu**2 / eta)

    def orthonormal_samples(self, key, test, domain, num, params):
        """The noise on a grid of ``cells_per_side``^d cells, tested against the basis by the midpoint
        rule (its error is that of the rule for the basis's highest frequencies on the grid)."""
        C, areas = cell_grid(domain, self.cells_per_side)
        from pinnprob.testfunctions.eigen import dense_features

        return self.tested_samples(key, dense_features(test(C)), areas, num, params)

    @staticmethod
    def mixing_variance(params, area):
        """Var(V/h) of the mixing variable of a cell of area h, V ~ IG(h, η h²): 1/(η h)."""
        return 1.0 / (params[1] * area)

    @staticmethod
    def log_mixing_quantiles(scores, variance) -> np.ndarray:
        """log F⁻¹(Φ(z)) of V/h ~ IG(1, 1/v) at normal scores z (q,) for variances v (n,): (n, q), in
        NumPy (SciPy's inverse Gaussian; the upper half by its survival function, for accuracy)."""
        import warnings

        from scipy import stats

        z = np.asarray(scores, np.float64)[None, :]
        lam = 1.0 / np.asarray(variance, np.float64)[:, None]
        d = stats.invgauss(mu=1.0 / lam, scale=lam)
        with warnings.catch_warnings():  # Boost warns at |z| ≈ 6 but its answers check to 1e-11 in log F
            warnings.simplefilter("ignore", RuntimeWarning)
            q = np.where(z > 0, d.isf(stats.norm.sf(z)), d.ppf(stats.norm.cdf(z)))
        return np.log(q)

    @staticmethod
    def cumulant_factors(mu, eta) -> tuple:
        """(c₂, c₃, c₄): the n-th cumulant of ⟨Ṁ, ψ⟩ is c_n ∫ ψⁿ (c₂ = 1). From the cumulant generating
        function K(t) = K_V(μ't + t'²/2) − μ'h t' of the unnormalised mass (t' = t/s, μ' = μ, s² = 1 +
        μ²/η) and IG's cumulants h, h/η, 3h/η², 15h/η³."""
        s2 = 1.0 + mu**2 / eta
        c3 = (3.0 * mu / eta + 3.0 * mu**3 / eta**2) / s2**1.5
        c4 = (3.0 / eta + 18.0 * mu**2 / eta**2 + 15.0 * mu**4 / eta**3) / s2**2
        return 1.0, c3, c4

    @classmethod
    def tested_moments(cls, mu, eta, psi2, psi3, psi4) -> tuple:
        """(variance, skewness, excess kurtosis) of ⟨Ṁ, ψ⟩ from ∫ψ², ∫ψ³, ∫ψ⁴ (also for a field
        u(x) = ∫ g(x, y) dM(y), with the integrals of g(x, ·)ⁿ)."""
        _, c3, c4 = cls.cumulant_factors(mu, eta)
        return psi2, c3 * psi3 / psi2**1.5, c4 * psi4 / psi2**2
