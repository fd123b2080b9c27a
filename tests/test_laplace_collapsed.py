"""The Laplace approximation that integrates a field out of a Poisson or Bernoulli likelihood
(pinnprob.inference.laplace_collapsed): its two spaces agree, its gradient is the derivative of its
value, it is close to the exact marginal where it should be, its draws have its moments, and
fit(method="laplace") uses it end to end."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import gammaln, logsumexp

import pinnprob
from pinnprob.inference.laplace_collapsed import (LaplaceCollapsed, _field_space, _latent_space,
                                                  approximate_conditional_latent, laplace_mode)


def _problem(family, n, m, seed=0, scale=0.4):
    rng = np.random.default_rng(seed)
    S = rng.normal(size=(n, m)) * scale
    loc = rng.normal(size=n) * 0.3 + (1.0 if family == "poisson" else 0.0)
    eta = loc + S @ rng.normal(size=m)
    y = rng.poisson(np.exp(eta)) if family == "poisson" else rng.uniform(size=n) < 1 / (1 + np.exp(-eta))
    return S, loc, y.astype(np.float64)


def _loglik(family, eta, y):
    if family == "poisson":
        return np.sum(y * eta - np.exp(eta) - gammaln(y + 1), -1)
    return np.sum(y * eta - np.logaddexp(0.0, eta), -1)


@pytest.mark.parametrize("family", ["poisson", "bernoulli"])
def test_latent_and_field_spaces_agree(family):
    """The same approximation computed in z (m × m) and in f = Ka (n × n): value and mode."""
    with jax.enable_x64(True):
        S, loc, y = map(jnp.asarray, _problem(family, 30, 12))
        v1, z1, _ = _latent_space(family, S, loc, y)
        v2, a, _, _ = _field_space(family, S, loc, y)
        np.testing.assert_allclose(v1, v2, rtol=1e-10)
        np.testing.assert_allclose(z1, S.T @ a, atol=1e-8)
        # the mode is a stationary point: Sᵀ∇ℓ(η̂) = ẑ
        g = jax.grad(lambda e: jnp.sum(_loglik_jax(family, e, y)))(loc + S @ z1)
        np.testing.assert_allclose(S.T @ g, z1, atol=1e-8)


def _loglik_jax(family, eta, y):
    if family == "poisson":
        return y * eta - jnp.exp(eta)
    return y * eta - jnp.logaddexp(0.0, eta)


@pytest.mark.parametrize("family", ["poisson", "bernoulli"])
@pytest.mark.parametrize("space", ["latent", "field"])
def test_gradient_is_the_derivative_of_the_value(space, family):
    """The one differentiable Newton step after the loop gives the approximation's exact gradient
    in S and loc (against central differences, float64)."""
    with jax.enable_x64(True):
        S, loc, y = map(jnp.asarray, _problem(family, 30, 12, seed=1))
        fn = _latent_space if space == "latent" else _field_space

        def value(s, shift):
            return fn(family, S * s, loc + shift, y)[0]

        gs, gl = jax.grad(value, argnums=(0, 1))(1.1, 0.2)
        h = 1e-5
        np.testing.assert_allclose(gs, (value(1.1 + h, 0.2) - value(1.1 - h, 0.2)) / (2 * h), rtol=1e-6)
        np.testing.assert_allclose(gl, (value(1.1, 0.2 + h) - value(1.1, 0.2 - h)) / (2 * h), rtol=1e-6)


@pytest.mark.parametrize("family,tol", [("poisson", 0.05), ("bernoulli", 0.3)])
def test_close_to_the_exact_marginal(family, tol):
    """Against log p(y) by importance sampling from the approximation itself (200 000 draws; the
    estimator's own error, from its weights, is asserted far below the tolerance). The Laplace error
    is O(1/counts): small for Poisson counts around e, larger for binary data (Rue, Martino & Chopin
    2009, §4.1) — the tolerances are those orders, and the Bernoulli error is checked to be negative
    (the approximation underestimates the marginal of binary data)."""
    with jax.enable_x64(True):
        S, loc, y = _problem(family, 40, 6, seed=2, scale=0.5)
        value, z, L = _latent_space(family, *map(jnp.asarray, (S, loc, y)))
        z, L = np.asarray(z), np.asarray(L)
        rng = np.random.default_rng(3)
        E = rng.standard_normal((200_000, 6))
        Z = z + np.linalg.solve(L.T, E.T).T  # N(ẑ, (LLᵀ)⁻¹)
        log_q = -0.5 * np.sum(E**2, 1) + np.sum(np.log(np.diag(L))) - 3 * np.log(2 * np.pi)
        log_prior = -0.5 * np.sum(Z**2, 1) - 3 * np.log(2 * np.pi)
        lw = _loglik(family, loc + Z @ S.T, y) + log_prior - log_q
        exact = logsumexp(lw) - np.log(len(lw))
        w = np.exp(lw - lw.max())
        rel_sd = np.sqrt(np.var(w) / len(w)) / np.mean(w)  # delta method: sd of the log estimate
        assert rel_sd < tol / 20
        assert abs(float(value) - exact) < tol
        if family == "bernoulli":
            assert float(value) < exact


@pytest.mark.parametrize("n", [10, 40])
def test_draws_have_the_approximation_s_moments(n):
    """approximate_conditional_latent: mean ẑ and covariance (I + SᵀWS)⁻¹, by the Cholesky factor
    (m < n) and by Matheron's rule (n ≤ m); 4 000 draws, tolerances 5 Monte Carlo sd."""
    # few modes, so that both spaces occur: m = 19 against n = 10 and 40
    prior = pinnprob.pretrained("matern2d").truncate(0.5, tol=0.05, nu=2.0)
    assert prior.latent_dim == 19
    X = np.random.default_rng(0).uniform(0, 1, (n, 2))
    with jax.enable_x64(True):
        d = prior.distribution(X, range=0.6, nu=2.0, sigma=1.0)
        S = np.asarray(d.basis())
        rng = np.random.default_rng(n)
        loc = np.full(n, 0.5)
        y = rng.poisson(np.exp(loc + S @ rng.standard_normal(S.shape[1]))).astype(float)
        _, zhat = laplace_mode(d, loc, y, "poisson")
        W = np.exp(loc + S @ np.asarray(zhat))
        Cov = np.linalg.inv(np.eye(S.shape[1]) + S.T @ (W[:, None] * S))
        keys = jax.random.split(jax.random.key(5), 4000)
        Z = np.asarray(jax.jit(jax.vmap(lambda k: approximate_conditional_latent(k, d, loc, y, "poisson")))(keys))
        # with_mean: the same draw and the mode, ẑ (what recover_field_approximately stores as the mean)
        z1, mode = approximate_conditional_latent(keys[0], d, loc, y, "poisson", with_mean=True)
        np.testing.assert_allclose(z1, Z[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(mode, zhat, rtol=1e-8, atol=1e-10)
    # compare along the 3 directions of largest posterior variance (the others are ≈ the prior's)
    lam, V = np.linalg.eigh(Cov)
    P = (Z - np.asarray(zhat)) @ V[:, -3:]
    assert np.all(np.abs(P.mean(0)) < 5 * np.sqrt(lam[-3:] / 4000)), (P.mean(0), lam[-3:])
    np.testing.assert_allclose(P.var(0), lam[-3:], rtol=5 * np.sqrt(2 / 4000))
    C_emp = np.cov(Z.T)
    assert np.linalg.norm(C_emp - Cov) / np.linalg.norm(Cov) < 0.1


def test_distribution_contract():
    """LaplaceCollapsed is a NumPyro distribution: log_prob, sample (counts), jit through its pytree."""
    prior = pinnprob.pretrained("matern2d")
    X = np.random.default_rng(1).uniform(0, 1, (15, 2))
    field = prior.distribution(X, range=0.5, nu=1.5, sigma=0.7)
    d = LaplaceCollapsed(field, jnp.full(15, 0.3), "poisson")
    y = d.sample(jax.random.key(0))
    assert y.shape == (15,) and bool(jnp.all(y >= 0)) and bool(jnp.all(y == jnp.round(y)))
    lp = jax.jit(lambda d, y: d.log_prob(y))(d, y)
    assert np.isfinite(float(lp)) and abs(float(lp) - float(d.log_prob(y))) < 1e-4
    with pytest.raises(ValueError, match="family must be one of"):
        LaplaceCollapsed(field, 0.0, "gamma")
    with pytest.raises(ValueError, match="does not broadcast"):
        LaplaceCollapsed(field, jnp.zeros(14), "poisson")
    # a batch of data sets: one approximation each, shape sample_shape
    Y = d.sample(jax.random.key(1), (3, 2))
    assert Y.shape == (3, 2, 15)
    lps = d.log_prob(Y)
    assert lps.shape == (3, 2)
    np.testing.assert_allclose(lps[1, 0], d.log_prob(Y[1, 0]), rtol=1e-5)
    assert abs(float(lps[0, 0] - lps[2, 1])) > 1e-3  # not one shared solve
    # binary data: the support is {0, 1} per site
    b = LaplaceCollapsed(field, 0.0, "bernoulli", validate_args=True)
    yb = b.sample(jax.random.key(2))
    assert set(np.unique(np.asarray(yb))) <= {0.0, 1.0} and np.isfinite(float(b.log_prob(yb)))


@pytest.mark.parametrize("space", ["latent", "field"])
def test_saturated_sites_keep_the_value_and_gradient_finite(space):
    """A Bernoulli site far in the tail (W underflows to 0: √W's derivative would be infinite) and a
    Poisson intensity that underflows (NumPyro's xlogy form has a 0/0 derivative there): finite value
    and gradient, in float32."""
    S, loc, y = _problem("bernoulli", 12, 6, seed=3) if space == "latent" else _problem("bernoulli", 6, 12, seed=3)
    fn = _latent_space if space == "latent" else _field_space
    for family, shift in (("bernoulli", 120.0), ("poisson", -120.0)):
        loc_s = np.array(loc, np.float32)
        loc_s[0] += shift
        yy = np.array(y, np.float32)
        if family == "poisson":
            yy = np.round(np.abs(yy) * 2)
            yy[0] = 0.0
        v, g = jax.value_and_grad(lambda s, l: fn(family, jnp.asarray(S, jnp.float32) * s, l, jnp.asarray(yy))[0],
                                  argnums=(0, 1))(jnp.float32(1.0), jnp.asarray(loc_s))
        assert np.isfinite(float(v)), (family, v)
        assert np.all(np.isfinite(np.asarray(g[1]))) and np.isfinite(float(g[0])), (family, g)


def test_mixed_precision_inputs_run_in_the_wider_type():
    """A float32 basis with a float64 offset (x64 on) runs the Newton loop in float64 instead of
    failing on the loop's carried dtype."""
    with jax.enable_x64(True):
        prior = pinnprob.pretrained("matern2d")
        X = np.random.default_rng(1).uniform(0, 1, (15, 2))
        field = prior.distribution(X, range=0.5, nu=1.5, sigma=0.7)
        y = jnp.asarray(np.random.default_rng(2).poisson(1.3, 15), jnp.float64)
        v, z = laplace_mode(field, jnp.full(15, 0.3, jnp.float64), y, "poisson")
        assert np.isfinite(float(v)) and z.dtype == jnp.float64


def test_newton_that_does_not_converge_gives_nan(monkeypatch):
    """Newton stopped by NEWTON_MAX_STEPS while still gaining is not a mode: the value is NaN (a
    sampler rejects it) rather than a wrong number with a wrong implicit gradient."""
    import pinnprob.inference.laplace_collapsed as lc

    with jax.enable_x64(True):
        S, loc, y = map(jnp.asarray, _problem("poisson", 30, 12, seed=5))
        monkeypatch.setattr(lc, "NEWTON_MAX_STEPS", 1)
        assert np.isnan(float(lc._latent_space("poisson", S, loc, y)[0]))
        monkeypatch.setattr(lc, "NEWTON_MAX_STEPS", 100)
        assert np.isfinite(float(lc._latent_space("poisson", S, loc, y)[0]))


def test_fit_laplace_poisson_end_to_end():
    """fit(likelihood="poisson", method="laplace"): the path is stated, the field is drawn from the
    approximation (and tracks the truth), predict works; Bernoulli 0/1 data run too."""
    prior = pinnprob.pretrained("matern2d")
    rng = np.random.default_rng(4)
    X = rng.uniform(0, 1, (60, 2))
    f = np.asarray(prior.sample(jax.random.key(2), X, range=0.4, nu=1.5, sigma=1.0)).reshape(-1)
    y = rng.poisson(np.exp(1.0 + f))
    y0 = y.copy()
    idata = pinnprob.fit(X, y, prior=prior, likelihood="poisson", method="laplace", nu=1.5, num_samples=50,
                         field_draws=10, progress_bar=False, seed=0)
    np.testing.assert_array_equal(y, y0)
    meta = json.loads(idata.attrs["pinnprob"])
    assert meta["collapsed_path"] == "laplace" and meta["laplace"]["importance_ess"] > 20
    F = idata.posterior["field"].values.reshape(-1, 60)
    F = F[~np.isnan(F).any(1)]
    assert F.shape[0] == 10 and np.corrcoef(F.mean(0), f)[0, 1] > 0.7
    pred = pinnprob.predict(idata, X[:5])
    assert np.all(np.isfinite(pred["mean"])) and np.all(pred["sd"] > 0)
    yb = (f > 0).astype(float)
    idb = pinnprob.fit(X, yb, prior=prior, likelihood="bernoulli", method="laplace", nu=1.5, num_samples=20,
                       field_draws=2, progress_bar=False, seed=0)
    assert np.isfinite(idb.posterior["range"].values).all()


@pytest.mark.parametrize("family", ["poisson", "bernoulli"])
def test_closed_form_log_likelihoods_are_the_observation_laws(family):
    """The Newton iterations' closed-form log p(y | η) (written out to keep its derivatives finite at
    saturated sites) is the same law as the NumPyro distribution the latent model and ``sample`` use."""
    from pinnprob.inference.laplace_collapsed import _LOG_LIKELIHOODS, OBSERVATIONS

    with jax.enable_x64(True):
        eta = jnp.linspace(-4.0, 4.0, 9)
        y = jnp.asarray([0.0, 1.0, 3.0, 0.0, 7.0, 1.0, 2.0, 0.0, 40.0] if family == "poisson" else
                        [0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
        np.testing.assert_allclose(_LOG_LIKELIHOODS[family](eta, y), OBSERVATIONS[family](eta).log_prob(y),
                                   rtol=1e-12, atol=1e-12)
