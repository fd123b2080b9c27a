"""Exact laws of the Matérn SPDE solution: the truths every generator is validated against.

Everything here is NumPy/SciPy in float64 (validation code, not a hot path):

* :func:`matern_covariance` — the stationary Matérn covariance on R^d,
  C(h) = σ² 2^{1−ν}/Γ(ν) (κh)^ν K_ν(κh) (Stein 1999, Interpolation of Spatial Data);
* :func:`box_covariance` — the exact covariance of the solution on a box, by the
  method of images: exact for any ν, no truncated series;
* :func:`spectral_covariance` / :func:`spectral_sample` — the eigen-expansion
  u = τ^{-1} Σ_k (κ² + λ_k)^{-α/2} ξ_k φ_k truncated to the given modes;
* :func:`cholesky_sample` — exact samples at points through a Cholesky factor;
* :class:`FEMMatern` (from :mod:`pinnprob.fem`) — the α = 2 SPDE with a range, variance and
  anisotropy that may vary in space, by P1 finite elements (Lindgren, Rue & Lindström 2011):
  point covariances and exact samples, for operators with no closed form.
"""

from __future__ import annotations

import functools
import itertools
import math

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, logsumexp
from scipy import special

from pinnprob.domain import Box
from pinnprob.fem import FEMMatern, anisotropy_matrix
from pinnprob.spde.matern import MaternSPDE
from pinnprob.spde.nonstationary import NonStationaryMatern

__all__ = [
    "matern_correlation",
    "matern_covariance",
    "matern_correlation_jax",
    "box_covariance",
    "spectral_covariance",
    "spectral_sample",
    "cholesky_sample",
    "FEMMatern",
    "anisotropy_matrix",
    "reference_covariance",
    "nig_matern_moments",
]


def _params(rho, sigma, nu, d):
    nu = float(nu)
    kappa = math.sqrt(8.0 * nu) / float(rho)
    log_s2t2 = math.lgamma(nu) - math.lgamma(nu + d / 2) - (d / 2) * math.log(4 * math.pi) - 2 * nu * math.log(kappa)
    tau = math.exp(0.5 * log_s2t2) / float(sigma)
    return kappa, tau, nu + d / 2


def matern_correlation(h, *, kappa: float, nu: float) -> np.ndarray:
    """2^{1−ν}/Γ(ν) (κh)^ν K_ν(κh), equal to 1 at h = 0; h ≥ 0 of any shape."""
    h = np.asarray(h, dtype=np.float64)
    x = kappa * h
    with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        if nu == 0.5:
            r = np.exp(-x)
        elif nu == 1.5:
            r = (1 + x) * np.exp(-x)
        elif nu == 2.5:
            r = (1 + x + x**2 / 3) * np.exp(-x)
        else:
            # log form avoids overflow of x^ν and underflow of K_ν far away
            logr = (1 - nu) * math.log(2) - math.lgamma(nu) + nu * np.log(x) + np.log(special.kve(nu, x)) - x
            r = np.exp(logr)
    return np.where(x < 1e-12, 1.0, np.nan_to_num(r, nan=0.0))


def _log_matern_correlation_jax(x, nu, T: float = 14.0, N: int = 40):
    """log 2^{1−ν}/Γ(ν) x^ν K_ν(x) for x > 0 in JAX, differentiable in x and ν, with
    K_ν(x) = ∫₀^∞ exp(−x cosh t) cosh(νt) dt by the trapezoidal rule (step T/N = 0.35: the integrand
    is analytic in a strip of half-width π/2, so the error is ~exp(−π²/h) ≈ 1e−12 for moderate x; near
    x = 1e−4 the relative error grows to ~1e−7, still below float32 resolution)."""
    h = T / N
    t = jnp.arange(N + 1) * h
    logw = jnp.log(h) + jnp.where(t == 0, jnp.log(0.5), 0.0)
    logcosh = nu * t + jnp.log1p(jnp.exp(-2 * nu * t)) - jnp.log(2.0)  # log cosh(νt)
    logK = logsumexp(-x[..., None] * jnp.cosh(t) + logcosh + logw, axis=-1)
    return (1 - nu) * jnp.log(2.0) - gammaln(nu) + nu * jnp.log(x) + logK


