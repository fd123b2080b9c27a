"""Generative fields inside NumPyro: distribution, reparameterisation, collapsed likelihood, priors, fit, predict."""

import dataclasses
import json
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import pinnprob
from pinnprob.inference import (
    GenerativeField,
    LatentOnlyError,
    latent_field,
    pc_priors,
    truncate_to_range,
)
from pinnprob.inference.collapsed import CollapsedGaussian, collapsed_cost, conditional_latent, gram, perturbed_latent
from pinnprob.inference.arviz_data import group
from pinnprob.inference.fit import fit
from pinnprob.inference.predict import fit_prior, predict
from pinnprob.testfunctions import dense_features


@pytest.fixture(scope="module")
def prior():
    return pinnprob.pretrained("matern2d").truncate(0.3)  # a few hundred modes: fast


@pytest.fixture(scope="module")
def sites():
    return np.random.default_rng(0).uniform(0.2, 0.8, (25, 2))


def test_distribution_shapes_support_and_moments(prior, sites):
    d = prior.distribution(sites, range=0.4, nu=1.5, sigma=2.0)
    assert isinstance(d, GenerativeField)
    assert d.batch_shape == () and d.event_shape == (25,)
    assert d.support is dist.constraints.real_vector
    N = 4000
    s = np.asarray(d.sample(jax.random.key(0), (N,)), np.float64)
    assert s.shape == (N, 25)
    C = np.asarray(d.covariance_matrix, np.float64)
    se = np.sqrt((C**2 + np.outer(np.diag(C), np.diag(C))) / N)
    assert np.all(np.abs(s.T @ s / N - C) < 4.5 * se)
    # batched parameters broadcast to a batch shape
    theta = prior.param_range.theta(range=jnp.array([0.4, 0.6]), nu=1.5)  # (2, 2)
    db = GenerativeField(d.generator, d.features, theta, jnp.array([[1.0], [2.0]]))
    assert db.batch_shape == (2, 2)
    assert db.sample(jax.random.key(1), (3,)).shape == (3, 2, 2, 25)
    assert db.log_prob(db.sample(jax.random.key(2))).shape == (2, 2)


def test_log_prob_matches_dense_gaussian_both_paths(prior, sites):
    with jax.enable_x64(True):
        for n in (25, prior.latent_dim + 30):  # dense Cholesky (n ≤ m) and Woodbury (n > m)
            X = np.random.default_rng(n).uniform(0, 1, (n, 2))
            d = prior.distribution(X, range=0.5, nu=2.0, sigma=1.3, jitter=1e-3)
            v = d.sample(jax.random.key(3), (2,))
            # jitted, the arrays as arguments: an eager dense MultivariateNormal takes seconds at n ~ 500
            ref = jax.jit(lambda C, v: dist.MultivariateNormal(jnp.zeros(n), C).log_prob(v))(d.covariance_matrix, v)
            np.testing.assert_allclose(d.log_prob(v), ref, rtol=1e-6)


