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


# -- the generator, its weak-form loss and the shipped prior ---------------------------------------------

from pinnprob.generators.fourier_ou import FourierOUGenerator  # noqa: E402
from pinnprob.spacetime_loss import (  # noqa: E402
    OUWeakFormLoss,
    _complex_kl,
    _logdet_toeplitz,
    hat_gram,
    ou_residual_covariance,
)


def test_levinson_log_det_and_hat_gram():
    P, _ = ou_residual_covariance(1.2 + 0.7j, 1.3, 0.5, 8, 16, 1.0)
    np.testing.assert_allclose(float(_logdet_toeplitz(P[:, 0])), np.linalg.slogdet(np.asarray(P, complex))[1], rtol=1e-5)
    t = np.linspace(-2, 4, 600001)
    hat = lambda c: np.maximum(0, 1 - np.abs(t - c) / 2.0)  # noqa: E731  half-width 2
    G = hat_gram(3, 2.0)
    np.testing.assert_allclose([np.trapezoid(hat(0) * hat(0), t), np.trapezoid(hat(0) * hat(2), t)], [G[0, 0], G[0, 1]],
                               rtol=1e-6)


class OracleOU(FourierOUGenerator):
    """The generator with the exact OU law of every mode (the truth of the advection–diffusion SPDE),
    scaled by ``scale`` in variance: what the loss must score ≈ 0 (scale 1) and the covariance must
    reproduce."""

    scale: float

    def __init__(self, key, spde, num_per_dim, scale=1.0):
        super().__init__(key, spde, num_per_dim=num_per_dim)
        self.scale = scale

    def mode_params(self, theta, omega=None):
        omega = self.omega if omega is None else omega
        re, im = self.spde.rates(omega, theta)
        log_v = jnp.log(4.0) + self.spde.log_mode_variance(omega, theta) - math.log(math.prod(self.spde.domain.lengths))
        return log_v + math.log(self.scale), jnp.log(re), im


def oracle(d=1, scale=1.0, num_per_dim=128):
    spde = AdvectionDiffusion(Box.unit(d, "periodic"), space=advection_diffusion_space(d, velocity=(-0.5, 0.5)))
    return OracleOU(jax.random.PRNGKey(0), spde, num_per_dim, scale)


@pytest.mark.parametrize("width", [1.0, 2.0])
def test_residual_law_of_the_true_ou_is_the_tested_noise(width):
    # the true rate and variance score at the quadrature's level; a 10 % error in either scores 10× more
    sub = 16
    for mu in (0.0, 2.0):
        P, _ = ou_residual_covariance(1 + 1j * mu, 1.0, mu, 8, sub, width)
        base = float(_complex_kl(P, 8, width, 1e-6))
        assert base < 1e-4
        for rho, v in ((1 + 1j * mu, 1.1), (1.1 + 1j * mu, 1.0)):
            assert float(_complex_kl(ou_residual_covariance(rho, v, mu, 8, sub, width)[0], 8, width, 1e-6)) > 10 * base + 1e-3


def test_loss_scores_the_exact_law_near_zero_and_a_wrong_one_high():
    loss = OUWeakFormLoss(oracle().spde, num_test=8, sub=16, num_modes=24)
    theta = oracle().spde.space.theta(range=0.2, time_range=1.5, velocity_x1=0.3, alpha=1.5)
    key = jax.random.PRNGKey(0)
    exact, wrong = float(loss(oracle(), key, theta)), float(loss(oracle(scale=1.2), key, theta))
    assert exact < 1e-3 and wrong > 5 * exact, (exact, wrong)