def matern_correlation_jax(h, *, range, nu):
    """The Matérn correlation at distances h (any shape) for practical range √(8ν)/κ, in JAX and
    differentiable in h, range and ν (for exact-GP baselines with ν inferred); 1 at h = 0. Agrees with
    :func:`matern_correlation` to float32 precision."""
    x = jnp.sqrt(8.0 * nu) / range * jnp.asarray(h)
    safe = jnp.maximum(x, 1e-4)
    return jnp.where(x < 1e-4, 1.0, jnp.exp(_log_matern_correlation_jax(safe, nu)))


def matern_covariance(h, *, range: float, sigma: float, nu: float) -> np.ndarray:
    """Matérn covariance on R^d at distances h, in terms of practical range, σ and ν."""
    kappa = math.sqrt(8.0 * nu) / range
    return sigma**2 * matern_correlation(h, kappa=kappa, nu=nu)


def box_covariance(X, Y, domain: Box, *, range: float, sigma: float, nu: float, tol: float = 1e-12) -> np.ndarray:
    """Exact covariance Cov(u(x_i), u(y_j)) of the SPDE solution on ``domain``.

    Method of images (the eigen-series summed by Poisson summation): for Neumann
    C_box(x, y) = Σ_{m ∈ Z^d} Σ_{s ∈ {±1}^d} C(x − (2mL + s ⊙ y)), Dirichlet adds the
    sign Π s_i, periodic sums C(x − y − mL). Images are kept while the Matérn
    correlation at their nearest distance exceeds ``tol``. Shapes (n, d), (p, d) → (n, p).
    """
    return _box_covariance(X, Y, domain, range, sigma, nu, tol)


def _box_covariance(X, Y, domain: Box, rho: float, sigma: float, nu: float, tol: float) -> np.ndarray:
    X = np.atleast_2d(np.asarray(X, np.float64))
    Y = np.atleast_2d(np.asarray(Y, np.float64))
    d = domain.dim
    L = np.asarray(domain.lengths, np.float64)
    kappa = math.sqrt(8.0 * nu) / rho
    # smallest distance beyond which the correlation is below tol
    hs = np.linspace(0, 200.0 / kappa, 4001)
    cor = matern_correlation(hs, kappa=kappa, nu=nu)
    cutoff = hs[np.argmax(cor < tol)] if np.any(cor < tol) else hs[-1]
    period = L if domain.bc == "periodic" else 2 * L
    M = [int(math.ceil(cutoff / period[i])) + 1 for i in range(d)]
    out = np.zeros((X.shape[0], Y.shape[0]))
    signs = [(1.0,)] * d if domain.bc == "periodic" else [(1.0, -1.0)] * d
    for m in itertools.product(*[range(-Mi, Mi + 1) for Mi in M]):
        shift = np.asarray(m, np.float64) * period
        for s in itertools.product(*signs):
            s = np.asarray(s)
            img = shift + s * Y  # (p, d)
            h = np.sqrt(np.sum((X[:, None, :] - img[None, :, :]) ** 2, axis=-1))
            if np.min(h) > cutoff:
                continue
            w = np.prod(s) if domain.bc == "dirichlet" else 1.0
            out += w * matern_correlation(h, kappa=kappa, nu=nu)
    return sigma**2 * out


def _eigen(domain: Box, num_per_dim: int, max_frequency=None):
    from pinnprob.testfunctions.eigen import BoxEigenbasis

    return BoxEigenbasis.create(domain, num_per_dim, max_frequency)


def spectral_std(basis, *, range: float, sigma: float, nu: float) -> np.ndarray:
    """Standard deviations τ^{-1}(κ² + λ_k)^{-α/2} of the coefficients ⟨u, φ_k⟩, shape (K,)."""
    kappa, tau, alpha = _params(range, sigma, nu, basis.domain.dim)
    lam = np.asarray(basis.eigenvalues, np.float64)
    return (kappa**2 + lam) ** (-alpha / 2) / tau


