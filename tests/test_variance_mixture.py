"""The variance-mixture (type-G) push-forward generator and its loss: exact moments, the cell projection,
the quantile base, training, the prior's contract and bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

import pinnprob
from pinnprob.config import PriorConfig, build_generator, build_loss
from pinnprob.generators.variance_mixture import CellProjection, log_gaussian_mass
from pinnprob.inference import LatentOnlyError
from pinnprob.noise import NIGNoise
from pinnprob.prior import GenerativePrior
from pinnprob.training import fit_generator

BOX = ((0.18, 0.55), (-1.1, 1.1), (3.5, 120.0))


def small_config(**kw):
    base = dict(family="mixture", spde="matern-nig", divergence="mmd", modes_per_dim=8, quadrature_per_dim=16,
                modes_per_step=16, test_per_dim=8, num_samples=32, batch_size=2, steps=3, train_range=BOX,
                valid_range=((0.2, 0.5), (-1.0, 1.0), (4.0, 100.0)))
    base.update(kw)
    return PriorConfig(**base)


@pytest.fixture(scope="module")
def gen():
    return build_generator(small_config(), jax.random.key(0))


def test_log_gaussian_mass_is_stable_in_both_tails():
    lo = jnp.array([-1.0, 8.0, -40.0, 0.5])
    hi = jnp.array([1.0, 9.0, -39.0, jnp.inf])
    exact = np.log([0.682689492137086, 6.2209605742717e-16 - 1.1285884059538e-19, np.nan, 0.308537538725987])
    got = np.asarray(log_gaussian_mass(lo, hi))
    assert np.allclose(got[[0, 3]], exact[[0, 3]], rtol=1e-6)
    assert abs(got[1] - exact[1]) < 1e-4
    # Φ(−39) − Φ(−40) ≈ φ(39)/39 (Mills): far below float64, still exact in the log
    assert abs(got[2] - (-0.5 * 39**2 - 0.5 * math.log(2 * math.pi) - math.log(39) - 1 / 39**2)) < 1e-2


def test_cell_projection_is_an_isometry_and_its_adjoint_is_the_transpose(gen):
    P = gen.projection
    K, J = gen.basis.eigenvalues.shape[0], P.num_cells
    A = np.asarray(P(jnp.eye(J)))  # (J, K): row j = the projection of cell j's indicator
    assert np.abs(A.T @ A - np.eye(K)).max() < 1e-5  # orthonormal modes on the cells (DCT-II)
    xi = jax.random.normal(jax.random.key(1), (3, K))
    assert np.allclose(np.asarray(P.adjoint(xi)), np.asarray(xi) @ A.T, atol=1e-5)
    with pytest.raises(ValueError, match="cells_per_side"):
        CellProjection(gen.basis, 4)


def test_mixing_moments_are_exact_for_the_piecewise_linear_map(gen):
    th = gen.space.theta(range=0.3, mu=0.5, eta=10.0)
    # quadrature of e^{c g(z)} φ(z) on a fine grid (g is linear outside the nodes: the tails are in)
    z = jnp.linspace(-14.0, 14.0, 400_001)
    g = gen.log_mixing(z, th)
    for c, got in zip((1, 2, 3, 4), gen.log_mixing_moments(th, (1, 2, 3, 4))):
        f = jnp.exp(c * g) * norm.pdf(z)
        ref = jnp.log(jnp.sum(0.5 * (f[1:] + f[:-1]) * jnp.diff(z)))
        assert abs(float(got - ref)) < 2e-4, c


def test_quantile_base_is_the_exact_inverse_gaussian_cell_law(gen):
    spde = gen.gaussian.spde
    for vals in ((0.2, 1.0, 4.0), (0.5, -1.0, 100.0), (0.3, 0.4, 15.0)):
        th = spde.space.theta(range=vals[0], mu=vals[1], eta=vals[2])
        mu_a, eta_a = (float(v) for v in spde.noise_params(th))
        h = gen.cell_area
        l1, l2 = gen.log_mixing_moments(th)
        var_w = math.expm1(float(l2 - 2 * l1))
        assert var_w == pytest.approx(1.0 / (eta_a * h), rel=0.02)  # IG(1, ηh): variance 1/(ηh)
        k3, k4 = (float(v) for v in gen.cell_cumulants(th))
        _, c3, c4 = NIGNoise.cumulant_factors(mu_a, eta_a)
        assert k3 == pytest.approx(c3 / math.sqrt(h), rel=0.05)
        assert k4 == pytest.approx(c4 / h, rel=0.1)
    q = np.asarray(gen.mixing_quantiles(th, jnp.array([0.05, 0.5, 0.95])))
    lam = eta_a * h
    import scipy.stats as st
    ref = st.invgauss(mu=1 / lam, scale=lam).ppf([0.05, 0.5, 0.95])
    assert np.allclose(q, ref, rtol=0.03)


def test_lognormal_base_has_the_exact_variance_and_light_skewness():
    g = build_generator(small_config(mixing_base="lognormal"), jax.random.key(0))
    spde = g.gaussian.spde
    th = spde.space.theta(range=0.3, mu=0.5, eta=10.0)
    l1, l2 = g.log_mixing_moments(th)
    var = float(g.gaussian.spde.noise.mixing_variance(spde.noise_params(th), g.cell_area))
    assert math.expm1(float(l2 - 2 * l1)) == pytest.approx(var, rel=0.02)
    with pytest.raises(ValueError, match="base must be"):
        build_generator(small_config(mixing_base="gamma"), jax.random.key(0))


def test_cell_noise_is_standardised_and_its_samples_have_the_exact_cumulants(gen):
    th = gen.space.theta(range=0.3, mu=1.0, eta=60.0)
    S = 4000
    n = np.asarray(jax.vmap(lambda z: gen.noise(z, th))(jax.random.normal(jax.random.key(2), (S, gen.latent_dim))))
    x = n.ravel()  # S·J independent cells
    N = x.size
    assert abs(x.mean()) < 4 / math.sqrt(N)
    se_var = math.sqrt((np.mean(x**4) - 1.0) / N)
    assert abs(x.var() - 1.0) < 4 * se_var
    k3 = float(gen.cell_cumulants(th)[0])
    se3 = math.sqrt(np.var(x**3) / N)
    assert abs(np.mean(x**3) - k3) < 4 * se3


def test_marginal_moments_match_the_generators_samples(gen):
    th = gen.space.theta(range=0.3, mu=1.0, eta=60.0)
    X = jnp.array([[0.5, 0.5], [0.0, 0.5]])
    v, s, _ = (np.asarray(t) for t in gen.marginal_moments(X, th))
    # the fields as sampled (features @ coefficients), a path apart from the adjoint's
    Z = jax.random.normal(jax.random.key(3), (20_000, gen.latent_dim))
    U = np.asarray(jax.jit(jax.vmap(lambda z: gen(X, z, th)))(Z))
    assert np.allclose(U.var(0), v, rtol=4 * math.sqrt(2 / 20_000) * 2)
    m3 = np.mean((U - U.mean(0)) ** 3, 0) / U.var(0) ** 1.5
    se = np.sqrt(np.var(((U - U.mean(0)) / U.std(0)) ** 3, 0) / 20_000)
    assert np.all(np.abs(m3 - s) < 4 * se + 1e-3)
    assert np.all(s > 0)  # μ > 0: right-skewed


def test_covariance_factor_is_the_exact_covariance(gen):
    th = gen.space.theta(range=0.3, mu=-0.5, eta=10.0)
    X = jax.random.uniform(jax.random.key(4), (6, 2))
    F = gen.covariance_factor(X, th)
    v, _, _ = gen.marginal_moments(X, th)
    assert np.allclose(np.diag(np.asarray(F @ F.T)), np.asarray(v), rtol=1e-5)
    # the amplitudes do not see the noise's parameters
    th2 = gen.space.theta(range=0.3, mu=0.9, eta=90.0)
    assert np.allclose(np.asarray(gen.amplitudes(th)), np.asarray(gen.amplitudes(th2)))
    # the training evaluator reads the same exact covariance (no sampled estimate)
    from pinnprob.api import covariance_error_evaluator, eval_grid
    from pinnprob.truth import reference_covariance

    t = {"range": 0.3, "mu": -0.5, "eta": 10.0}
    G = eval_grid(2)
    Fg = np.asarray(gen.covariance_factor(jnp.asarray(G), th), np.float64)
    C = np.asarray(reference_covariance(gen.spde, G, **t), np.float64)
    err = covariance_error_evaluator(small_config(), thetas=[t])(gen)["cov_err_max"]
    assert err == pytest.approx(np.linalg.norm(Fg @ Fg.T - C) / np.linalg.norm(C), rel=1e-4)


@pytest.mark.parametrize("divergence", ["kl", "mmd"])
def test_the_loss_trains_the_amplitudes_and_keeps_finite(divergence):
    steps = 40 if divergence == "kl" else 10
    cfg = small_config(divergence=divergence, steps=steps, learning_rate=1e-2)
    g0 = build_generator(cfg, jax.random.key(0))
    loss = build_loss(cfg)
    th = cfg.train_space.theta(range=0.3, mu=0.5, eta=10.0)
    before = float(loss(g0, jax.random.key(1), th))
    g1, hist = fit_generator(g0, loss, space=cfg.train_space, key=jax.random.key(2), steps=steps, batch_size=2,
                             learning_rate=1e-2, progress=False)
    after = float(loss(g1, jax.random.key(1), th))
    assert np.isfinite(after) and after < before
    if divergence == "kl":  # the mixing law stays at its base: the KL does not reach it
        assert np.array_equal(np.asarray(g1.mixing_net.layers[-1].weight), np.asarray(g0.mixing_net.layers[-1].weight))
    with pytest.raises(ValueError, match="sample divergence"):
        build_loss(small_config(divergence="w2"))


def test_prior_round_trip_sampling_and_the_latent_only_contract(tmp_path):
    cfg = small_config()
    prior = GenerativePrior(build_generator(cfg, jax.random.key(0)), cfg)
    path = prior.save(tmp_path / "nig.eqx")
    back = pinnprob.load(path)
    assert back.fingerprint == prior.fingerprint and not back.gaussian
    X = np.array([[0.2, 0.3], [0.7, 0.5]])
    X0 = X.copy()
    u = back.sample(jax.random.key(0), X, num_samples=3, range=0.3, mu=0.5, eta=10.0)
    assert u.shape == (3, 2) and np.all(np.isfinite(np.asarray(u)))
    d = back.distribution(X, range=0.3, mu=0.5, eta=10.0)
    with pytest.raises(LatentOnlyError, match="latent"):
        d.log_prob(jnp.zeros(2))
    for bad, msg in [(dict(eta=0.0), "eta must be > 0"), (dict(eta=-1.0), "eta must be > 0"),
                     (dict(mu=float("nan")), "mu"), (dict(mu=float("inf")), "mu"), (dict(mu=1.5), "outside"),
                     (dict(eta=500.0), "outside"), (dict(range=0.1), "outside")]:
        p = dict(range=0.3, mu=0.5, eta=10.0) | bad
        with pytest.raises(ValueError, match=msg):
            back.sample(jax.random.key(0), X, **p)
    assert np.array_equal(X, X0)


def test_config_round_trip_keeps_the_mixing_base():
    cfg = small_config(mixing_base="lognormal")
    assert PriorConfig.from_dict(cfg.to_dict()) == cfg
    assert "mixing_base" not in small_config().to_dict()


def test_the_shipped_nig2d_prior_holds_its_claims():
    from pinnprob.api import eval_grid
    from pinnprob.truth import box_covariance, nig_matern_moments

    prior = pinnprob.pretrained("nig2d")
    space, spde, gen = prior.param_range, prior.spde, prior.generator
    assert space.bounds("range") == (0.2, 0.5) and space.bounds("mu") == (-1.0, 1.0) and space.bounds("eta") == (4.0, 100.0)
    grid = eval_grid(2)
    for vals in ({"range": 0.2, "mu": 1.0, "eta": 4.0}, {"range": 0.5, "mu": -0.3, "eta": 60.0}):
        th = prior.theta(**vals)
        F = np.asarray(gen.covariance_factor(jnp.asarray(grid), th), np.float64)
        C = box_covariance(grid, grid, spde.domain, range=vals["range"], sigma=1.0, nu=1.0)
        assert np.linalg.norm(F @ F.T - C) / np.linalg.norm(C) < 0.01  # measured 0.2-0.5 %
        Cp = np.asarray(prior.covariance(grid, sigma=1.5, **vals), np.float64)  # the same, through the prior
        assert np.allclose(Cp, 2.25 * F @ F.T, rtol=1e-4, atol=1e-6 * np.abs(Cp).max())
        mu_a, eta_a = (float(v) for v in spde.noise_params(th))
        _, c3, c4 = NIGNoise.cumulant_factors(mu_a, eta_a)
        k3, k4 = (float(v) for v in gen.cell_cumulants(th))
        assert k3 == pytest.approx(c3 / math.sqrt(gen.cell_area), rel=0.01)
        assert k4 == pytest.approx(c4 / gen.cell_area, rel=0.01)
    # the field's marginal law at the centre, against the continuum (range 0.2: the walls are far)
    th = prior.theta(range=0.2, mu=1.0, eta=4.0)
    _, s, k = (float(np.asarray(v)[0]) for v in gen.marginal_moments(jnp.array([[0.5, 0.5]]), th))
    skew, kurt = nig_matern_moments(range=0.2, **dict(zip(("mu", "eta"), (float(v) for v in spde.noise_params(th)))))
    assert s == pytest.approx(skew, rel=0.04) and k == pytest.approx(kurt, rel=0.12)  # measured −2 %, −9 %


def test_the_inference_generator_reads_the_amplitudes_from_a_table_with_the_same_law():
    """for_inference: the amplitudes (a function of the range alone) from a Hermite table over the model's
    log-range bounds; the field for the same latent is the network's, and prior.distribution keeps the
    trunk as separable tables by default with the dense trunk's values."""
    prior = pinnprob.pretrained("nig2d")
    gen, space = prior.generator, prior.param_range
    bounds = space.natural_box
    tab = gen.for_inference(bounds)
    assert type(tab) is type(gen) and tab.latent_dim == gen.latent_dim
    ths = [space.theta(range=r, mu=m, eta=e) for r, m, e in ((0.2, -1.0, 4.0), (0.33, 0.4, 17.0), (0.5, 1.0, 100.0))]
    for th in ths:
        assert float(jnp.max(jnp.abs(tab.log_amplitudes(th) - gen.log_amplitudes(th)))) < 1e-4
    X = np.array([[0.1, 0.2], [0.5, 0.5], [0.93, 0.71]])
    z = jax.random.normal(jax.random.key(3), (gen.latent_dim,))
    th = ths[1]
    u_net = np.asarray(gen(jnp.asarray(X), z, th))
    u_tab = np.asarray(tab(jnp.asarray(X), z, th))
    assert np.abs(u_tab - u_net).max() < 1e-3 * np.abs(u_net).max()
    d_sep = prior.distribution(X, range=0.33, mu=0.4, eta=17.0)
    d_dense = prior.distribution(X, range=0.33, mu=0.4, eta=17.0, separable=False)
    assert not isinstance(d_dense.features, type(d_sep.features))
    assert np.allclose(np.asarray(d_sep.from_latent(z)), np.asarray(d_dense.from_latent(z)), rtol=1e-4, atol=1e-5)
    # a table holds other axes at `rest`; it refuses a θ it cannot hold
    with pytest.raises(ValueError, match="rest"):
        type(tab.gaussian)(gen.gaussian, bounds[0], (0.0, 0.0), num_range=5)