@pytest.mark.parametrize("d", [1, 2])
def test_generator_covariance_with_the_exact_modes_is_the_truth(d):
    gen = oracle(d, num_per_dim=128 if d == 1 else 40)
    vals = {"range": 0.25, "time_range": 1.0, "alpha": 1.5 if d == 1 else 2.0,
            **{n: 0.2 for n in gen.spde.velocity_names}, **({"angle": 0.5, "ratio": 1.5} if d == 2 else {})}
    theta = gen.spde.space.theta(**vals)
    X = np.random.default_rng(5).uniform(size=(10, d))
    T = np.random.default_rng(6).uniform(0, 2, size=10)
    G = np.asarray(gen.covariance(jnp.asarray(X), jnp.asarray(T), jnp.asarray(X), jnp.asarray(T), theta), np.float64)
    kw = dict(lengths=(1.0,) * d, range=0.25, time_range=1.0, alpha=vals["alpha"], velocity=[0.2] * d,
              **({"angle": 0.5, "ratio": 1.5} if d == 2 else {}))
    C = truth.advection_diffusion_covariance(X, T, **kw)
    # the generator's site-time noise replaces the modes beyond its trunk
    assert rel_fro(G, C) < 2e-3


def test_generator_sampler_within_its_monte_carlo_floor():
    gen = oracle(1, num_per_dim=64)
    theta = gen.spde.space.theta(range=0.3, time_range=1.0, velocity_x1=-0.3, alpha=1.2)
    X, times = jnp.linspace(0.05, 0.95, 6)[:, None], jnp.array([0.0, 0.2, 0.5, 1.0])
    n = 3000
    U = np.asarray(gen.sample(jax.random.PRNGKey(2), X, times, theta, n), np.float64).reshape(n, -1)
    XX, TT = jnp.tile(X, (4, 1)), jnp.repeat(times, 6)
    C = np.asarray(gen.covariance(XX, TT, XX, TT, theta), np.float64)
    assert rel_fro(U.T @ U / n, C) < 1.4 * mc_floor(C, n)


# -- the shipped 1-D prior ------------------------------------------------------------------------------

import pinnprob  # noqa: E402
from pinnprob.spacetime_prior import SpaceTimePrior  # noqa: E402

PRIOR_1D = dict(range=0.25, time_range=1.0, velocity_x1=0.2, alpha=1.5)


@pytest.fixture(scope="module")
def prior1d():
    return pinnprob.pretrained("advection-diffusion-1d")


def test_shipped_prior_is_a_space_time_prior_and_round_trips(prior1d, tmp_path):
    assert isinstance(prior1d, SpaceTimePrior)
    assert prior1d.param_names == ("range", "time_range", "velocity_x1", "alpha")
    back = pinnprob.load(prior1d.save(tmp_path / "p.eqx"))
    assert isinstance(back, SpaceTimePrior) and back.fingerprint == prior1d.fingerprint


@pytest.mark.parametrize("vals", [PRIOR_1D, dict(range=0.13, time_range=3.0, velocity_x1=-0.33, alpha=1.25),
                                  dict(range=0.4, time_range=0.65, velocity_x1=0.3, alpha=1.75)])
def test_shipped_prior_against_the_exact_covariance(prior1d, vals):
    X = (np.arange(8) + 0.5) / 8
    T = np.repeat(np.arange(6) * vals["time_range"] / 4, 8)
    XX = np.tile(X, 6)[:, None]
    C = truth.advection_diffusion_covariance(XX, T, lengths=(1.0,), range=vals["range"], time_range=vals["time_range"],
                                             velocity=[vals["velocity_x1"]], alpha=vals["alpha"])
    G = np.asarray(prior1d.covariance(XX, T, sigma=1.3, **vals), np.float64) / 1.3**2
    assert rel_fro(G, C) < 0.05