def spectral_covariance(X, Y, domain: Box, *, range: float, sigma: float, nu: float, num_per_dim: int = 128) -> np.ndarray:
    """Covariance of the eigen-expansion truncated to ``num_per_dim`` modes per axis, (n, p)."""
    basis = _eigen(domain, num_per_dim)
    std = spectral_std(basis, range=range, sigma=sigma, nu=nu)
    PX = np.asarray(basis(np.asarray(X, np.float64)), np.float64)
    PY = np.asarray(basis(np.asarray(Y, np.float64)), np.float64)
    return (PX * std**2) @ PY.T


def spectral_sample(seed: int, X, domain: Box, *, range: float, sigma: float, nu: float,
                    num_samples: int, num_per_dim: int = 128) -> np.ndarray:
    """Samples of the truncated eigen-expansion at X, shape (num_samples, n)."""
    rng = np.random.default_rng(seed)
    basis = _eigen(domain, num_per_dim)
    std = spectral_std(basis, range=range, sigma=sigma, nu=nu)
    P = np.asarray(basis(np.asarray(X, np.float64)), np.float64) * std
    return rng.standard_normal((num_samples, basis.size)) @ P.T


def cholesky_sample(seed: int, cov: np.ndarray, num_samples: int, jitter: float = 1e-10) -> np.ndarray:
    """Exact Gaussian samples with covariance ``cov`` (n, n), shape (num_samples, n)."""
    rng = np.random.default_rng(seed)
    n = cov.shape[0]
    Lc = np.linalg.cholesky(cov + jitter * np.trace(cov) / n * np.eye(n))
    return rng.standard_normal((num_samples, n)) @ Lc.T


def nig_matern_moments(*, range: float, mu: float, eta: float) -> tuple[float, float]:
    """(skewness, excess kurtosis) of the ν = 1 Matérn field on R² driven by unit NIG noise
    (:class:`~pinnprob.noise.NIGNoise`): u = g * Ṁ with g(r) = K₀(κr)/(2πτ), so κ_n(u) = c_n ∫ gⁿ =
    c_n (2πτ)⁻ⁿ (2π/κ²) ∫₀^∞ K₀(s)ⁿ s ds, the last integral by quadrature (τ cancels)."""
    from scipy import integrate

    from pinnprob.noise import NIGNoise

    NIGNoise.check(mu, eta)
    I3, I4 = (integrate.quad(lambda s, n=n: special.k0(s) ** n * s, 0, np.inf, limit=200)[0] for n in (3, 4))
    _, c3, c4 = NIGNoise.cumulant_factors(mu, eta)
    kappa = math.sqrt(8.0) / range
    return c3 * I3 * kappa * 2**1.5 / math.sqrt(2 * math.pi), 4 * c4 * I4 * kappa**2 / (2 * math.pi)


@functools.singledispatch
def reference_covariance(spde, X, Y=None, **params) -> np.ndarray:
    """The covariance (n, n') of an SPDE's solution at sites X, Y (unit-box units), σ = 1, from a truth
    that did not learn anything: the image sum for the stationary Matérn, finite elements
    (``mesh`` cells per side, default 200) for the non-stationary one. Parameters by name."""
    raise TypeError(f"no reference covariance for {type(spde).__name__}")


@reference_covariance.register
def _(spde: MaternSPDE, X, Y=None, **params):
    Y = X if Y is None else Y
    return box_covariance(X, Y, spde.domain, range=float(params["range"]), sigma=1.0, nu=float(params["nu"]))


@reference_covariance.register
def _(spde: NonStationaryMatern, X, Y=None, mesh: int = 200, **params):
    spde.space.check(**params)
    theta = np.asarray(spde.space.theta(**params), np.float64)

    def rho(x):
        return np.exp(theta[0] + theta[1] * (x[:, 0] - 0.5) + theta[2] * (x[:, 1] - 0.5))

    fem = FEMMatern.from_range_field(mesh, rho, sigma=1.0, angle=float(theta[3]), log_ratio=float(theta[4]))
    return fem.covariance(X, Y)
