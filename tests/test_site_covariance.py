"""The reduced-basis site covariance of a spectral prior: its error bound holds against the modes'
covariance, and the collapsed likelihood and the field's recovery through it equal the exact ones."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pinnprob
from pinnprob.inference.collapsed import CollapsedGaussian, conditional_latent
from pinnprob.inference.model import SITE_COVARIANCE_TOL, collapsed_path
from pinnprob.inference.site_covariance import RANK_MULTIPLE, SiteCovariance, site_covariance_design


@pytest.fixture(scope="module")
def prior():
    return pinnprob.pretrained("matern2d").truncate(0.1)  # ~1 900 modes: more than the sites


@pytest.fixture(scope="module")
def setup(prior):
    X = np.random.default_rng(0).uniform(0.1, 0.9, (60, 2))
    bounds = prior.param_range.natural_box.copy()
    bounds[0, 0] = np.log(0.1)  # the truncation's floor
    gen = prior.generator.for_inference(bounds)
    Phi = gen.features(jnp.asarray(X))
    return X, bounds, gen, Phi, SiteCovariance.build(gen, Phi, bounds)


def _nuclear(A):
    return float(np.abs(np.linalg.eigvalsh(np.asarray(A, np.float64))).sum())


def test_design_holds_fixed_axes_and_starts_at_the_corners():
    b = np.array([[0.0, 1.0], [2.0, 2.0], [-1.0, 1.0]])
    d = site_covariance_design(b, 10)
    assert d.shape == (10, 3) and np.all(d[:, 1] == 2.0)
    assert {tuple(r) for r in d[:4, [0, 2]]} == {(0.0, -1.0), (0.0, 1.0), (1.0, -1.0), (1.0, 1.0)}
    later = site_covariance_design(b, 5, skip=10)
    assert not np.any(np.all(np.isin(later, d), axis=1))  # check points are not design points
    assert np.all((later >= b[:, :1].T) & (later <= b[:, 1:].T))


def test_error_bound_holds_against_the_modes(setup):
    X, bounds, gen, Phi, sc = setup
    assert sc.rank < 40 and sc.rank % RANK_MULTIPLE == 0 and sc.error <= SITE_COVARIANCE_TOL
    P = np.asarray(Phi, np.float64)
    for th in site_covariance_design(bounds, 6, skip=5000):  # θs neither design nor check points
        s = np.asarray(gen.branch(jnp.asarray(th, Phi.dtype)), np.float64) ** 2
        K = (P * s) @ P.T
        err = _nuclear(K - np.asarray(sc(jnp.asarray(s, Phi.dtype)), np.float64)) / np.trace(K)
        bound = float(sc.error_at(jnp.asarray(s, Phi.dtype)))
        assert err <= bound * 1.05 + 2e-6  # the bound, up to float32 rounding of the blocks
        assert bound <= 3 * SITE_COVARIANCE_TOL
    # a rank too small for the tolerance: the bound says so, and still holds
    small = SiteCovariance.build(gen, Phi, bounds, tol=1e-9, max_rank=2)
    assert small.rank == 2 and small.error > 1e-3
    s = np.asarray(gen.branch(jnp.asarray(site_covariance_design(bounds, 1, skip=777)[0], Phi.dtype)), np.float64) ** 2
    K = (P * s) @ P.T
    err = _nuclear(K - np.asarray(small(jnp.asarray(s, Phi.dtype)), np.float64)) / np.trace(K)
    assert 1e-4 < err <= float(small.error_at(jnp.asarray(s, Phi.dtype))) * 1.05


def test_the_build_is_weighed_against_the_evaluations_of_the_fit(prior):
    from pinnprob.inference.collapsed import collapse_pays, collapsed_cost, site_covariance_build_cost
    from pinnprob.inference.model import collapses
    from pinnprob.inference.runners import expected_evaluations

    short = expected_evaluations("nuts", 15, 10, 1, 3000, field_draws=3)  # the tests' fits
    assert short == (15 + 10) * 15 + 3
    assert expected_evaluations("blackjax", 100, 100, 2, 0) == 200 * 2 * 15 + 200
    assert expected_evaluations("laplace", 500, 10, 2, 3000) == 150 + 400 + 20  # mode, proposals, fields
    assert expected_evaluations("svi", 500, 10, 1, 50, field_draws=3) == 53
    n, m = 60, prior.latent_dim
    assert collapsed_path(prior, n) == "reduced"  # no count: a long fit, the one-off cost left out
    assert collapsed_path(prior, n, expected_evaluations("nuts", 500, 500, 4, 0)) == "reduced"
    assert collapsed_path(prior, n, short) == "dense"  # a few dozen draws do not repay the build
    assert collapses(prior, n) and collapse_pays(n, m, True, 24, short)  # collapsed all the same
    # where the path switches: the build over the saving per evaluation
    dense, reduced = collapsed_cost(n, m, False)[0], collapsed_cost(n, m, True, 24)[0]
    even = site_covariance_build_cost(n, m, 24) / (dense - reduced)
    assert collapsed_cost(n, m, True, 24, 0.9 * even)[1] == "dense"
    assert collapsed_cost(n, m, True, 24, 1.1 * even)[1] == "reduced"
    # each path's one-off cost is spread over the evaluations, the Gram matrix's n m² too: with more of
    # them, a dearer build for a cheaper evaluation
    assert [collapsed_cost(400, 700, True, 24, e)[1] for e in (5, 50, 1000)] == ["dense", "gram", "reduced"]
    # the Meuse data (155 sites, 11 015 modes, 100 + 100 draws): the site covariance pays
    assert collapsed_cost(155, 11015, True, 24, expected_evaluations("nuts", 100, 100, 1, 0))[1] == "reduced"


def test_collapsed_likelihood_through_the_site_covariance(prior, setup):
    X, bounds, gen, Phi, sc = setup
    n = X.shape[0]
    assert collapsed_path(prior, n) == "reduced"
    mean = jnp.linspace(-1, 1, n)
    y = jnp.asarray(np.random.default_rng(1).normal(size=n))

    def lp(r, nu, s, noise, use):
        f = pinnprob.inference.GenerativeField(gen, Phi, prior.param_range.theta(range=r, nu=nu), s)
        return CollapsedGaussian(f, mean, noise, site_covariance=sc if use else None).log_prob(y)

    vg = jax.jit(jax.value_and_grad(lp, (0, 1, 2, 3)), static_argnums=4)
    P = np.asarray(Phi, np.float64)
    for r, nu in ((0.15, 0.7), (0.5, 2.2)):
        exact, g_exact = vg(r, nu, 1.3, 0.3, False)
        reduced, g_red = vg(r, nu, 1.3, 0.3, True)
        # what the bound allows: |Δ log det| ≤ ‖E‖_*/λ_min(A) and |Δ quad| ≲ ‖A⁻¹r‖² ‖E‖₂, with
        # ‖E‖_* ≤ e tr(K) (e the bound, K = σ²Φ diag(s)Φᵀ), λ_min(A) ≥ noise² + σ²δ; plus float32 rounding
        th = prior.param_range.theta(range=r, nu=nu)
        s2 = np.asarray(gen.branch(th), np.float64) ** 2
        K = 1.69 * (P * s2) @ P.T
        d2 = 0.09 + 1.69 * float(gen.tail_variance(th))
        A = K + d2 * np.eye(n)
        e = float(sc.error_at(jnp.asarray(s2, Phi.dtype))) * np.trace(K)
        w = np.linalg.solve(A, np.asarray(y - mean, np.float64))
        allowed = 0.5 * (e / d2 + w @ w * e) + 2e-6 * abs(float(exact)) * n
        assert abs(float(reduced) - float(exact)) <= allowed
        g_exact, g_red = np.asarray(g_exact), np.asarray(g_red)
        np.testing.assert_allclose(g_red, g_exact, rtol=5e-3, atol=5e-3 * np.abs(g_exact).max())
    f = pinnprob.inference.GenerativeField(gen, Phi[:10], prior.param_range.theta(range=0.3, nu=1.0), 1.0)
    with pytest.raises(ValueError, match="site covariance is for 60 sites"):
        CollapsedGaussian(f, mean[:10], 0.3, site_covariance=sc)


def test_recovery_through_the_site_covariance_has_the_gaussian_posterior(prior, setup):
    X, bounds, gen, Phi, sc = setup
    n = X.shape[0]
    f = pinnprob.inference.GenerativeField(gen, Phi, prior.param_range.theta(range=0.3, nu=1.5), 1.0)
    resid = np.asarray(f.sample(jax.random.key(1))) + 0.2 * np.random.default_rng(0).standard_normal(n)
    N = 3000
    draws = jax.vmap(lambda k: f.from_latent(conditional_latent(k, f, resid, 0.2, site_covariance=sc)))(
        jax.random.split(jax.random.key(2), N))
    S = np.asarray(f.basis(), np.float64)
    K = S @ S.T
    R = np.diag(0.04 + np.asarray(f.site_variance(), np.float64))
    post_mean = K @ np.linalg.solve(K + R, resid)
    post_cov = K - K @ np.linalg.solve(K + R, K)
    d = np.asarray(draws, np.float64)
    se = np.sqrt(np.diag(post_cov) / N)
    assert np.all(np.abs(d.mean(0) - post_mean) < 4.5 * se + 1e-3)
    v = d.var(0)
    assert np.all(np.abs(v / np.diag(post_cov) - 1) < 4.5 * np.sqrt(2 / N) + 1e-2)
    _, mu = conditional_latent(jax.random.key(2), f, resid, 0.2, site_covariance=sc, with_mean=True)
    np.testing.assert_allclose(np.asarray(f.from_latent(mu), np.float64), post_mean, atol=1e-3 * np.abs(post_mean).max())