def test_shipped_prior_distribution_and_sampler(prior1d):
    import numpyro
    import numpyro.distributions as dist
    from scipy import stats

    rng = np.random.default_rng(7)
    X, T = rng.uniform(size=(12, 1)), rng.uniform(0, 3, size=12)  # stations reporting at different times
    d = prior1d.distribution(X, T, sigma=0.8, **PRIOR_1D)
    y = rng.normal(size=12)
    C = np.asarray(d.covariance_matrix, np.float64)
    np.testing.assert_allclose(float(d.log_prob(jnp.asarray(y))), stats.multivariate_normal(np.zeros(12), C).logpdf(y),
                               rtol=1e-4)

    def model():  # the parameters traced inside a NumPyro model
        r = numpyro.sample("range", dist.Uniform(0.15, 0.4))
        v = numpyro.sample("v", dist.Uniform(-0.3, 0.3))
        numpyro.sample("y", prior1d.distribution(X, T, range=r, time_range=1.0, velocity_x1=v, alpha=1.5), obs=y)

    from numpyro.infer.util import log_density

    lp = jax.jit(lambda r, v: log_density(model, (), {}, {"range": r, "v": v})[0])(0.25, 0.2)
    assert np.isfinite(float(lp))
    U = prior1d.sample(jax.random.PRNGKey(0), X, np.array([0.0, 0.5]), num_samples=3, **PRIOR_1D)
    assert U.shape == (3, 2, 12) and np.all(np.isfinite(np.asarray(U)))


def test_shipped_prior_refuses_bad_input(prior1d):
    X = np.array([[0.1], [0.5]])
    X0 = X.copy()
    with pytest.raises(ValueError, match="strictly increasing"):
        prior1d.sample(jax.random.PRNGKey(0), X, [0.0, 1.0, 0.5], **PRIOR_1D)
    with pytest.raises(ValueError, match="strictly increasing"):
        prior1d.sample(jax.random.PRNGKey(0), X, [0.0, 1.0, 1.0], **PRIOR_1D)
    with pytest.raises(ValueError, match="NaN"):
        prior1d.covariance(X, [0.0, np.nan], **PRIOR_1D)
    with pytest.raises(ValueError, match="one time per site"):
        prior1d.covariance(X, [0.0], **PRIOR_1D)
    with pytest.raises(ValueError, match="appears 2 times"):
        prior1d.distribution(np.array([[0.1], [0.1]]), [1.0, 1.0], **PRIOR_1D)
    with pytest.raises(ValueError, match="velocity_x1 = 0.9 is outside"):
        prior1d.covariance(X, [0.0, 1.0], **{**PRIOR_1D, "velocity_x1": 0.9})
    with pytest.raises(ValueError, match="outside the unit box"):
        prior1d.covariance(X + 1.0, [0.0, 1.0], **PRIOR_1D)
    np.testing.assert_array_equal(X, X0)


def test_fit_refuses_a_space_time_prior_before_any_work(prior1d):
    with pytest.raises(ValueError, match="space-time data"):
        pinnprob.fit(np.random.default_rng(0).uniform(size=(20, 2)), np.zeros(20), prior=prior1d)


def test_shipped_2d_prior_against_the_exact_covariance():
    """The 2-D prior at a point of its claimed box with anisotropy and a diagonal velocity: within 5 % of the
    exact torus covariance on 8 × 8 sites × 6 lags (the benchmark measures 24 points)."""
    prior = pinnprob.pretrained("advection-diffusion-2d")
    assert isinstance(prior, SpaceTimePrior) and prior.dim == 2
    vals = dict(range=0.2, time_range=1.5, velocity_x1=0.2, velocity_x2=-0.15, alpha=2.2, angle=0.7, ratio=1.8)
    g = (np.arange(8) + 0.5) / 8
    X = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    T = np.repeat(np.arange(6) * vals["time_range"] / 4, 64)
    XX = np.tile(X, (6, 1))
    C = truth.advection_diffusion_covariance(XX, T, lengths=(1.0, 1.0), range=0.2, time_range=1.5,
                                             velocity=[0.2, -0.15], alpha=2.2, angle=0.7, ratio=1.8)
    G = np.asarray(prior.covariance(XX, T, **vals), np.float64)
    assert rel_fro(G, C) < 0.05
    # the field moves with the velocity: u(x + v s, t + s) is more correlated with u(x, t) than u(x − v s, t + s)
    x0 = np.array([[0.5, 0.5]])
    s = 1.0
    down = float(prior.covariance(x0 + s * np.array([0.2, -0.15]), [s], x0, [0.0], **vals)[0, 0])
    up = float(prior.covariance(x0 - s * np.array([0.2, -0.15]), [s], x0, [0.0], **vals)[0, 0])
    assert down > 1.5 * up