def test_separable_and_dense_trunks_give_the_same_field(prior, sites):
    """prior.distribution keeps the spectral trunk as 1-D tables by default: same samples, log_prob, latent map."""
    from pinnprob.testfunctions import SeparableFeatures

    ds = prior.distribution(sites, range=0.4, nu=1.7, sigma=1.3)
    dd = prior.distribution(sites, range=0.4, nu=1.7, sigma=1.3, separable=False)
    assert isinstance(ds.features, SeparableFeatures) and not isinstance(dd.features, SeparableFeatures)
    v = ds.sample(jax.random.key(4), (3,))
    np.testing.assert_allclose(v, dd.sample(jax.random.key(4), (3,)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ds.log_prob(v), dd.log_prob(v), rtol=1e-5)
    z = jax.random.normal(jax.random.key(5), (prior.latent_dim,))
    g = lambda d: jax.grad(lambda r: jnp.sum(GenerativeField(d.generator, d.features, jnp.stack([jnp.log(r), jnp.asarray(1.7)]), 1.3).from_latent(z) ** 2))(0.4)  # noqa: E731
    np.testing.assert_allclose(g(ds), g(dd), rtol=1e-4)


def test_distribution_inside_jit(prior, sites):
    """Inside a jitted model (NUTS) the prior is a closure constant, or even a traced argument: the
    separable tables (their grid shape is static) give the same values."""
    import equinox as eqx

    from pinnprob.testfunctions import SeparableFeatures

    z = jax.random.normal(jax.random.key(6), (prior.latent_dim,))
    ref = prior.distribution(sites, range=0.4, nu=1.5, separable=False).from_latent(z)
    closed = jax.jit(lambda r: prior.distribution(sites, range=r, nu=1.5).from_latent(z))(0.4)
    def with_modes(m):  # the prior with its mode indices as a traced argument
        return pinnprob.GenerativePrior(eqx.tree_at(lambda g: g.basis.modes, prior.generator, m), prior.config)

    modes = jnp.asarray(prior.generator.basis.modes)
    traced = jax.jit(lambda m, r: with_modes(m).distribution(sites, range=r, nu=1.5).from_latent(z))(modes, 0.4)
    np.testing.assert_allclose(closed, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(traced, ref, rtol=1e-4, atol=1e-5)
    feats = jax.jit(lambda m: with_modes(m).distribution(sites, range=0.4, nu=1.5).features)(modes)
    assert isinstance(feats, SeparableFeatures)
    np.testing.assert_allclose(feats.dense(), prior.generator.features(sites), rtol=0, atol=1e-6)


def test_separable_needs_an_eigenbasis_trunk(sites):
    cfg = pinnprob.PriorConfig(family="lowrank", modes_per_dim=4, steps=1, batch_size=1, num_samples=8,
                               train_range=((0.2, 0.5), (1.0, 2.0)))
    lr = pinnprob.train(cfg, progress=False, evaluate=False)
    assert lr.distribution(sites, range=0.3, nu=1.5).features.shape[0] == 25  # dense by default
    with pytest.raises(ValueError, match="separable=True needs a tensor-product eigenbasis"):
        lr.distribution(sites, range=0.3, nu=1.5, separable=True)


def test_pushforward_log_prob_says_how_to_reparameterise(sites):
    cfg = pinnprob.PriorConfig(family="pushforward", modes_per_dim=4, steps=1, batch_size=1, num_samples=8,
                               train_range=((0.2, 0.5), (1.0, 2.0)))
    pf = pinnprob.train(cfg, progress=False, evaluate=False)
    d = pf.distribution(sites, range=0.3, nu=1.5)
    assert d.sample(jax.random.key(0), (2,)).shape == (2, 25)
    with pytest.raises(LatentOnlyError, match="latent_field"):
        d.log_prob(jnp.zeros(25))
    with pytest.raises(TypeError, match="no closed-form covariance"):
        pf.covariance(sites, range=0.3, nu=1.5)


def test_reparam_turns_field_into_latent_plus_deterministic(prior, sites):
    def model():
        r = numpyro.sample("range", dist.Uniform(0.35, 0.6))
        f = numpyro.sample("f", prior.distribution(sites, range=r, nu=1.5, sigma=1.0))
        numpyro.sample("y", dist.Normal(f, 0.1).to_event(1), obs=jnp.zeros(25))

    tr = numpyro.handlers.trace(numpyro.handlers.seed(latent_field(model), 0)).get_trace()
    assert tr["f_latent"]["type"] == "sample" and tr["f_latent"]["value"].shape == (prior.latent_dim,)
    assert tr["f"]["type"] == "deterministic" and tr["f"]["value"].shape == (25,)
    assert tr["y"]["is_observed"]
    # the deterministic field is the generator applied to the latent
    d = prior.distribution(sites, range=tr["range"]["value"], nu=1.5, sigma=1.0)
    np.testing.assert_allclose(tr["f"]["value"], d.from_latent(tr["f_latent"]["value"]), rtol=1e-5, atol=1e-6)


def test_collapsed_likelihood_equals_marginal_gaussian(prior, sites):
    with jax.enable_x64(True):
        d = prior.distribution(sites, range=0.4, nu=1.5, sigma=1.2)
        mean = jnp.linspace(-1, 1, 25)
        c = CollapsedGaussian(d, mean, 0.3)
        y = c.sample(jax.random.key(0))
        S = d.basis()
        # the law: σ²(ΨΨᵀ + δI), δ the spectrum's variance above the trunk, plus the noise
        assert float(d.site_variance()[0]) > 0
        ref = dist.MultivariateNormal(mean, S @ S.T + jnp.diag(d.site_variance()) + 0.09 * jnp.eye(25)).log_prob(y)
        np.testing.assert_allclose(c.log_prob(y), ref, rtol=1e-8)


def test_collapsed_gram_path_equals_marginal_gaussian(prior):
    """With G = ΦᵀΦ precomputed (n > m), log_prob is the same exact marginal likelihood."""
    m = prior.latent_dim
    n = 3 * m
    assert collapsed_cost(n, m, True)[1] == "gram" and collapsed_cost(25, m, True)[1] == "dense"
    with jax.enable_x64(True):
        X = np.random.default_rng(5).uniform(0, 1, (n, 2))
        d = prior.distribution(X, range=0.45, nu=1.2, sigma=0.8)
        mean = jnp.linspace(-1, 1, n)
        G = gram(d.features)
        c = CollapsedGaussian(d, mean, 0.25, gram=G)
        assert c._gram_path
        # jitted, the arrays as arguments (not constants to fold), here and below: one compilation each
        # instead of hundreds of eager operations (an eager dense MultivariateNormal at n = 3m: ~20 s)
        y = jax.jit(lambda c, k: c.sample(k, (2,)))(c, jax.random.key(0))
        ref = jax.jit(lambda mean, S, v, y: dist.MultivariateNormal(
            mean, S @ S.T + jnp.diag(v) + 0.0625 * jnp.eye(n)).log_prob(y))(mean, d.basis(), d.site_variance(), y)
        np.testing.assert_allclose(jax.jit(lambda c, y: c.log_prob(y))(c, y), ref, rtol=1e-8)
        # and its gradient in the parameters, through the branch network
        def lp(r, s, noise, X, mean, G, y0):
            f = prior.distribution(X, range=r, nu=1.2, sigma=s)
            return CollapsedGaussian(f, mean, noise, gram=G).log_prob(y0)

        def lp_ref(r, s, noise, X, mean, G, y0):
            fr = prior.distribution(X, range=r, nu=1.2, sigma=s)
            Sr = fr.basis()
            return dist.MultivariateNormal(mean, Sr @ Sr.T + jnp.diag(fr.site_variance()) + noise**2 * jnp.eye(n)).log_prob(y0)

        args = (0.45, 0.8, 0.25, jnp.asarray(X), mean, G, y[0])
        np.testing.assert_allclose(jax.jit(jax.grad(lp, (0, 1, 2)))(*args), jax.jit(jax.grad(lp_ref, (0, 1, 2)))(*args),
                                   rtol=1e-6)
    with pytest.raises(ValueError, match="gram must have shape"):
        CollapsedGaussian(d, mean, 0.25, gram=jnp.eye(3))


def test_gram_of_separable_features_equals_the_dense_product(prior):
    """ΦᵀΦ of the prior's trunk from its harmonic moments (the default for a box eigenbasis) and summed
    block by block from the 1-D tables (never forming Φ; a ragged last block) are the dense product."""
    from pinnprob.testfunctions.eigen import GRAM_BLOCK, SeparableFeatures

    n = 2 * GRAM_BLOCK + 37
    with jax.enable_x64(True):
        X = jnp.asarray(np.random.default_rng(3).uniform(0, 1, (n, 2)))
        sep = prior.generator.product_features(X)
        assert isinstance(sep, SeparableFeatures) and sep.products is not None
        Phi = np.asarray(prior.generator.features(X))
        np.testing.assert_allclose(gram(sep), Phi.T @ Phi, rtol=1e-10, atol=1e-9)
        blocked = SeparableFeatures(sep.tables, sep.flat_index, sep.grid)  # no product rule: summed by blocks
        np.testing.assert_allclose(gram(blocked), Phi.T @ Phi, rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(gram(jnp.asarray(Phi)), Phi.T @ Phi, rtol=1e-12, atol=1e-9)


def test_fit_on_the_gram_path_keeps_the_trunk_separable(prior, monkeypatch):
    """A fit that takes the Gram path (n well above m) builds no dense n × m trunk: the model multiplies by
    the 1-D tables and sums ΦᵀΦ by blocks; the fit recovers the field and predicts."""
    import pinnprob.generators.base as base

    rng = np.random.default_rng(8)
    n = 1500
    X = rng.uniform(0, 10, (n, 2))
    y = np.sin(X[:, 0] / 2) + 0.3 * rng.standard_normal(n)

    def no_dense(self, X):
        raise AssertionError("the Gram path built the dense trunk at the data sites")

    monkeypatch.setattr(base.AbstractDiagonalGenerator, "features", no_dense)
    idata = fit(X, y, prior=prior, nu=1.5, fixed={"range": 6.0}, method="laplace", num_samples=20,
                field_draws=2, progress_bar=False, seed=0)
    meta = __import__("json").loads(idata.attrs["pinnprob"])
    assert meta["collapsed_path"] == "gram"
    post = group(idata, "posterior")
    assert np.isfinite(post["field"].values[0, 0]).all() and 0.15 < float(post["noise"].mean()) < 0.45
    pred = predict(idata, X[:5])
    assert pred["mean"].shape == (5,) and np.all(np.isfinite(pred["mean"]))


def test_gram_path_field_draws_in_batches_by_a_reference_factor(prior, monkeypatch):
    """At many modes (the threshold lowered here) the field draws go in batches by perturbation with one
    reference factor; each draw is the exact conditional (the batched and one-by-one draws of the same
    posterior draws have the same mean field to Monte Carlo error), and draws whose solve stops short
    (one step allowed) are redrawn one by one, by their own factor."""
    import pinnprob.inference.collapsed as collapsed
    import pinnprob.inference.recovery as recovery

    rng = np.random.default_rng(8)
    n = 1500
    X = rng.uniform(0, 10, (n, 2))
    y = np.sin(X[:, 0] / 2) + 0.3 * rng.standard_normal(n)
    import pinnprob.inference.fit as fit_module

    seen = []  # recover_field's arguments in the fit, to draw the same posterior's fields again below
    monkeypatch.setattr(fit_module, "recover_field", lambda *a: (seen.append(a), recovery.recover_field(*a))[1])
    idata = fit(X, y, prior=prior, nu=1.5, fixed={"range": 6.0}, method="laplace", num_samples=40, field_draws=40,
                progress_bar=False, seed=0)
    one_by_one = group(idata, "posterior")["field"].values[0]
    meta = json.loads(idata.attrs["pinnprob"])
    assert meta["field_draws"] == {"draws": 40, "batch_size": 0, "redrawn": 0}  # below REFERENCE_MIN_MODES
    assert set(meta["seconds"]) == {"setup", "sampling", "field_draws"} and min(meta["seconds"].values()) > 0
    (args,) = seen
    args = args[:8] + (jax.random.key(1),) + args[9:]  # independent field draws of the same θ draws
    calls = {"_batch_draws": 0, "_one_draw": 0}
    for name in calls:
        f = getattr(recovery, name)
        monkeypatch.setattr(recovery, name,
                            (lambda f, name: lambda *a: (calls.__setitem__(name, calls[name] + 1), f(*a))[1])(f, name))
    monkeypatch.setattr(recovery, "REFERENCE_MIN_MODES", 0)
    monkeypatch.setattr(recovery, "BATCH_MAX", 16)
    feats = args[2]  # right-hand sides and fields formed 4 draws at a time within a batch
    monkeypatch.setattr(recovery, "BATCH_NUMBERS", 4 * feats.shape[0] * max(getattr(feats, "grid", (1,))))
    for maxiter in (200, 1):
        calls.update({"_batch_draws": 0, "_one_draw": 0})
        monkeypatch.setattr(collapsed, "PCG_MAXITER", maxiter)
        jax.clear_caches()  # the batch step is compiled with PCG_MAXITER as a constant
        fields, _, means, info = recovery.recover_field(*args)
        batched = fields[0]
        assert calls["_batch_draws"] == 3  # 40 draws in 3 batches of at most 16: of 14
        assert info == {"draws": 40, "batch_size": 14, "redrawn": calls["_one_draw"]}
        assert np.isfinite(means).all()  # every draw's conditional mean too, batched or redrawn
        if maxiter > 1:
            assert calls["_one_draw"] == 0
        else:  # the draws whose one step left the residual above float32's tolerance (most of them)
            assert 30 <= calls["_one_draw"] <= 40
        # the same posterior draws of θ, independent field draws: means agree to MC error
        se = np.sqrt(one_by_one.var(0) / 40 + batched.var(0) / 40)
        z = (one_by_one.mean(0) - batched.mean(0)) / se
        assert np.isfinite(batched).all() and np.mean(np.abs(z) < 3) > 0.97 and np.abs(z).max() < 6


def test_fit_with_the_range_fixed(prior):
    """A fixed range leaves the branch table nothing to span (its bounds have zero width): the fit
    evaluates the branch itself (this raised a ValueError from the table before)."""
    X, y, _ = _data()
    idata = fit(X, y, prior=prior, fixed={"range": 6.0}, method="laplace", num_samples=20, field_draws=2,
                progress_bar=False, seed=0)
    post = group(idata, "posterior")
    assert "range" not in post and "nu" in post and np.isfinite(post["nu"].values).all()


def test_gram_path_gradient_written_out_equals_reverse_mode():
    """The Woodbury terms' gradient, written out (diag(cap⁻¹) block column by block column), equals
    JAX's reverse mode through the Cholesky factor, for several right-hand sides, at m = 1 100 (two
    blocks of 1 024)."""
    from pinnprob.inference.collapsed import woodbury_terms

    def reference(c, rr, d, eps, G):
        cap = d[:, None] * G * d[None, :] + eps * jnp.eye(d.shape[0])
        L = jnp.linalg.cholesky(cap)
        u = jax.scipy.linalg.solve_triangular(L, (d * c).T, lower=True)
        return -0.5 * ((rr - jnp.sum(u**2, 0)) / eps + 2 * jnp.sum(jnp.log(jnp.diagonal(L))))

    rng = np.random.default_rng(4)
    m, n = 1100, 1500
    with jax.enable_x64(True):
        Phi = rng.standard_normal((n, m))
        G = jnp.asarray(Phi.T @ Phi)
        r = rng.standard_normal((3, n))
        args = (jnp.asarray(r @ Phi), jnp.asarray((r**2).sum(1)), jnp.asarray(np.exp(rng.normal(0, 1, m))), 0.3, G)
        wts = jnp.asarray([0.5, -1.0, 2.0])
        ours = jax.jit(jax.value_and_grad(lambda *a: jnp.sum(wts * woodbury_terms(*a)), (0, 1, 2, 3)))(*args)
        theirs = jax.jit(jax.value_and_grad(lambda *a: jnp.sum(wts * reference(*a)), (0, 1, 2, 3)))(*args)
        np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12)
        for a, b in zip(ours[1], theirs[1], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10 * float(jnp.max(jnp.abs(b))))


def _reference(prior, X, G, noise, **params):
    """The Gram path's posterior precision at other parameters, factorised (a field draw's reference)."""
    from pinnprob.inference.collapsed import gram_reference

    return gram_reference(prior.distribution(X, **params), G, noise)


@pytest.mark.parametrize("reference_range", [None, 0.55])
def test_conditional_latent_gram_path_has_the_gaussian_posterior(prior, reference_range):
    """Exact draws of z | y on the Gram path: by P's own factor, and by perturbation with conjugate
    gradients preconditioned by the factor at another range (perturbed_latent, as recover_field draws at
    many modes), vmapped over the draws."""
    m = prior.latent_dim
    n = 3 * m
    X = np.random.default_rng(6).uniform(0, 1, (n, 2))
    d = prior.distribution(X, range=0.5, nu=1.5, sigma=1.0)
    resid = np.asarray(d.sample(jax.random.key(1))) + 0.3 * np.random.default_rng(0).standard_normal(n)
    G = gram(d.features)
    N = 2000
    keys = jax.random.split(jax.random.key(2), N)
    if reference_range is None:
        z = np.asarray(jax.vmap(lambda k: conditional_latent(k, d, resid, 0.3, gram=G))(keys), np.float64)
    else:
        ref = _reference(prior, X, G, 0.3, range=reference_range, nu=1.5, sigma=1.0)
        z, res = jax.vmap(lambda k: perturbed_latent(k, d, resid, 0.3, G, ref))(keys)
        assert float(res.max()) <= 10 * 1e-5  # float32's tolerance: every draw exact to it
        z = np.asarray(z, np.float64)
    S = np.asarray(d.basis(), np.float64)
    s2 = 0.09 + float(d.site_variance()[0])  # the noise and the field's tail above the trunk
    P = np.eye(m) + S.T @ S / s2
    cov = np.linalg.inv(P)
    mean = cov @ S.T @ resid / s2
    if reference_range is None:  # with_mean: E[z | y] from the same factor
        _, mu = conditional_latent(keys[0], d, resid, 0.3, gram=G, with_mean=True)
        np.testing.assert_allclose(np.asarray(mu, np.float64), mean, atol=1e-3 * np.abs(mean).max())
    se = np.sqrt(np.diag(cov) / N)
    assert np.all(np.abs(z.mean(0) - mean) < 4.5 * se + 1e-4)
    # posterior variances: sample variance within its Monte Carlo error (chi-square, 2/N relative)
    v = z.var(0)
    assert np.all(np.abs(v / np.diag(cov) - 1) < 4.5 * np.sqrt(2 / N) + 1e-3)


def test_perturbed_latent_is_the_exact_linear_map(prior, monkeypatch):
    """perturbed_latent's draw is P⁻¹(diag(d)Φᵀ(resid/s + ε) + η) for its own ε, η, to the solver's
    tolerance, with a residual that says so; when conjugate gradients stop short (one step, a poor
    reference) the residual it returns says that too, and recover_field then redraws by P's own factor."""
    import pinnprob.inference.collapsed as collapsed

    with jax.enable_x64(True):
        m = prior.latent_dim
        n = 2 * m
        X = np.random.default_rng(9).uniform(0, 1, (n, 2))
        d = prior.distribution(X, range=0.3, nu=1.5, sigma=0.8)
        resid = jnp.asarray(np.random.default_rng(1).standard_normal(n))
        G = gram(d.features)
        key = jax.random.key(5)
        k1, k2 = jax.random.split(key)
        P, dd, s = collapsed.gram_precision(d, G, 0.25)
        Phi = np.asarray(dense_features(d.features), np.float64)
        b = dd * (Phi.T @ (resid / s + jax.random.normal(k2, (n,), jnp.float64))) + jax.random.normal(k1, (m,))
        want = np.linalg.solve(np.asarray(P), np.asarray(b))
        near = _reference(prior, X, G, 0.25, range=0.33, nu=1.5, sigma=0.8)
        got, res = perturbed_latent(key, d, resid, 0.25, G, near)
        assert float(res) <= collapsed.PCG_TOL
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-7 * np.abs(want).max())
        far = _reference(prior, X, G, 0.25, range=0.9, nu=1.5, sigma=3.0)
        # the reference scaled to the draw's column scales (R P_ref R) preconditions well even 3× off in
        # range and σ: 20 steps reach the tolerance (P_ref alone left a residual of 7e-2 here)
        monkeypatch.setattr(collapsed, "PCG_MAXITER", 20)
        got, res = perturbed_latent(key, d, resid, 0.25, G, far)
        assert float(res) <= collapsed.PCG_TOL
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-7 * np.abs(want).max())
        monkeypatch.setattr(collapsed, "PCG_MAXITER", 1)
        _, res = perturbed_latent(key, d, resid, 0.25, G, far)
        assert float(res) > 1e3 * collapsed.PCG_TOL


