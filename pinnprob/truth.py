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
  point covariances and exact samples, for operators with no closed form;
* :func:`advection_diffusion_covariance` / :func:`advection_diffusion_sample` — the space-time
  advection–diffusion SPDE on a torus (Clarotto et al. 2024), exact by its Fourier modes, and
  :func:`advection_diffusion_fd_sample`, an independent finite-difference simulation of it in 1-D.
"""

from __future__ import annotations

import builtins
import functools
import itertools
import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, logsumexp
from scipy import special

from pinnprob.domain import Box
from pinnprob.fem import FEMMatern, anisotropy_matrix
from pinnprob.spde.matern import MaternSPDE
from pinnprob.spde.nonstationary import NonStationaryMatern
from pinnprob.spde.nig import NIGMatern

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
    "advection_diffusion_covariance",
    "advection_diffusion_sample",
    "advection_diffusion_fd_sample",
]

builtins_range = builtins.range  # ``range`` is a keyword argument (the practical range) below


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


@reference_covariance.register
def _(spde: NIGMatern, X, Y=None, **params):
    # the noise has unit variance per unit area, so the covariance is the Gaussian Matérn's at ν = 1
    spde.space.check(**params)
    Y = X if Y is None else Y
    return box_covariance(X, Y, spde.domain, range=float(params["range"]), sigma=1.0, nu=1.0)


# -- the advection–diffusion SPDE on a torus × time (Clarotto et al. 2024) ----------------------------------


class _TorusModes(NamedTuple):
    """Half of the Fourier lattice of a torus (ω ≠ 0 with its first nonzero coordinate > 0), its rates and
    variances, and the zero mode: what the exact covariance and sampler of the advection–diffusion SPDE sum."""

    omega: np.ndarray  # (K, d), half lattice
    re: np.ndarray  # (K,) Re λ_ω
    im: np.ndarray  # (K,) Im λ_ω
    w: np.ndarray  # (K,) τ²/(2(κ² + ωᵀHω)^α Lᵈ): each of ±ω contributes w e^{−Re λ|s|} cos(ω·h − Im λ s)
    re0: float  # the zero mode's rate
    w0: float  # the zero mode's variance
    tail: float  # the spatial marginal's variance beyond the kept modes (added where h = 0 and s = 0)


def _torus_modes(lengths, *, range, time_range, velocity, alpha, sigma, angle, ratio, tol) -> _TorusModes:
    from pinnprob.spde.advection_diffusion import to_operator_params

    L = np.asarray(lengths, np.float64)
    d = L.shape[0]
    velocity = np.atleast_1d(np.asarray(velocity, np.float64))
    if velocity.shape != (d,):
        raise ValueError(f"velocity must have {d} component(s) on a {d}-D torus, got shape {velocity.shape}")
    nu = float(alpha) - d / 2
    if nu <= 0:
        raise ValueError(f"alpha must exceed d/2 = {d / 2:g}, got {alpha}")
    H = np.asarray(anisotropy_matrix(float(angle), math.log(float(ratio)))) if d == 2 else np.eye(1)
    p = to_operator_params(range=range, time_range=time_range, velocity=velocity, alpha=alpha, sigma=sigma, H=H)
    kappa, c, tau, gamma = float(p.kappa), float(p.c), float(p.tau), np.asarray(p.gamma, np.float64)
    # modes with ωᵀHω ≤ Ω², Ω such that the spatial marginal's variance beyond it is tol σ²: with
    # x = κ²/(κ² + Ω²) that fraction is the regularised incomplete beta I_x(ν, d/2)
    x = float(special.betaincinv(nu, d / 2, tol))
    Omega = kappa * math.sqrt((1 - x) / x)
    hmin = float(np.linalg.eigvalsh(H)[0])
    kmax = [int(math.ceil(Omega / math.sqrt(hmin) * Li / (2 * math.pi))) for Li in L]
    grids = np.meshgrid(*[np.arange(-k, k + 1) for k in kmax], indexing="ij")
    k = np.stack([g.ravel() for g in grids], -1)
    first = np.where(k[:, 0] != 0, k[:, 0], k[:, -1])
    k = k[first > 0]  # half lattice: ω ≠ 0 and its first nonzero coordinate positive
    omega = 2 * math.pi * k / L
    q = np.einsum("ka,ab,kb->k", omega, H, omega)
    keep = q <= Omega**2
    omega, q = omega[keep], q[keep]
    a = float(alpha)
    vol = float(np.prod(L))
    return _TorusModes(omega, (kappa**2 + q) ** a / c, omega @ gamma / c, tau**2 / (2 * (kappa**2 + q) ** a * vol),
                       kappa ** (2 * a) / c, tau**2 / (2 * kappa ** (2 * a) * vol), float(sigma) ** 2 * tol)


def advection_diffusion_covariance(X, T, Y=None, S=None, *, lengths, range: float, time_range: float, velocity,
                                   alpha: float, sigma: float = 1.0, angle: float = 0.0, ratio: float = 1.0,
                                   tol: float = 1e-4, chunk: int = 4096) -> np.ndarray:
    """Exact stationary covariance Cov(u(x_i, t_i), u(y_j, s_j)) of the advection–diffusion SPDE
    (:class:`~pinnprob.spde.advection_diffusion.AdvectionDiffusion`) on the torus Π[0, L_i) × time: the
    Fourier coefficients are complex Ornstein–Uhlenbeck processes (Clarotto et al. 2024, §2.2), so

        C(h, s) = Σ_ω τ² e^{−Re λ_ω |s|} cos(ω·h − Im λ_ω s) / (2 (κ² + ωᵀHω)^α Lᵈ),
        λ_ω = [(κ² + ωᵀHω)^α + i γ·ω]/c,   h = x − y,  s = t − s',

    over ω ∈ 2πZᵈ/L with ωᵀHω ≤ Ω², Ω where the spatial marginal's variance beyond it is ``tol`` σ²; that
    variance is added where h = 0 and s = 0 (its correlation length is below 1/Ω). Sites (n, d), (p, d)
    and times (n,), (p,) → (n, p); float64."""
    X = np.atleast_2d(np.asarray(X, np.float64))
    T = np.asarray(T, np.float64).reshape(-1)
    Y = X if Y is None else np.atleast_2d(np.asarray(Y, np.float64))
    S = T if S is None else np.asarray(S, np.float64).reshape(-1)
    if T.shape[0] != X.shape[0] or S.shape[0] != Y.shape[0]:
        raise ValueError(f"one time per site: X {X.shape} with T {T.shape}, Y {Y.shape} with S {S.shape}")
    m = _torus_modes(lengths, range=range, time_range=time_range, velocity=velocity, alpha=alpha, sigma=sigma,
                     angle=angle, ratio=ratio, tol=tol)
    L = np.asarray(lengths, np.float64)
    h = np.mod(X[:, None, :] - Y[None, :, :], L).reshape(-1, X.shape[1])  # differences on the torus
    s = (T[:, None] - S[None, :]).reshape(-1)
    # the sum depends on (h, s) only: evaluate it once per distinct pair
    key = np.concatenate([np.round(h / L, 12), np.round(s, 12)[:, None]], 1)
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    hu, su = uniq[:, :-1] * L, uniq[:, -1]
    out = m.w0 * np.exp(-m.re0 * np.abs(su))
    for i in builtins_range(0, m.omega.shape[0], chunk):
        om, re, im, w = m.omega[i:i + chunk], m.re[i:i + chunk], m.im[i:i + chunk], m.w[i:i + chunk]
        phase = hu @ om.T - su[:, None] * im[None, :]
        out += (np.exp(-np.abs(su)[:, None] * re[None, :]) * np.cos(phase)) @ (2 * w)
    out = out + m.tail * ((np.abs(su) == 0) & np.all(np.isclose(np.mod(hu / L + 0.5, 1.0) - 0.5, 0, atol=1e-12), 1))
    return out[inv.reshape(-1)].reshape(X.shape[0], Y.shape[0])


def advection_diffusion_sample(seed: int, X, times, *, lengths, range: float, time_range: float, velocity,
                               alpha: float, sigma: float = 1.0, angle: float = 0.0, ratio: float = 1.0,
                               num_samples: int = 1, tol: float = 1e-4, chunk: int = 256) -> np.ndarray:
    """Exact draws of the stationary advection–diffusion field on the torus at sites X (n, d) and increasing
    times (T,), shape (num_samples, T, n): each Fourier coefficient is stepped exactly between the times as a
    complex OU process, B(t + Δ) = e^{−λΔ} B(t) + √(v(1 − e^{−2Re λ Δ})) ξ (circular ξ, E|ξ|² = 1), started
    in its stationary law; u = B₀ + Σ_{half lattice} Re(B_ω e^{iω·x}). The variance beyond the kept modes
    (``tol`` σ², as in :func:`advection_diffusion_covariance`) is added as independent noise. NumPy, float64."""
    rng = np.random.default_rng(seed)
    X = np.atleast_2d(np.asarray(X, np.float64))
    times = np.asarray(times, np.float64).reshape(-1)
    if times.size > 1 and not np.all(np.diff(times) > 0):
        raise ValueError("times must be strictly increasing")
    m = _torus_modes(lengths, range=range, time_range=time_range, velocity=velocity, alpha=alpha, sigma=sigma,
                     angle=angle, ratio=ratio, tol=tol)
    E = np.exp(1j * X @ m.omega.T)  # (n, K)
    lam = m.re + 1j * m.im
    var = 4 * m.w  # E|B_ω|², so that ±ω together contribute 2w cos(ω·h − Im λ s) e^{−Re λ|s|}
    out = np.empty((num_samples, times.size, X.shape[0]))
    K = m.omega.shape[0]
    for i in builtins_range(0, num_samples, chunk):
        S = min(chunk, num_samples - i)

        def circ(shape):
            return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / math.sqrt(2)

        B = np.sqrt(var) * circ((S, K))
        b0 = math.sqrt(m.w0) * rng.standard_normal(S)
        for j, t in enumerate(times):
            if j > 0:
                dt = t - times[j - 1]
                B = np.exp(-lam * dt) * B + np.sqrt(var * -np.expm1(-2 * m.re * dt)) * circ((S, K))
                b0 = math.exp(-m.re0 * dt) * b0 + math.sqrt(m.w0 * -math.expm1(-2 * m.re0 * dt)) * rng.standard_normal(S)
            out[i:i + S, j] = (B @ E.T).real + b0[:, None] + math.sqrt(m.tail) * rng.standard_normal((S, X.shape[0]))
    return out


def advection_diffusion_fd_sample(seed: int, cells: int, times, *, length: float = 1.0, range: float,
                                  time_range: float, velocity: float, alpha: int, sigma: float = 1.0,
                                  dt: float, num_chains: int = 64, burn_in: float | None = None) -> np.ndarray:
    """Draws of the 1-D advection–diffusion field on a periodic grid of ``cells`` cells by finite differences
    in space and Crank–Nicolson in time — a truth independent of the Fourier modes of
    :func:`advection_diffusion_sample`: du = −A u dt + (τ/√c) dW with A = [(κ² − D₂)^α + γ D₁]/c, D₂ and D₁
    the periodic central differences, and the white noise's cell increments N(0, dt/h). Crank–Nicolson keeps
    every mode's stationary variance (it is 1/(2 Re λ) for any step) and is second order at the resolved
    modes; ``dt`` should be small against the slowest time scale and the lags. Each chain starts at 0 and runs
    ``burn_in`` (default 10 time ranges) before ``times`` (increasing, ≥ 0, multiples of dt). Returns
    (num_chains, len(times), cells), the values at the cell centres (i + ½)h."""
    from scipy import sparse
    from scipy.sparse.linalg import splu

    from pinnprob.spde.advection_diffusion import to_operator_params

    rng = np.random.default_rng(seed)
    if int(alpha) != alpha or alpha < 1:
        raise ValueError(f"the finite-difference truth takes an integer alpha ≥ 1, got {alpha}")
    p = to_operator_params(range=range, time_range=time_range, velocity=[velocity], alpha=alpha, sigma=sigma)
    kappa, c, tau, gamma = float(p.kappa), float(p.c), float(p.tau), float(p.gamma[0])
    h = length / cells
    eye = sparse.identity(cells, format="csr")
    shift = sparse.diags([np.ones(cells - 1)], [1], shape=(cells, cells), format="csr")
    shift = shift + sparse.csr_matrix(([1.0], ([cells - 1], [0])), shape=(cells, cells))  # u_{i+1}, periodic
    D2 = (shift + shift.T - 2 * eye) / h**2
    D1 = (shift - shift.T) / (2 * h)
    base = kappa**2 * eye - D2
    Ak = eye
    for _ in builtins_range(int(alpha)):
        Ak = Ak @ base
    A = ((Ak + gamma * D1) / c).tocsc()
    lu = splu((eye + 0.5 * dt * A).tocsc())
    rhs = (eye - 0.5 * dt * A).tocsr()
    noise_sd = tau / math.sqrt(c) * math.sqrt(dt / h)
    times = np.asarray(times, np.float64).reshape(-1)
    burn_in = 10 * time_range if burn_in is None else burn_in
    steps = np.rint((times + burn_in) / dt).astype(int)
    if np.any(np.abs(steps * dt - times - burn_in) > 1e-6 * dt) or np.any(np.diff(steps) <= 0):
        raise ValueError("times must be increasing multiples of dt")
    u = np.zeros((cells, num_chains))
    out = np.empty((num_chains, times.size, cells))
    j = 0
    for n in builtins_range(1, int(steps[-1]) + 1):
        u = lu.solve(rhs @ u + noise_sd * rng.standard_normal(u.shape))
        if n == steps[j]:
            out[:, j] = u.T
            j += 1
    return out
