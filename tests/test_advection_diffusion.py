"""The advection–diffusion SPDE (Clarotto et al. 2024) and its truths: the parameter conversions both
ways, the symbol against the mode variances, the exact torus covariance against the image-sum Matérn at
lag 0 and against the time range's definition, the exact sampler against its covariance within the
Monte Carlo floor, and the finite-difference simulation (independent of the Fourier modes) against the
exact covariance, including the direction in which the field moves."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnprob import truth
from pinnprob.domain import Box
from pinnprob.fem import anisotropy_matrix
from pinnprob.spde.advection_diffusion import (
    AdvectionDiffusion,
    advection_diffusion_space,
    from_operator_params,
    to_operator_params,
)


def rel_fro(A, B):
    return float(np.linalg.norm(A - B) / np.linalg.norm(B))


def mc_floor(C, n):
    """The expected relative Frobenius error of an n-sample covariance estimate (mean known): for Gaussian
    data E‖Ĉ − C‖² = Σ_ij (C_ij² + C_ii C_jj)/n."""
    return math.sqrt((np.sum(C**2) + np.sum(np.outer(np.diag(C), np.diag(C)))) / n) / np.linalg.norm(C)


@pytest.mark.parametrize("d", [1, 2])
def test_conversions_both_ways(d):
    rng = np.random.default_rng(0)
    for _ in range(5):
        alpha = rng.uniform(d / 2 + 0.3, 3.0)
        user = {"range": rng.uniform(0.05, 1.0), "time_range": rng.uniform(0.1, 10.0),
                "velocity": rng.normal(size=d), "alpha": alpha, "sigma": rng.uniform(0.3, 3.0)}
        H = anisotropy_matrix(rng.uniform(0, math.pi), math.log(rng.uniform(1, 3))) if d == 2 else None
        p = to_operator_params(**user, H=H)
        back = from_operator_params(p)
        for k, v in user.items():
            np.testing.assert_allclose(np.asarray(back[k]), v, rtol=1e-10)
        # the definitions themselves: ν = α − d/2, ρ = √(8ν)/κ, ρ_t = 2c/κ^{2α}, v = γ/c
        nu = alpha - d / 2
        np.testing.assert_allclose(float(p.kappa), math.sqrt(8 * nu) / user["range"], rtol=1e-12)
        np.testing.assert_allclose(float(p.c), user["time_range"] * float(p.kappa) ** (2 * alpha) / 2, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(p.gamma), float(p.c) * user["velocity"], rtol=1e-12)


def test_sigma_is_the_marginal_sd_on_r_d():
    # 1-D, α = 1: the spatial marginal is exponential with variance (τ²/2) ∫ dω/(2π(κ² + ω²)) = τ²/(4κ)
    p = to_operator_params(range=0.3, time_range=1.0, velocity=[0.2], alpha=1.0, sigma=1.7)
    np.testing.assert_allclose(float(p.tau) ** 2 / (4 * float(p.kappa)), 1.7**2, rtol=1e-12)


def test_spde_object_checks_its_domain_and_order():
    with pytest.raises(ValueError, match="periodic"):
        AdvectionDiffusion(Box.unit(1))
    with pytest.raises(ValueError, match="alpha must exceed"):
        AdvectionDiffusion(Box.unit(2, "periodic"), space=advection_diffusion_space(2, alpha=(1.0, 2.0)))
    spde = AdvectionDiffusion(Box.unit(2, "periodic"))
    assert spde.space.names == ("range", "time_range", "velocity_x1", "velocity_x2", "alpha", "angle", "ratio")
    assert spde.space.axis("velocity_x1").length_power == 1 and spde.space.axis("velocity_x1").time_power == -1


@pytest.mark.parametrize("d", [1, 2])
def test_symbol_integrates_to_the_mode_variance(d):
    # ∫ |D(ω, ϖ)|⁻² dϖ/2π = (τ²/c)/(2 Re λ_ω): the space-time symbol and the OU mode law agree
    spde = AdvectionDiffusion(Box.unit(d, "periodic"))
    vals = {"range": 0.2, "time_range": 1.5, "alpha": 1.7 if d == 2 else 1.3,
            **{n: 0.1 * (i + 1) for i, n in enumerate(spde.velocity_names)}, **({"angle": 0.6, "ratio": 2.0} if d == 2 else {})}
    theta = spde.space.theta(**vals)
    omega = jnp.asarray(2 * math.pi * np.array([[0] * d, [1] * d, [3] + [-2] * (d - 1)], float))
    re, im = spde.rates(omega, theta)
    for k in range(omega.shape[0]):
        # ϖ = −Im λ + Re λ tan(φ): the Lorentzian in ϖ becomes flat in φ ∈ (−π/2, π/2)
        phi = jnp.linspace(-math.pi / 2, math.pi / 2, 20001)[1:-1]
        w = -im[k] + re[k] * jnp.tan(phi)
        freqs = jnp.concatenate([jnp.broadcast_to(omega[k], (phi.shape[0], d)), w[:, None]], 1)
        dens = jnp.exp(-2 * spde.log_symbol(freqs, theta)) * re[k] / jnp.cos(phi) ** 2
        integral = float(jnp.trapezoid(dens, phi)) / (2 * math.pi)
        np.testing.assert_allclose(integral, float(jnp.exp(spde.log_mode_variance(omega[k:k + 1], theta))[0]), rtol=1e-3)


@pytest.mark.parametrize("d,alpha", [(1, 1.0), (1, 2.0), (2, 2.0)])
def test_lag_zero_is_the_periodic_matern_of_the_image_sum(d, alpha):
    # at s = 0 the advection–diffusion field is the Matérn ν = α − d/2 on the torus, whatever the velocity
    rng = np.random.default_rng(1)
    X = rng.uniform(size=(30, d))
    C = truth.advection_diffusion_covariance(X, np.zeros(30), lengths=(1.0,) * d, range=0.25, time_range=1.0,
                                             velocity=[0.3] * d, alpha=alpha)
    C0 = truth.box_covariance(X, X, Box.unit(d, "periodic"), range=0.25, sigma=1.0, nu=alpha - d / 2)
    assert rel_fro(C, C0) < 2e-4


def test_velocity_is_a_galilean_shift_and_time_range_its_definition():
    kw = dict(lengths=(1.0,), range=0.2, time_range=0.8, alpha=1.5)
    h = np.linspace(0, 1, 64, endpoint=False)
    s = 0.3
    moving = truth.advection_diffusion_covariance(h[:, None], np.full(64, s), np.zeros((1, 1)), np.zeros(1),
                                                  velocity=[0.25], **kw)[:, 0]
    still = truth.advection_diffusion_covariance((h - 0.25 * s)[:, None] % 1.0, np.full(64, s), np.zeros((1, 1)),
                                                 np.zeros(1), velocity=[0.0], **kw)[:, 0]
    np.testing.assert_allclose(moving, still, atol=1e-10)  # C(h, s; v) = C(h − vs, s; 0)
    # the spatial mean's correlation at lag ρ_t is e^{−2}: the mean over h of C(h, s) is the zero mode's
    means = [np.mean(truth.advection_diffusion_covariance(h[:, None], np.full(64, t), np.zeros((1, 1)), np.zeros(1),
                                                          velocity=[0.25], **kw)) for t in (0.0, 0.8)]
    # (up to the modes that the 64-point grid aliases onto the mean, k = ±64, 1e-4 of the variance at lag 0)
    np.testing.assert_allclose(means[1] / means[0], math.exp(-2), rtol=5e-4)


@pytest.mark.parametrize("d", [1, 2])
def test_exact_sampler_within_its_monte_carlo_floor(d):
    kw = dict(lengths=(1.0,) * d, range=0.3, time_range=1.0, velocity=[0.2, -0.1][:d], alpha=d / 2 + 0.8,
              **({"angle": 0.7, "ratio": 2.0} if d == 2 else {}))
    X = np.random.default_rng(2).uniform(size=(6, d))
    times = np.array([0.0, 0.1, 0.3, 0.7])
    n = 3000
    U = truth.advection_diffusion_sample(3, X, times, num_samples=n, tol=1e-3, **kw).reshape(n, -1)
    C = truth.advection_diffusion_covariance(np.tile(X, (4, 1)), np.repeat(times, 6), tol=1e-3, **kw)
    floor = mc_floor(C, n)
    err = rel_fro(U.T @ U / n, C)
    # the ratio err/floor of a 24-dimensional estimate has a standard deviation of ~0.1
    assert err < 1.4 * floor, (err, floor)


def test_finite_differences_agree_and_move_downwind():
    kw = dict(range=0.3, time_range=1.0, velocity=0.25, alpha=1)
    cells, chains = 64, 32
    F = truth.advection_diffusion_fd_sample(4, cells, np.arange(0, 80, 0.25), dt=0.005, num_chains=chains, **kw)
    shifts, lag = np.arange(-12, 13, 4), 2  # h = shift/64, s = 0.5: the pattern moves by v s = 0.125 = 8 cells
    est = np.array([[np.mean(np.roll(F[c, lag:], -sh, axis=1) * F[c, :-lag]) for sh in shifts] for c in range(chains)])
    m, se = est.mean(0), est.std(0, ddof=1) / math.sqrt(chains)
    exact = truth.advection_diffusion_covariance((shifts / cells)[:, None] % 1.0, np.full(shifts.size, 0.5),
                                                 np.zeros((1, 1)), np.zeros(1), lengths=(1.0,), range=0.3,
                                                 time_range=1.0, velocity=[0.25], alpha=1.0)[:, 0]
    assert np.all(np.abs(m - exact) < 4 * se), ((m - exact) / se)
    diff = est[:, shifts == 8][:, 0] - est[:, shifts == -8][:, 0]  # C(+vs, s) − C(−vs, s), per chain
    assert diff.mean() > 6 * diff.std(ddof=1) / math.sqrt(chains)  # the field moves downwind, not upwind


def test_truth_refuses_bad_input():
    with pytest.raises(ValueError, match="velocity must have 2"):
        truth.advection_diffusion_covariance(np.zeros((2, 2)), np.zeros(2), lengths=(1.0, 1.0), range=0.2,
                                             time_range=1.0, velocity=[0.1], alpha=2.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        truth.advection_diffusion_sample(0, np.zeros((2, 1)), [0.0, 0.5, 0.5], lengths=(1.0,), range=0.2,
                                         time_range=1.0, velocity=[0.1], alpha=1.0)
    with pytest.raises(ValueError, match="alpha must exceed"):
        truth.advection_diffusion_covariance(np.zeros((2, 2)), np.zeros(2), lengths=(1.0, 1.0), range=0.2,
                                             time_range=1.0, velocity=[0.1, 0.0], alpha=1.0)


def test_spde_is_jittable_and_differentiable():
    spde = AdvectionDiffusion(Box.unit(1, "periodic"))
    theta = spde.space.theta(range=0.2, time_range=1.0, velocity_x1=0.1, alpha=1.5)
    omega = jnp.array([[0.0], [2 * math.pi], [4 * math.pi]])
    f = jax.jit(lambda t: jnp.sum(spde.log_mode_variance(omega, t)) + jnp.sum(spde.rates(omega, t)[1]))
    g = jax.grad(f)(theta)
    assert np.all(np.isfinite(np.asarray(g))) and float(jnp.abs(g[2])) > 0
