"""float32 and float64: the shipped prior and saved priors load, sample and fit in both precisions."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pinnprob
from pinnprob.inference.arviz_data import group


def _float_dtypes(prior):
    leaves = jax.tree_util.tree_leaves(eqx.filter(prior.generator, eqx.is_inexact_array))
    return {x.dtype for x in leaves}


X = np.random.default_rng(0).uniform(0.1, 0.9, (30, 2))


def test_shipped_prior_loads_samples_and_scores_in_both_precisions():
    out = {}
    for x64, want in ((False, jnp.float32), (True, jnp.float64)):
        with jax.enable_x64(x64):
            prior = pinnprob.pretrained("matern2d")  # its file holds float32 weights
            assert _float_dtypes(prior) == {jnp.dtype(want)}
            f = prior.sample(jax.random.key(0), X, range=0.2, nu=1.5, sigma=1.3, num_samples=4)
            assert f.dtype == want and bool(jnp.all(jnp.isfinite(f)))
            d = prior.distribution(X, range=0.2, nu=1.5, sigma=1.3)
            lp = d.log_prob(f)
            assert lp.dtype == want and bool(jnp.all(jnp.isfinite(lp)))
            out[x64] = (np.asarray(prior.covariance(X, range=0.2, nu=1.5, sigma=1.3), np.float64), prior.fingerprint)
    # the same law in both precisions (to float32 round-off), and the same identity
    np.testing.assert_allclose(out[True][0], out[False][0], rtol=2e-4, atol=2e-6)
    assert out[True][1] == out[False][1]


def test_saved_priors_cross_precisions_and_truncation_survives_the_file(tmp_path):
    base = pinnprob.pretrained("matern2d").truncate(0.3)
    C = np.asarray(base.covariance(X, range=0.4, nu=2.0), np.float64)
    # a truncated prior read back has the law it was saved with (the branch's frequency scale is
    # set from the full basis, not from the truncated one)
    back = pinnprob.load(base.save(tmp_path / "f32.eqx"))
    assert back.latent_dim == base.latent_dim and back.fingerprint == base.fingerprint
    np.testing.assert_allclose(np.asarray(back.covariance(X, range=0.4, nu=2.0), np.float64), C, rtol=1e-5, atol=1e-8)
    with jax.enable_x64(True):  # saved in float64 ...
        p64 = pinnprob.load(tmp_path / "f32.eqx")
        assert _float_dtypes(p64) == {jnp.dtype(jnp.float64)}
        p64.save(tmp_path / "f64.eqx")
        np.testing.assert_allclose(np.asarray(p64.covariance(X, range=0.4, nu=2.0)), C, rtol=2e-4, atol=2e-6)
    back32 = pinnprob.load(tmp_path / "f64.eqx")  # ... read in float32
    assert _float_dtypes(back32) == {jnp.dtype(jnp.float32)}
    np.testing.assert_allclose(np.asarray(back32.covariance(X, range=0.4, nu=2.0), np.float64), C, rtol=1e-5, atol=1e-8)
    assert back32.fingerprint == base.fingerprint


@pytest.mark.parametrize("collapsed", [True, False])
def test_fit_and_predict_in_float64(collapsed):
    rng = np.random.default_rng(1)
    Xd = rng.uniform(0, 10, (30, 2))
    y = np.sin(Xd[:, 0] / 3) + 0.2 * rng.standard_normal(30)
    with jax.enable_x64(True):
        prior = pinnprob.pretrained("matern2d").truncate(0.3)
        idata = pinnprob.fit(Xd, y, prior=prior, nu=1.5, num_warmup=15, num_samples=10, field_draws=3,
                             progress_bar=False, collapsed=collapsed, seed=2)
        post = group(idata, "posterior")
        assert post["range"].dtype == np.float64 and np.all(np.isfinite(post["range"].values))
        pred = pinnprob.predict(idata, Xd[:5])
        assert pred["mean"].dtype == np.float64
        assert np.all(np.isfinite(pred["mean"])) and np.all(pred["sd"] > 0)