def test_moments_perturbation_has_the_law_of_perturbation(prior):
    """A field draw's right-hand side from the data's moments (Φᵀy, Φᵀ1, ΦᵀZ and a Cholesky factor of G,
    as recover_field's batches form it) has perturbation's law N(d ⊙ Φᵀresid/s, diag(d) G diag(d) + I):
    the moments equal the products with Φ, and 4 000 draws whitened by that law have mean 0 and
    covariance I within their Monte Carlo error."""
    import pinnprob.inference.collapsed as collapsed

    with jax.enable_x64(True):
        m = prior.latent_dim
        n = 2 * m
        rng = np.random.default_rng(11)
        X = rng.uniform(0, 1, (n, 2))
        d = prior.distribution(X, range=0.4, nu=1.5, sigma=0.8)
        y, Z = rng.standard_normal(n), rng.standard_normal((n, 2))
        G = gram(d.features)
        mom = collapsed.data_moments(d.features, G, y, Z)
        Phi = np.asarray(dense_features(d.features), np.float64)
        for got, want in ((mom.y, Phi.T @ y), (mom.ones, Phi.sum(0)), (mom.covariates, Phi.T @ Z)):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
        L = np.asarray(mom.gram_factor)
        assert 0 < float(mom.jitter) < 1e-12 * float(np.abs(G).max())  # a factor's rounding level: m ε max G_kk
        np.testing.assert_allclose(L @ L.T, G, atol=1e-10 * float(np.abs(G).max()))
        icpt, beta, noise = 0.7, np.array([0.3, -0.2]), 0.25
        N = 4000
        b = np.asarray(jax.vmap(lambda k: collapsed.moments_perturbation(k, d, mom, icpt, beta, noise))(
            jax.random.split(jax.random.key(3), N)))
        dd, s = (np.asarray(v, np.float64) for v in collapsed._whitened_scales(d, noise))
        mean = dd * (Phi.T @ (y - icpt - Z @ beta)) / s
        cov = dd[:, None] * np.asarray(G) * dd[None, :] + np.eye(m)
        w = np.linalg.solve(np.linalg.cholesky(cov), (b - mean).T).T  # N(0, I) if the law is right
        assert np.all(np.abs(w.mean(0)) < 4.5 / np.sqrt(N))
        S = w.T @ w / N
        assert np.all(np.abs(np.diag(S) - 1) < 4.5 * np.sqrt(2 / N))
        # E‖S − I‖²_F = (m² + m)/N for N(0, I) rows; its spread is a few % of that here
        assert np.linalg.norm(S - np.eye(m)) < 1.05 * np.sqrt((m**2 + m) / N)
        # the batch step recover_field runs, with these moments: draws of z | y, its exact mean and variances
        import pinnprob.inference.recovery as recovery

        B = 400
        ref = collapsed.gram_reference(d, G, noise)
        _, z, zbar, res = recovery._batch_draws(
            d.generator, G, None, d.features, jnp.asarray(y), jnp.asarray(Z), d.jitter, ref, mom, 8,
            jax.random.split(jax.random.key(4), B), jnp.broadcast_to(d.theta, (B,) + d.theta.shape),
            jnp.full(B, 0.8), jnp.full(B, icpt), jnp.broadcast_to(jnp.asarray(beta), (B, 2)), jnp.full(B, noise))
        assert float(res.max()) <= collapsed.PCG_TOL
        z = np.asarray(z)
        post = np.linalg.inv(cov)
        zmean = post @ mean
        # each draw's conditional mean, solved beside it: the exact mean to the solver's tolerance
        np.testing.assert_allclose(np.asarray(zbar), np.broadcast_to(zmean, (B, m)), rtol=1e-7,
                                   atol=1e-7 * np.abs(zmean).max())
        assert np.all(np.abs(z.mean(0) - zmean) < 4.5 * np.sqrt(np.diag(post) / B))
        assert np.all(np.abs(z.var(0) / np.diag(post) - 1) < 4.5 * np.sqrt(2 / B))
        # fewer sites than modes: G singular, factored with its jitter; a G that is not PSD has none
        df = prior.distribution(X[: m // 2], range=0.4, nu=1.5)
        few = collapsed.data_moments(df.features, gram(df.features), y[: m // 2])
        assert few is not None and np.isfinite(np.asarray(few.gram_factor)).all()
        assert collapsed.data_moments(df.features, -gram(df.features), y[: m // 2]) is None
    G32 = gram(prior.distribution(X, range=0.4, nu=1.5).features)  # float32: per-draw products instead
    assert G32.dtype == jnp.float32 and collapsed.data_moments(d.features, G32, y) is None


def test_conditional_latent_has_the_gaussian_posterior_mean(prior, sites):
    d = prior.distribution(sites, range=0.4, nu=1.5, sigma=1.0)
    resid = np.asarray(d.sample(jax.random.key(1))) + 0.2 * np.random.default_rng(0).standard_normal(25)
    draws = jax.vmap(lambda k: d.from_latent(conditional_latent(k, d, resid, 0.2)))(
        jax.random.split(jax.random.key(2), 3000))
    S = np.asarray(d.basis(), np.float64)
    K = S @ S.T
    R = np.diag(0.04 + np.asarray(d.site_variance(), np.float64))  # noise and the field's tail
    post_mean = K @ np.linalg.solve(K + R, resid)
    post_cov = K - K @ np.linalg.solve(K + R, K)
    se = np.sqrt(np.diag(post_cov) / 3000)
    assert np.all(np.abs(np.asarray(draws).mean(0) - post_mean) < 4.5 * se + 1e-4)
    # with_mean: E[z | y] from the draw's own factorisation, the exact mean of the field through it
    _, mu = conditional_latent(jax.random.key(2), d, resid, 0.2, with_mean=True)
    np.testing.assert_allclose(np.asarray(d.from_latent(mu), np.float64), post_mean, atol=1e-4 * np.abs(post_mean).max())


def test_pc_priors():
    r, s = pc_priors(0.2, 0.05, 1.0, 0.1)
    np.testing.assert_allclose(r.cdf(0.2), 0.05, rtol=1e-5)
    np.testing.assert_allclose(1 - s.cdf(1.0), 0.1, rtol=1e-5)
    x = r.sample(jax.random.key(0), (50_000,))
    assert abs(float(jnp.mean(x < 0.2)) - 0.05) < 4 * np.sqrt(0.05 * 0.95 / 50_000)
    # the density integrates to the cdf
    g = np.linspace(0.05, 3.0, 20001)
    integral = np.trapezoid(np.exp(np.asarray(r.log_prob(jnp.asarray(g)))), g)
    np.testing.assert_allclose(integral, float(r.cdf(3.0) - r.cdf(0.05)), rtol=1e-3)


def test_truncation_warns_with_mass_cut():
    with pytest.warns(UserWarning, match=r"cutting \d+\.\d % of its mass"):
        t = truncate_to_range(dist.LogNormal(0.0, 1.0), 0.5, 2.0, "range")
    x = t.sample(jax.random.key(0), (1000,))
    assert float(x.min()) >= 0.5 and float(x.max()) <= 2.0
    assert np.isinf(float(t.log_prob(3.0)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        truncate_to_range(dist.Uniform(0.6, 1.0), 0.5, 2.0, "range")  # nothing cut: no warning


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 10, (n, 2))
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    from pinnprob import truth

    C = truth.matern_covariance(D, range=6.0, sigma=1.0, nu=1.5)
    f = np.linalg.cholesky(C + 1e-8 * np.eye(n)) @ rng.standard_normal(n)
    cov = rng.standard_normal(n)
    return X, 1.0 + 0.5 * cov + f + 0.2 * rng.standard_normal(n), cov


FAST = dict(num_warmup=15, num_samples=10, progress_bar=False, field_draws=3, seed=1)


@pytest.mark.parametrize("method", ["nuts", "blackjax", "svi", "laplace"])
def test_fit_returns_inference_data_in_user_units(prior, method, monkeypatch):
    """The fit's structure and predictions for each method; NUTS here warm-started (``warm_start=True``):
    the whole model's mode and Hessian reach NUTS (what NUTS does with them:
    test_nuts_warm_start_samples_a_stiff_gaussian_in_few_steps), said in the attributes, and a short
    warm-up is warned of."""
    import contextlib

    import pinnprob.inference.fit as fit_module

    X, y, cov = _data()
    Xc, yc = X.copy(), y.copy()
    rp = dist.Uniform(4.0, 12.0)  # user units; the data's square is 2 × extent wide
    kw = dict(FAST, svi_steps=50) if method == "svi" else dict(FAST, warm_start=True) if method == "nuts" else FAST
    starts = []

    def spy(*args):
        starts.append(args[-1])
        return spy.__wrapped__(*args)

    spy.__wrapped__ = fit_module.run_method
    monkeypatch.setattr(fit_module, "run_method", spy)
    # the float32 warning of the mode searches (laplace's, the warm start's), here from 10 sites, not 20 000
    monkeypatch.setattr(fit_module, "LAPLACE_FLOAT32_SITES", 10)
    searches = method in ("nuts", "laplace") and jnp.result_type(float) == jnp.float32
    with pytest.warns(UserWarning) if method == "nuts" or searches else contextlib.nullcontext() as warned:
        idata = fit(X, y, prior=prior, covariates=cov, nu=1.5, range_prior=rp, method=method, **kw)
    said = [str(w.message) for w in warned] if warned is not None else []
    if method == "nuts":
        assert any("num_warmup=15" in m for m in said), said
    if searches:
        who = "a NUTS warm start" if method == "nuts" else "method='laplace'"
        assert sum(m.startswith(f"{who} at 40 sites in float32") for m in said) == 1, said
    np.testing.assert_array_equal(X, Xc)  # data untouched
    np.testing.assert_array_equal(y, yc)
    meta_fit = json.loads(idata.attrs["pinnprob"])
    if method == "nuts":
        # range, σ, noise, intercept, β: the Hessian at the whole model's mode, positive definite
        (start,) = starts
        assert start.hessian.shape == (5, 5) and np.all(np.linalg.eigvalsh(start.hessian) > 0)
        ws = meta_fit["warm_start"]
        assert meta_fit["collapsed"] and ws["pilot"] is None and ws["mode"]["start"] == "prior"
        assert ws["mode"]["optimiser_steps"] >= 1 and np.isfinite(ws["mode"]["gradient_norm"])
        assert meta_fit["seconds"]["warm_start"] > 0 and "laplace" not in meta_fit
    else:
        assert meta_fit["warm_start"] is None  # not NUTS
    post = group(idata, "posterior")
    for v in ("range", "sigma", "noise", "intercept", "beta", "field"):
        assert v in post, v
    assert "nu" not in post
    assert post["range"].shape == (1, 10)
    assert float(post["range"].min()) >= 4.0 and float(post["range"].max()) <= 12.0
    assert post["field"].shape == (1, 10, 40)
    if method in ("nuts", "blackjax"):  # leapfrog steps per draw, for both samplers
        steps = np.asarray(group(idata, "sample_stats")["n_steps"])
        assert steps.shape == (1, 10) and np.all(steps >= 1)
    recovered = ~np.isnan(post["field"].values[0, :, 0])
    if method != "svi" and idata.attrs["pinnprob"].count('"collapsed": true'):
        assert recovered.sum() == 3 and recovered[0] and recovered[-1]  # evenly spaced draws, aligned
    pred = predict(idata, X[:7], covariates=cov[:7], return_draws=True)
    assert pred["mean"].shape == (7,) and pred["quantiles"].shape == (3, 7) and np.all(pred["sd"] > 0)
    # at the data sites, each predictive draw is that draw's intercept + β·covariate + field
    # (the field from the fit, predict's from the separable trunk and the network branch)
    ok = ~np.isnan(post["field_latent"].values[0, :, 0])
    expect = (post["intercept"].values[0, ok][:, None] + np.outer(post["beta"].values[0, ok, 0], cov[:7])
              + post["field"].values[0, ok, :7])
    # plus, in predict's draws, a fresh draw of the field's part above the trunk (σ√δ(θ) per site)
    from pinnprob.inference.predict import fit_prior

    used, meta = fit_prior(idata)
    th = used.param_range.theta(range=jnp.asarray(post["range"].values[0, ok] / meta["coordinate_map"]["scale"]),
                                nu=jnp.full(int(ok.sum()), 1.5))
    sd_site = post["sigma"].values[0, ok] * np.sqrt(np.asarray(jax.vmap(used.generator.tail_variance)(th)))
    assert np.all(sd_site > 0)
    assert np.all(np.abs(pred["draws"] - expect) < 1e-3 * np.abs(expect).max() + 5 * sd_site[:, None])
    # a collapsed fit stores each draw's E[z | y, θ]; predict's mean averages the fields through them
    # (Rao-Blackwellised), here summed by hand with the dense basis Ψ(X; θ)
    assert ("field_latent_mean" in post) == bool(idata.attrs["pinnprob"].count('"collapsed": true'))
    if "field_latent_mean" in post:
        from pinnprob.inference.data import CoordinateMap

        U = jnp.asarray(CoordinateMap.from_dict(meta["coordinate_map"]).to_unit(X[:7]))
        fields = [s * np.asarray(used.generator.basis_matrix(U, t)) @ zb for t, s, zb in
                  zip(th, post["sigma"].values[0, ok], post["field_latent_mean"].values[0, ok], strict=True)]
        want = (post["intercept"].values[0, ok].mean() + post["beta"].values[0, ok, 0].mean() * cov[:7]
                + np.mean(fields, 0))
        np.testing.assert_allclose(pred["mean"], want, atol=1e-4 * np.abs(want).max())
        assert np.abs(pred["mean"] - pred["draws"].mean(0)).max() > 1e-6  # not the simulations' mean


def test_fit_free_nu_and_poisson_latent(prior):
    X, y, _ = _data(30, seed=2)
    counts = np.random.default_rng(0).poisson(np.exp(0.3 * y))
    idata = fit(X, counts, prior=prior, likelihood="poisson", range_prior=dist.Uniform(4.0, 12.0), **FAST)
    post = group(idata, "posterior")
    assert "nu" in post and "field_latent" in post and "noise" not in post
    # the latent path multiplies by the separable trunk; the field it reports is σ Φ (a(θ) ⊙ z), Φ dense
    import json

    from pinnprob.inference.data import CoordinateMap

    cmap = CoordinateMap(**json.loads(idata.attrs["pinnprob"])["coordinate_map"])
    p = fit_prior(idata)[0]
    Phi = p.generator.features(jnp.asarray(cmap.to_unit(X)))
    for i in (0, 9):
        r, nu, sig = (float(post[k].values[0, i]) for k in ("range", "nu", "sigma"))
        a = p.generator.branch(jnp.array([jnp.log(r / cmap.scale), nu]))
        f = sig * Phi @ (a * post["field_latent"].values[0, i])
        np.testing.assert_allclose(post["field"].values[0, i], f, rtol=0, atol=2e-3 * float(jnp.max(jnp.abs(f))))


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda X, y, c: (X, np.where(np.arange(len(y)) == 3, np.nan, y), c), "y has 1 NaN"),
        (lambda X, y, c: (X, y[:-1], c), r"y must have shape \(n,\)"),
        (lambda X, y, c: (np.ones_like(X), y, c), "no spread"),
        (lambda X, y, c: (X, y, np.where(np.arange(len(y)) == 0, np.nan, c)), "covariates have 1 NaN"),
        (lambda X, y, c: (X[:, :1], y, c), r"X must have shape \(n, 2\)"),
    ],
)
def test_fit_bad_input_fails_before_sampling(prior, mutate, match):
    X, y, c = mutate(*_data())
    with pytest.raises(ValueError, match=match):
        fit(X, y, prior=prior, covariates=c, **FAST)


def test_fit_fixed_nu_outside_range_and_bad_options(prior):
    X, y, _ = _data()
    with pytest.raises(ValueError, match="nu = 0.3 is outside"):
        fit(X, y, prior=prior, nu=0.3, **FAST)
    with pytest.raises(ValueError, match="likelihood must be"):
        fit(X, y, prior=prior, likelihood="gamma", **FAST)
    with pytest.raises(ValueError, match="method must be"):
        fit(X, y, prior=prior, method="gibbs", **FAST)
    with pytest.raises(ValueError, match="method='laplace' needs a Gaussian generator"):
        fit(X, y, prior=pinnprob.pretrained("nig2d"), method="laplace", **FAST)
    with pytest.raises(ValueError, match="method='laplace' works on the collapsed model"):
        fit(X, y, prior=prior, method="laplace", collapsed=False, **FAST)
    with pytest.raises(ValueError, match="integration= is for method='laplace'"):
        fit(X, y, prior=prior, method="nuts", integration="axial", **FAST)
    with pytest.raises(ValueError, match="integration= is for method='laplace'"):
        fit(X, y, prior=prior, method="laplace", integration="grid", **FAST)
    with pytest.raises(ValueError, match="warm_start= is for spatial fits with method='nuts'"):
        fit(X, y, prior=prior, method="laplace", warm_start=True, **FAST)
    for kw in (dict(prior=pinnprob.pretrained("nig2d")), dict(prior=prior, collapsed=False),
               dict(prior=prior, likelihood="poisson")):
        with pytest.raises(ValueError, match="warm_start=True starts NUTS on the collapsed model"):
            fit(X, np.abs(np.round(y)) if "likelihood" in kw else y, warm_start=True, **kw, **FAST)


def test_laplace_integration_follows_the_cost_of_its_proposals():
    """Importance proposals while they are cheap, axial points once max(4 × draws, 400) evaluations
    would cost more than AXIAL_ABOVE flops; the expected evaluations follow the choice."""
    from pinnprob.inference.runners import AXIAL_ABOVE, expected_evaluations, laplace_integration

    assert laplace_integration(AXIAL_ABOVE / 400 * 0.9, 100) == "importance"
    assert laplace_integration(AXIAL_ABOVE / 400 * 1.1, 100) == "axial"
    assert laplace_integration(AXIAL_ABOVE / 4000 * 1.1, 1000) == "axial"
    imp = expected_evaluations("laplace", 0, 1000, 1, 0, field_draws=0)
    ax = expected_evaluations("laplace", 0, 1000, 1, 0, field_draws=0, integration="axial")
    assert imp - ax == 4000 - 10


def test_pareto_khat_follows_the_theory_of_normal_importance_weights():
    """Proposal N(0, 1) for a target N(0, s²): the weights' tail has Pareto shape k = 1 − 1/s²
    (0.75 at s = 2, 0.41 at s = 1.3); a t proposal wider than its normal target gives bounded
    weights, k̂ < 0. 20 000 draws: k̂'s standard error is about (1 + k)/√(3√S) ≈ 0.085; the bounds
    are 2 of them."""
    import scipy.stats as st

    from pinnprob.inference.runners import pareto_khat

    rng = np.random.default_rng(0)
    S = 20_000
    x = rng.normal(size=S)
    k2 = pareto_khat(st.norm(0, 2).logpdf(x) - st.norm.logpdf(x))
    k13 = pareto_khat(st.norm(0, 1.3).logpdf(x) - st.norm.logpdf(x))
    assert abs(k2 - 0.75) < 0.17 and abs(k13 - (1 - 1 / 1.69)) < 0.17 and k2 > k13
    t = st.t(7, scale=1.2)
    xt = t.rvs(S, random_state=rng)
    assert pareto_khat(np.append(st.norm.logpdf(xt) - t.logpdf(xt), -np.inf)) < 0.0  # a zero weight is dropped


def test_runners_refuse_a_model_with_no_valid_start():
    """A log density that is -inf wherever NumPyro starts (data outside the likelihood's support):
    one clear error from the start, before BFGS, the Hessian or any draw (NumPyro's own check is
    skipped under jit)."""
    import numpyro
    import numpyro.distributions as dist

    from pinnprob.inference.runners import run_laplace

    def model(y=None):
        x = numpyro.sample("x", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Uniform(x - 10.0, x - 9.0), obs=y)

    with pytest.raises(RuntimeError, match="no valid start"):
        run_laplace(model, jnp.asarray([5.0]), jax.random.key(0), 10, 1, False)


def test_laplace_mode_from_a_pilot_start():
    """A pilot on part of the data (laplace_start: its mode, with its Hessian scaled by the data's
    share, or bare, the whole model's Hessian then taken there) starts the mode search of the whole:
    the same mode as from the model's own start, in fewer BFGS steps; a start for other sites is
    refused. y_i ~ N(μ, s²), priors μ ~ N(0, 10²), s ~ HalfNormal(5)."""
    import numpyro

    from pinnprob.inference.runners import laplace_start, run_laplace

    y = jnp.asarray(np.random.default_rng(2).normal(3.0, 0.7, 4000))

    def model(y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
        s = numpyro.sample("s", dist.HalfNormal(5.0))
        numpyro.sample("y", dist.Normal(mu, s), obs=y)

    with jax.enable_x64(True):
        y64 = jnp.asarray(y, jnp.float64)
        start = laplace_start(model, y64[:400], jax.random.key(1), hessian_scale=10.0)
        assert set(start.z) == {"mu", "s"} and start.hessian.shape == (2, 2)
        _, _, own = run_laplace(model, y64, jax.random.key(0), 200, 1, False)
        _, _, piloted = run_laplace(model, y64, jax.random.key(0), 200, 1, False, start=start)
        assert own["start"] == "prior" and piloted["start"] == "given"
        # both stop ~0.01 posterior sd from the mode (a Newton decrement of 1e-5): sd(μ) = s/√n, sd(s) = s/√(2n)
        sd = {"mu": 0.7 / math.sqrt(4000), "s": 0.7 / math.sqrt(8000)}
        for k in ("mu", "s"):
            assert abs(piloted["mode"][k] - own["mode"][k]) < 0.03 * sd[k], k
        assert piloted["optimiser_steps"] < own["optimiser_steps"]
        bare = laplace_start(model, y64[:400], jax.random.key(1))
        assert bare.hessian is None and all(np.allclose(bare.z[k], start.z[k]) for k in start.z)
        _, _, from_bare = run_laplace(model, y64, jax.random.key(0), 200, 1, False, start=bare)
        for k in ("mu", "s"):
            assert abs(from_bare["mode"][k] - own["mode"][k]) < 0.03 * sd[k], k
        assert from_bare["optimiser_steps"] < own["optimiser_steps"]
        with pytest.raises(ValueError, match="do not match"):
            run_laplace(model, y64, jax.random.key(0), 20, 1, False,
                        start=start._replace(z={"mu": start.z["mu"]}))


def test_range_floor_is_the_marginal_spread_below_the_mode():
    """range_floor: the range PILOT_RANGE_SPREAD marginal Laplace sd below the mode, √(H⁻¹)_rr (not
    the conditional 1/√H_rr), in the unconstrained coordinate of the range prior's support, mapped
    back; None without a Hessian, a range site, or a positive-definite Hessian."""
    from pinnprob.inference.pilot import PILOT_RANGE_SPREAD, range_floor
    from pinnprob.inference.runners import LaplaceStart

    # flattened in sorted key order (range, sigma), as the Hessian of NumPyro's unconstrained values is;
    # the insertion order here is the other one
    z = {"sigma": np.float64(-1.0), "range": np.float64(np.log(5.0))}
    H = np.array([[400.0, 150.0], [150.0, 100.0]])
    sd = math.sqrt(np.linalg.inv(H)[0, 0])
    assert sd > 1.0 / math.sqrt(H[0, 0]) * 1.2  # the correlation matters here
    floor = range_floor(LaplaceStart(z, H), dist.LogNormal(0.0, 1.0))  # support positive: range = exp(z)
    assert floor == pytest.approx(5.0 * math.exp(-PILOT_RANGE_SPREAD * sd), rel=1e-6)
    # an interval support (a truncated prior): the same coordinate through its sigmoid
    lo, hi = 2.0, 12.0
    zi = {"sigma": np.float64(-1.0), "range": np.float64(0.3)}
    t = 0.3 - 2.0 * sd
    assert range_floor(LaplaceStart(zi, H), dist.Uniform(lo, hi), spread=2.0) == pytest.approx(
        lo + (hi - lo) / (1.0 + math.exp(-t)), rel=1e-6)
    assert range_floor(LaplaceStart(z, None), dist.LogNormal(0.0, 1.0)) is None
    assert range_floor(LaplaceStart(z, -H), dist.LogNormal(0.0, 1.0)) is None
    assert range_floor(LaplaceStart({"sigma": z["sigma"]}, H[:1, :1]), dist.LogNormal(0.0, 1.0)) is None


def test_a_pilot_only_lowers_the_range_floor():
    """lowered_floor: the pilot's floor where it is below the prior's, bounded by the range prior's
    support; never a higher one (fewer modes bias dense data)."""
    from pinnprob.inference.pilot import lowered_floor
    from pinnprob.inference.priors import PCRange

    assert lowered_floor(0.3, 0.2, PCRange(1.0, 0.05)) == 0.2
    assert lowered_floor(0.3, 0.36, PCRange(1.0, 0.05)) is None
    assert lowered_floor(0.3, 0.2, dist.Uniform(0.25, 2.0)) == 0.25  # the support's lower end
    assert lowered_floor(0.3, 0.2, dist.Uniform(0.3, 2.0)) is None
    assert lowered_floor(0.3, None, PCRange(1.0, 0.05)) is None
    assert lowered_floor(0.3, 0.2, None) is None


def test_fit_runs_a_pilot_when_it_pays(monkeypatch):
    """With the pilot's thresholds lowered to these data, fit(method="laplace") starts from a pilot on
    a subsample, itself started from a pilot on a quarter of it (said in the attributes), keeps the
    modes for the ranges the pilot's posterior allows (here shorter ones than the PC range prior's
    0.5 % quantile, which lies above the true range: more modes), and reaches the mode that the same
    model (the same modes, set by hand) reaches without a pilot."""
    import json

    import pinnprob.inference.fit as fit_module
    import pinnprob.inference.pilot as pilot
    from pinnprob.inference.priors import PCRange

    X, y, cov = _data()
    kw = dict(prior=pinnprob.pretrained("matern2d"), covariates=cov, nu=1.5, range_prior=PCRange(20.0, 0.05),
              method="laplace", num_samples=50, field_draws=2, progress_bar=False, seed=3)
    plain = fit(X, y, **kw)
    with monkeypatch.context() as m:
        m.setattr(pilot, "PILOT_SITES", 32)
        m.setattr(pilot, "PILOT_MIN_SITES", 8)  # the pilot's own search starts from a pilot on 8 sites
        m.setattr(fit_module, "pilot_pays", lambda n, cost: True)
        piloted = fit(X, y, **kw)
    info = json.loads(piloted.attrs["pinnprob"])["laplace"]
    assert info["start"] == "pilot" and info["pilot"]["sites"] == 32 and info["pilot"]["seconds"] > 0
    assert info["pilot"]["pilot"]["sites"] == 8 and "pilot" not in info["pilot"]["pilot"]
    own, cut = json.loads(plain.attrs["pinnprob"])["modes"], json.loads(piloted.attrs["pinnprob"])["modes"]
    assert own["range_floor_from"] == "prior" and cut["range_floor_from"] == "pilot"
    # the premise: the range prior's 0.5 % quantile (PC, truncated to the prior's ranges: 7.2) lies
    # above the true range, 6
    assert own["range_floor"] > 6.0
    assert cut["range_floor"] == info["pilot"]["range_floor"] < 0.5 * own["range_floor"]
    assert cut["modes"] > 4 * own["modes"]  # in 2-D the modes grow as range⁻²: half the floor, 4×
    assert group(piloted, "posterior")["field_latent"].shape[-1] == cut["modes"]
    assert own["tail_sd"] > cut["tail_sd"] > 0  # fewer modes leave more variance to the sites' noise
    b = info["mode"]
    assert cut["range_floor"] < 0.5 * b["range"]
    # the same model without a pilot: the range floor set to the pilot's by hand
    monkeypatch.setattr(fit_module, "quantile", lambda d, q: cut["range_floor"])
    same = fit(X, y, **kw)
    assert json.loads(same.attrs["pinnprob"])["modes"]["modes"] == cut["modes"]
    a = json.loads(same.attrs["pinnprob"])["laplace"]["mode"]
    post = group(same, "posterior")
    for k in ("range", "sigma", "noise", "intercept"):
        # both searches stop ~0.01 posterior sd from the mode (a Newton decrement of 1e-5)
        assert abs(b[k] - a[k]) < 0.05 * float(post[k].std()), k


def test_mcmc_collapses_where_the_latent_form_is_too_stiff():
    """An MCMC fit with many sites and no more modes than sites always collapses (latent NUTS does not
    mix there), even where a collapsed gradient costs over 50 latent ones; other methods, and fewer
    sites, follow the costs."""
    from pinnprob.inference.collapsed import collapse_pays, collapsed_cost

    assert collapsed_cost(10**5, 5502, True)[0] > 50 * (10**5 * 5502 + 300 * 5502)
    assert collapse_pays(10**5, 5502, mcmc=True) and not collapse_pays(10**5, 5502)
    assert not collapse_pays(2000, 2946, mcmc=True) and not collapse_pays(2000, 1503, mcmc=True)


def test_a_laplace_start_needs_no_proper_mode():
    """laplace_start returns the Hessian at its mode even where it is not positive definite (a flat
    direction here: a site the likelihood ignores, under an improper prior), for the search it starts
    takes its eigenvalues' magnitudes; run_laplace, whose integration needs a proper mode, refuses the
    same model."""
    import numpyro
    from numpyro.distributions import constraints

    from pinnprob.inference.runners import laplace_start, run_laplace

    def model(y):
        numpyro.sample("u", dist.ImproperUniform(constraints.real, (), ()))
        s = numpyro.sample("s", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(s, 1.0), obs=y)

    y = jnp.asarray([0.5, 1.5, 1.0])
    start = laplace_start(model, y, jax.random.key(0), hessian_scale=1.0)
    assert start.z["s"] == pytest.approx(3.0 / 4.0, abs=1e-4)  # the mode Σy / (n + 1)
    lam = np.linalg.eigvalsh(start.hessian)
    assert lam[0] == pytest.approx(0.0, abs=1e-4) and lam[1] == pytest.approx(4.0, rel=1e-3)
    with pytest.raises(RuntimeError, match="no proper mode") as err:
        run_laplace(model, y, jax.random.key(0), 10, 1, False)
    # in float32 (the tests' default) the message says to enable x64
    assert ("jax_enable_x64" in str(err.value)) == (jnp.result_type(float) == jnp.float32)


def test_warm_start_draws_are_the_laplace_approximation():
    """warm_start_draws: the chains' starts are draws from N(z, H⁻¹) (mean and variances within 4
    Monte Carlo errors over 4 000 chains), by site with a leading chain axis, and the inverse mass
    matrix is H⁻¹ in ravel order; a Hessian that is not positive definite gives its eigenvalues'
    magnitudes (said: not exact); none at all is refused."""
    from pinnprob.inference.runners import LaplaceStart, warm_start_draws

    H = np.array([[4.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 1e4]])
    start = LaplaceStart({"a": np.array([1.0, -1.0]), "b": np.array(3.0)}, H)
    z, inv_mass, exact = warm_start_draws(start, jax.random.key(0), 4000)
    assert exact
    cov = np.linalg.inv(H)
    np.testing.assert_allclose(inv_mass, cov, rtol=1e-10)
    assert z["a"].shape == (4000, 2) and z["b"].shape == (4000,)
    flat = np.column_stack([np.asarray(z["a"], np.float64), np.asarray(z["b"], np.float64)])
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(flat.mean(0) - [1.0, -1.0, 3.0]) < 4 * sd / math.sqrt(4000))
    assert np.all(np.abs(flat.var(0) / sd**2 - 1.0) < 4 * math.sqrt(2.0 / 4000))
    assert abs(np.corrcoef(flat[:, :2].T)[0, 1] - cov[0, 1] / (sd[0] * sd[1])) < 4 / math.sqrt(4000)
    _, inv_mass, exact = warm_start_draws(LaplaceStart(start.z, np.diag([-4.0, 2.0, 1.0])), jax.random.key(1), 1)
    np.testing.assert_allclose(inv_mass, np.diag([0.25, 0.5, 1.0]), rtol=1e-10)
    assert not exact
    # scales 10⁻⁴ apart: exactly H⁻¹ (the stand-in's floor, 10⁻⁶ of the largest eigenvalue, would cut them)
    _, inv_mass, exact = warm_start_draws(LaplaceStart(start.z, np.diag([1e-4, 1.0, 1e4])), jax.random.key(1), 1)
    np.testing.assert_allclose(inv_mass, np.diag([1e4, 1.0, 1e-4]), rtol=1e-10)
    assert exact
    with pytest.raises(ValueError, match="needs the Hessian"):
        warm_start_draws(LaplaceStart(start.z), jax.random.key(1), 1)


def test_nuts_warm_start_samples_a_stiff_gaussian_in_few_steps():
    """A Gaussian posterior with scales 1, 100 and 0.01 and a correlation of 0.995: NUTS warm-started at
    its mode with its Hessian (the Laplace approximation is exact here) has its moments (within 4 Monte
    Carlo errors by the effective sample size) in a few leapfrog steps a draw. (The identity as mass
    matrix, kept, would take hundreds; NumPyro's own start and diagonal adaptation took 19.5 against
    5.1 when this was written; the floored stand-in for H⁻¹ gave an ESS of 80 of 800 draws, 14.7 steps a draw.)"""
    from numpyro.diagnostics import effective_sample_size

    from pinnprob.inference.runners import LaplaceStart, run_nuts

    cov = np.array([[1.0, 0.995 * 100.0], [0.995 * 100.0, 100.0**2]])

    def model(y):
        numpyro.sample("z", dist.MultivariateNormal(jnp.zeros(2), jnp.asarray(cov)))
        numpyro.sample("a", dist.Normal(3.0, 0.01))

    # H in the sites' sorted order (a, then z), the start's sites in another: NumPyro's dense mass matrix
    # must see the same order
    H = np.zeros((3, 3))
    H[0, 0], H[1:, 1:] = 1e4, np.linalg.inv(cov)  # eigenvalues 10⁻⁴ to 10⁴: float64
    with jax.enable_x64(True):
        samples, stats = run_nuts(model, None, jax.random.key(0), 100, 400, 2, False, "vectorized",
                                  LaplaceStart({"z": np.zeros(2), "a": np.array(3.0)}, H))
    a = np.asarray(samples["z"], np.float64)  # (chain, draw, 2)
    for i, sd in enumerate((1.0, 100.0)):
        ess = float(effective_sample_size(a[..., i]))
        assert ess > 400  # 800 draws
        assert abs(a[..., i].mean()) < 4 * sd / math.sqrt(ess), i
        assert abs(a[..., i].std() / sd - 1.0) < 4 / math.sqrt(2 * ess), i
    flat = a.reshape(-1, 2)
    assert abs(np.corrcoef(flat.T)[0, 1] - 0.995) < 0.002
    assert float(np.mean(stats["n_steps"])) < 10


def test_nuts_warm_start_warns_of_a_hessian_that_is_not_positive_definite():
    """run_nuts with a start whose Hessian has a negative eigenvalue: one warning, which says where the
    mode search stopped (its steps, gradient norm and message) and, in float32, to enable x64; the
    chain still runs (warm-up adapts the mass matrix) and keeps its draws finite."""
    from pinnprob.inference.runners import LaplaceStart, run_nuts

    def model(y):
        numpyro.sample("z", dist.Normal(jnp.zeros(2), 1.0))

    info = {"optimiser_steps": 7, "gradient_norm": 6.5, "optimiser_message": "precision loss"}
    start = LaplaceStart({"z": np.zeros(2, np.float32)}, np.diag([-0.02, 1.0]), info)
    with pytest.warns(UserWarning, match=r"not positive definite \(the mode search stopped after 7 steps with "
                                         r"gradient norm 6\.5: precision loss\).*jax_enable_x64") as record:
        samples, _ = run_nuts(model, None, jax.random.key(0), 20, 10, 1, False, start=start)
    assert sum("not positive definite" in str(w.message) for w in record) == 1
    assert samples["z"].shape == (1, 10, 2) and np.all(np.isfinite(np.asarray(samples["z"])))


def test_laplace_runner_integrates_a_skewed_posterior():
    """y_i ~ N(0, s²), s² ~ InverseGamma(3, 2), n = 8: the posterior of s² is InverseGamma(3 + n/2,
    2 + Σy²/2), skewed. The runner's mode (in NumPyro's unconstrained space, log s²) is its exact
    mode b/a, and its importance-weighted draws have the exact mean and sd (within 4 Monte Carlo
    errors, from the weights' effective sample size)."""
    import numpyro

    from pinnprob.inference.runners import run_laplace

    y = jnp.asarray(np.random.default_rng(0).normal(0.0, 1.5, 8))

    def model(y):
        s2 = numpyro.sample("s2", dist.InverseGamma(3.0, 2.0))
        numpyro.sample("y", dist.Normal(0.0, jnp.sqrt(s2)), obs=y)

    samples, stats, info = run_laplace(model, y, jax.random.key(0), 2000, 1, False, num_proposals=6000)
    a, b = 3.0 + 4.0, 2.0 + float(jnp.sum(y**2)) / 2.0
    mean, sd = b / (a - 1), b / ((a - 1) * math.sqrt(a - 2))
    assert info["mode"]["s2"] == pytest.approx(b / a, rel=1e-3)
    draws = np.asarray(samples["s2"][0], np.float64)
    assert draws.shape == (2000,) and info["importance_ess"] > 1500
    assert 0.0 <= info["newton_decrement"] < 1e-3  # the end's Hessian agrees the mode is reached
    assert info["pareto_k"] < 0.5  # the t proposals cover this posterior's tails
    ess = min(info["importance_ess"], 2000)
    assert abs(draws.mean() - mean) < 4 * sd / math.sqrt(ess)
    assert abs(draws.std() / sd - 1) < 4 * math.sqrt(2.0 / ess) + 0.02


def test_tabulated_branch_matches_the_network(prior):
    """The model's tabulated branch reproduces the network's amplitudes over the whole range prior."""
    import math

    from pinnprob.generators import TabulatedGenerator

    lo, hi = prior.param_range.range
    fixed = TabulatedGenerator(prior.generator, (math.log(lo), math.log(hi)), (1.5, 1.5), num_range=49)
    free = TabulatedGenerator(prior.generator, (math.log(lo), math.log(hi)), prior.param_range.nu, num_range=49)
    lo_nu, hi_nu = prior.param_range.nu
    assert fixed.table.shape[0] == 1 and free.table.shape[0] == round((hi_nu - lo_nu) / 0.1) + 1  # ν rows 0.1 apart
    assert fixed.max_error() < 2e-5  # float32 level: cubic Hermite with exact derivatives
    assert free.max_error() < 5e-4  # cubic in ν, h = 0.1 (measured 2.8e-4 over the default's box)
    # the same field law: basis and gradients through the table agree with the network's
    X = np.random.default_rng(1).uniform(0, 1, (40, 2))
    th = jnp.array([math.log(0.5), 1.5])
    f_net = GenerativeField(prior.generator, prior.generator.features(X), th, 1.0)
    f_tab = GenerativeField(free, free.features(X), th, 1.0)
    np.testing.assert_allclose(f_tab.basis(), f_net.basis(), rtol=1e-3, atol=1e-7)
    g = lambda gen, r: jnp.sum(GenerativeField(gen, gen.features(X), jnp.stack([jnp.log(r), jnp.asarray(1.5)]), 1.0).variance)  # noqa: E731
    np.testing.assert_allclose(jax.grad(lambda r: g(free, r))(0.5), jax.grad(lambda r: g(prior.generator, r))(0.5),
                               rtol=2e-3)
    with pytest.raises(ValueError, match="bad table bounds"):
        TabulatedGenerator(prior.generator, (0.0, -1.0), (1.5, 1.5))
    # a fixed range (bounds of zero width, as a model with the range fixed has): a narrow table around it
    point = TabulatedGenerator(prior.generator, (math.log(0.5), math.log(0.5)), (1.5, 1.5), num_range=49)
    np.testing.assert_allclose(point.branch(th), prior.generator.branch(th), rtol=2e-5)


@pytest.mark.parametrize("nodes", [64, 256])
def test_table_on_eigenvalue_nodes_equals_the_table_at_each_eigenvalue(prior, monkeypatch, nodes):
    """With more distinct eigenvalues than LAMBDA_NODES (a rectangle's, which barely repeat), the
    table is built on nodes in log(1 + λ) and interpolated to the eigenvalues: in float64, within the
    O(h⁴) of cubic interpolation of the table built at every eigenvalue (both against the network:
    the table's own error, ~1e-4, is unchanged)."""
    import math

    from pinnprob.generators import tabulated

    lo, hi = prior.param_range.range
    with jax.enable_x64(True):
        rect = pinnprob.pretrained("matern2d").truncate(lo).on_box((1.0, 0.7))  # float64 weights
        distinct = np.unique(np.asarray(rect.generator.basis.eigenvalues)).size
        assert distinct > nodes and rect.generator.basis.eigenvalues.dtype == jnp.float64
        monkeypatch.setattr(tabulated, "LAMBDA_NODES", 10**9)
        exact = tabulated.TabulatedGenerator(rect.generator, (math.log(lo), math.log(hi)), prior.param_range.nu, 49)
        monkeypatch.setattr(tabulated, "LAMBDA_NODES", nodes)
        grid = tabulated.TabulatedGenerator(rect.generator, (math.log(lo), math.log(hi)), prior.param_range.nu, 49)
        assert grid.table.shape == exact.table.shape
        diff = float(jnp.max(jnp.abs(grid.table - exact.table)))
        # measured 2.0e-6 (64 nodes) and 7.6e-9 (256 nodes): 264× apart, h⁴'s 256×
        assert diff < (4e-6 if nodes == 64 else 2e-8)
        assert abs(grid.max_error() - exact.max_error()) < 1e-5


def test_truncation_tail_is_the_left_out_spectral_variance():
    """fit adds the variance of the modes truncate() leaves out to the noise: it must equal the exact
    spectrum summed over those modes, be near the tolerance at the truncation range, and shrink with range."""
    from pinnprob import truth
    from pinnprob.inference.model import ModelParams, tail_sd, truncation_tail

    full = pinnprob.pretrained("matern2d")
    b = full.generator.basis
    short = full.truncate(0.15, tol=0.01, nu=1.5)
    tail = truncation_tail(full.spde, b.eigenvalues, short.latent_dim)
    th = lambda r: full.param_range.theta(range=r, nu=1.5)  # noqa: E731
    sd = truth.spectral_std(b, range=0.15, sigma=1.0, nu=1.5)
    np.testing.assert_allclose(float(tail(th(0.15))), np.sum(sd[short.latent_dim:] ** 2), rtol=1e-4)
    assert 0.005 < float(tail(th(0.15))) / np.sum(sd**2) <= 0.0101  # truncate() left out ≤ 1 %
    assert float(tail(th(0.3))) < 0.2 * float(tail(th(0.15)))
    assert np.isfinite(jax.grad(lambda r: tail(th(r)))(0.2))
    assert truncation_tail(full.spde, b.eigenvalues, b.size) is None
    # fit's diagnostic: the posterior mean of σ √tail(θ) over draws in the user's units (here 2 box units
    # a unit: ranges 0.3 and 0.4 are 0.15 and 0.2 of the box), ν fixed
    params = ModelParams(full.param_range, {"range": dist.LogUniform(0.2, 1.0)}, {"nu": 1.5}, scale=2.0)
    draws = {"range": np.array([[0.3, 0.4]]), "sigma": np.array([[1.0, 2.0]])}
    expect = [s * math.sqrt(np.sum(truth.spectral_std(b, range=r, sigma=1.0, nu=1.5)[short.latent_dim:] ** 2))
              for r, s in ((0.15, 1.0), (0.2, 2.0))]
    assert tail_sd(tail, params, draws) == pytest.approx(np.mean(expect), rel=1e-4)
    assert tail_sd(None, params, draws) is None


def test_truncate_rounds_its_cut_up_to_a_multiple():
    """truncate(multiple_of=k) keeps the plain cut's modes and the next ones up to a multiple of k (at
    most the trunk), and refuses a k that is not a positive integer; fit's bucket adds ≤ 1/32 more."""
    from pinnprob.inference.model import mode_bucket

    full = pinnprob.pretrained("matern2d")
    plain = full.truncate(0.15, tol=0.01, nu=1.5).latent_dim
    for k in (7, 256):
        cut = full.truncate(0.15, tol=0.01, nu=1.5, multiple_of=k)
        assert cut.latent_dim % k == 0 and plain <= cut.latent_dim < plain + k
        np.testing.assert_array_equal(np.asarray(cut.generator.basis.eigenvalues),
                                      np.asarray(full.generator.basis.eigenvalues)[:cut.latent_dim])
    assert full.truncate(0.15, tol=0.01, nu=1.5, multiple_of=10**6).latent_dim == full.latent_dim
    for bad in (0, -4, 2.5, float("nan"), float("inf"), "4"):
        with pytest.raises(ValueError, match="multiple_of must be a positive integer"):
            full.truncate(0.15, multiple_of=bad)
    assert [mode_bucket(m) for m in (1, 63, 64, 5502, 9402, 9471)] == [1, 1, 2, 128, 256, 256]
    assert all(mode_bucket(m) <= m / 32 for m in range(64, 20000, 997))


def test_fit_on_the_reduced_path_rounds_its_modes_and_rank():
    """Where fit evaluates the covariance through a site covariance (cost independent of the modes),
    it rounds the number of modes up to mode_bucket's multiple and the rank up to a multiple of 4, so
    that similar fits (cross-validation folds) share shapes."""
    from pinnprob.inference.model import mode_bucket
    from pinnprob.inference.site_covariance import RANK_MULTIPLE

    X, y, _ = _data()
    full = pinnprob.pretrained("matern2d")
    idata = fit(X, y, prior=full, nu=1.5, method="laplace", **dict(FAST, num_samples=500))
    used, meta = fit_prior(idata)
    assert meta["collapsed_path"] == "reduced" and meta["site_covariance"]["rank"] % RANK_MULTIPLE == 0
    m = used.latent_dim
    assert m % mode_bucket(m) == 0 and m < full.latent_dim
    boxed = full if used.config.lengths is None else full.on_box(used.config.lengths)
    plain = boxed.truncate(used.param_range.range[0], tol=0.01, nu=1.5).latent_dim
    assert plain <= m < plain + mode_bucket(plain)


def test_truncation_tail_on_a_rectangle_is_the_variance_left_out_per_site():
    """On a box of area |D| orthonormal modes average φ² = 1/|D|: the tail is the left-out spectrum
    over |D|, and it is what the left-out modes' variance averages to over sites in the box."""
    from pinnprob import truth
    from pinnprob.inference.model import truncation_tail

    rect = pinnprob.pretrained("matern2d").on_box((1.0, 0.5))
    b = rect.generator.basis
    short = rect.truncate(0.15, tol=0.01, nu=1.5)
    tail = truncation_tail(rect.spde, b.eigenvalues, short.latent_dim)  # |D| = 0.5 from the SPDE's box
    sd = truth.spectral_std(b, range=0.15, sigma=1.0, nu=1.5)
    t = float(tail(rect.param_range.theta(range=0.15, nu=1.5)))
    np.testing.assert_allclose(t, np.sum(sd[short.latent_dim:] ** 2) / 0.5, rtol=1e-4)
    # the left-out modes' variance Σ_k sd_k² φ_k(x)² averaged over 400 uniform sites; each φ_k²|D| has
    # mean 1 and the average spreads over ~10⁴ modes: a few tenths of a percent of Monte Carlo error
    X = np.random.default_rng(3).uniform(0, 1, (400, 2)) * np.array([1.0, 0.5])
    feats = np.asarray(b(jnp.asarray(X)), np.float64)[:, short.latent_dim:]
    np.testing.assert_allclose(np.mean(feats**2 @ sd[short.latent_dim:] ** 2), t, rtol=0.03)


def test_coordinate_map_to_the_data_rectangle():
    from pinnprob.inference.data import CoordinateMap, check_bounds

    X = np.array([[0.0, 0.0], [10.0, 2.0], [4.0, 1.0]])
    sq = CoordinateMap.from_data(X, 0.5)
    assert sq.lengths is None and sq.scale == 20.0 and not sq.outside(sq.to_unit(X)).any()
    rc = CoordinateMap.from_data(X, 0.5, rectangle=True)
    assert rc.scale == 20.0 and rc.lengths == pytest.approx((1.0, 0.6))
    U = rc.to_unit(X)
    assert not rc.outside(U).any() and U[:, 1].min() == pytest.approx(0.25) and U[:, 1].max() == pytest.approx(0.35)
    assert list(rc.outside(rc.to_unit(np.array([[5.0, 7.5], [5.0, 6.0], [-5.0, 1.0]])))) == [True, False, False]
    line = np.array([[0.0, 1.0], [3.0, 1.0], [10.0, 1.0]])  # on a line with no buffer: a thin box, not none
    thin = CoordinateMap.from_data(line, 0.0, rectangle=True)
    assert thin.lengths == pytest.approx((1.0, CoordinateMap.MIN_SIDE)) and not thin.outside(thin.to_unit(line)).any()
    assert CoordinateMap.from_dict({"origin": [0, 0], "scale": 2.0}).lengths is None  # a fit stored before
    assert CoordinateMap.from_dict(dataclasses.asdict(rc)) == rc
    lo, hi = check_bounds([[-5, 15], [-5, 10]], X)
    given = CoordinateMap.from_bounds(lo, hi, rectangle=True)
    assert given.origin == (-5.0, -5.0) and given.scale == 20.0 and given.lengths == pytest.approx((1.0, 0.75))
    assert CoordinateMap.from_bounds(lo, hi).origin == (-5.0, -7.5)  # the square around them
    for bad, match in (([[0, 10]], "shape \\(2, 2\\)"), ([[0, 10], [3, 1]], "low < high"),
                       ([[0, 10], [0, np.nan]], "finite"), ([[1, 10], [0, 2]], "1 site.*row 0")):
        with pytest.raises(ValueError, match=match):
            check_bounds(bad, X)


def test_fit_on_an_elongated_site_set_models_its_rectangle(prior):
    """A spectral prior fits a rectangle (here given by bounds=, a study area beyond the data; by
    default the data's bounding box, test_coordinate_map_to_the_data_rectangle), with fewer modes than
    the square around it, keeps it through predict, and refuses sites outside it."""
    X, y, _ = _data()
    X = X * np.array([1.0, 0.25])  # sites on [0, 10] × [0, 2.5]
    with pytest.raises(ValueError, match="bounds must hold every site"):
        fit(X, y, prior=prior, nu=1.5, method="laplace", bounds=[[5, 12], [-2, 12]], **FAST)
    idata = fit(X, y, prior=prior, nu=1.5, method="laplace", bounds=[[-2, 12], [-3, 5.4]], **FAST)
    used, meta = fit_prior(idata)
    cmap = meta["coordinate_map"]
    assert cmap["origin"] == [-2.0, -3.0] and cmap["scale"] == 14.0
    assert cmap["lengths"] == pytest.approx([1.0, 0.6]) and used.config.lengths == tuple(cmap["lengths"])
    on_square = prior.truncate(used.param_range.range[0], nu=1.5)
    assert used.latent_dim < 0.7 * on_square.latent_dim
    pred = predict(idata, np.array([[5.0, 1.0], [11.9, 5.3]]))
    assert np.all(np.isfinite(pred["mean"])) and np.all(pred["sd"] > 0)
    with pytest.raises(ValueError, match="1 row.*outside the modelled box"):
        predict(idata, np.array([[5.0, 1.0], [5.0, 8.0]]))  # inside the square, outside the rectangle


def test_laplace_axial_integration_corrects_skewness():
    """integration="axial" on the skewed posterior above, in log s² (NumPyro's unconstrained space):
    the exact density exp(−a t − b e^{−t}) falls off faster on the left, so the split normal's scale
    on the right is the larger; the draws' mean of t = log s² lies closer to the exact E[t] = log b − ψ(a)
    than the mode does (what the symmetric Laplace approximation would give), within 4 Monte Carlo sd,
    and their sd is within 15 % of the exact one (ψ'(a)^{1/2}); the split normal costs 2p evaluations."""
    import numpyro
    from scipy.special import digamma, polygamma

    from pinnprob.inference.runners import run_laplace

    y = jnp.asarray(np.random.default_rng(0).normal(0.0, 1.5, 8))

    def model(y):
        s2 = numpyro.sample("s2", dist.InverseGamma(3.0, 2.0))
        numpyro.sample("y", dist.Normal(0.0, jnp.sqrt(s2)), obs=y)

    samples, _, info = run_laplace(model, y, jax.random.key(0), 4000, 1, False, integration="axial")
    a, b = 3.0 + 4.0, 2.0 + float(jnp.sum(y**2)) / 2.0
    exact_mean, exact_sd, mode = math.log(b) - digamma(a), math.sqrt(polygamma(1, a)), math.log(b / a)
    t = np.log(np.asarray(samples["s2"][0], np.float64))
    (s_minus, s_plus), = info["axial_scales"]
    assert info["integration"] == "axial" and s_plus > s_minus
    assert abs(t.mean() - exact_mean) + 4 * t.std() / math.sqrt(len(t)) < abs(mode - exact_mean)
    assert abs(t.std() / exact_sd - 1) < 0.15


def test_laplace_axial_integration_is_exact_for_a_gaussian_posterior():
    """A conjugate Gaussian posterior (2 parameters, correlated): the axial scales are 1 (to the
    finite-difference Hessian's error) and the draws' mean and covariance match the exact ones
    within 4 Monte Carlo sd."""
    import numpyro

    from pinnprob.inference.runners import run_laplace

    B = jnp.asarray([[1.0, 0.5], [0.3, 1.0], [1.0, -1.0]])
    y = jnp.asarray([0.4, -0.2, 1.1])

    def model(y):
        w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        numpyro.sample("y", dist.Normal(B @ w, 0.5), obs=y)

    samples, _, info = run_laplace(model, y, jax.random.key(1), 4000, 1, False, integration="axial")
    Bn = np.asarray(B, np.float64)
    cov = np.linalg.inv(np.eye(2) + Bn.T @ Bn / 0.25)
    mean = cov @ Bn.T @ np.asarray(y, np.float64) / 0.25
    np.testing.assert_allclose(info["axial_scales"], 1.0, atol=0.02)
    w = np.asarray(samples["w"][0], np.float64)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(w.mean(0) - mean) < 4 * sd / math.sqrt(len(w)))
    assert np.all(np.abs(w.std(0) / sd - 1) < 4 * math.sqrt(0.5 / len(w)) + 0.02)
