"""A fit carries its prior: written to netCDF and read back in a new process it predicts exactly as
before, with a custom prior too; a mismatching or missing prior is a clear error. And the import
order ArviZ ≥ 1.0 users meet (arviz before pinnprob) works."""

import json
import os
import subprocess
import sys
import textwrap

import equinox as eqx
import numpy as np
import pytest

import pinnprob

ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def _custom_prior():
    """The default's architecture and configuration with other weights (amplitudes × e^0.3): a prior
    that a check of the configuration alone cannot tell from the default."""
    base = pinnprob.pretrained("matern2d").truncate(0.3)
    gen = eqx.tree_at(lambda g: g.net.layers[-1].bias, base.generator, base.generator.net.layers[-1].bias + 0.3)
    return pinnprob.GenerativePrior(gen, base.config)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 10, (30, 2))
    y = np.cos(X[:, 1] / 3) + 0.2 * rng.standard_normal(30)
    prior = _custom_prior()
    idata = pinnprob.fit(X, y, prior=prior, nu=1.5, num_warmup=15, num_samples=10, progress_bar=False, seed=4)
    return idata, prior, rng.uniform(2, 8, (9, 2))


def test_round_trip_through_netcdf_in_a_new_process(fitted, tmp_path):
    idata, prior, Xn = fitted
    before = pinnprob.predict(idata, Xn)
    path = tmp_path / "fit.nc"
    idata.to_netcdf(str(path))
    np.save(tmp_path / "Xn.npy", Xn)
    script = textwrap.dedent(f"""
        import arviz, numpy as np, pinnprob
        idata = arviz.from_netcdf({str(path)!r})
        p = pinnprob.predict(idata, np.load({str(tmp_path / 'Xn.npy')!r}))
        np.save({str(tmp_path / 'after.npy')!r}, np.stack([p["mean"], p["sd"]]))
    """)
    subprocess.run([sys.executable, "-c", script], check=True, env=ENV, timeout=300)
    after = np.load(tmp_path / "after.npy")
    np.testing.assert_allclose(after[0], before["mean"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(after[1], before["sd"], rtol=0, atol=1e-6)
    # and the default prior, which this fit did not use, gives another answer: the copy mattered
    assert pinnprob.pretrained("matern2d").fingerprint != prior.fingerprint
    assert json.loads(idata.attrs["pinnprob"])["prior_fingerprint"] == prior.fingerprint


def test_predict_refuses_another_prior_and_a_fit_without_one(fitted):
    idata, prior, Xn = fitted
    np.testing.assert_allclose(pinnprob.predict(idata, Xn, prior=prior)["mean"], pinnprob.predict(idata, Xn)["mean"])
    with pytest.raises(ValueError, match="not the one this fit used"):
        pinnprob.predict(idata, Xn, prior=pinnprob.pretrained("matern2d"))
    stripped = idata.copy()
    del stripped.attrs["pinnprob_prior"]
    with pytest.raises(ValueError, match="carries no prior"):
        pinnprob.predict(stripped, Xn)
    del stripped.attrs["pinnprob"]
    with pytest.raises(ValueError, match="not made by pinnprob.fit"):
        pinnprob.predict(stripped, Xn)
    assert "pinnprob_prior" in idata.attrs  # the fit itself is untouched


def test_both_arviz_kinds_are_accepted(fitted):
    """fit returns the installed ArviZ's kind; predict and the plots take a DataTree under ArviZ 0.x too."""
    import xarray as xr

    from pinnprob.inference.arviz_data import arviz_major
    from pinnprob.plotting import plot_pair, plot_trace

    idata, _, Xn = fitted
    if arviz_major() >= 1:
        assert isinstance(idata, xr.DataTree)
        trees = [idata]
    else:
        assert type(idata).__name__ == "InferenceData"
        trees = [idata, idata.to_datatree()]
    want = pinnprob.predict(idata, Xn)
    for data in trees:
        got = pinnprob.predict(data, Xn)
        np.testing.assert_allclose(got["mean"], want["mean"], rtol=0, atol=1e-7)
        for fig in (plot_trace(data), plot_pair(data)):
            assert len(fig.axes) >= 2
            import matplotlib.pyplot as plt

            plt.close(fig)


def test_arviz_imported_first_then_a_numpyro_model_runs():
    """ArviZ ≥ 1.0 leaves lazy proxies of jax and numpyro in sys.modules; importing
    numpyro.distributions through them broke numpyro.factor (used by NUTS' initialisation)."""
    script = textwrap.dedent("""
        import arviz
        import numpyro.distributions as dist   # through the proxy, before pinnprob
        import numpy as np, jax, numpyro, pinnprob
        from numpyro.infer import MCMC, NUTS
        def model():
            numpyro.factor("f", 0.0)
            numpyro.sample("x", dist.Normal(0.0, 1.0))
        mcmc = MCMC(NUTS(model), num_warmup=5, num_samples=5, progress_bar=False)
        mcmc.run(jax.random.key(0))
        X = np.random.default_rng(0).uniform(0, 1, (12, 2))
        pinnprob.fit(X, X[:, 0], nu=1.5, num_warmup=5, num_samples=5, progress_bar=False)
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], env=ENV, timeout=300, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
