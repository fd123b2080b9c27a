"""Space-time inference: the pair-lag table against the entrywise covariance, the fit's model against the
exact Gaussian log density in the user's units (range, time range, velocity through both maps), every
bad input refused before any work with the data untouched, and predict against kriging written out in
NumPy."""

import warnings

import numpy as np
import pytest
from scipy import stats

import equinox as eqx
import jax
import jax.numpy as jnp

import pinnprob
from pinnprob.inference import spacetime as st
from pinnprob.inference.kalman import KalmanGaussian, SiteTimeGrid, kalman_logpdf
from pinnprob.spacetime_prior import PairLagIndex, stationary_covariance

VALS = dict(range=0.25, time_range=1.5, velocity_x1=0.2, alpha=1.5)


@pytest.fixture(scope="module")
def prior1d():
    return pinnprob.pretrained("advection-diffusion-1d")


def table_data(seed=0, sites=6, times=8):
    """A long table in user units (km, days): stations at [0, 100] km, daily, some days missing."""
    rng = np.random.default_rng(seed)
    s = np.sort(rng.uniform(0, 100, sites))
    X = np.tile(s, times)[:, None]
    T = np.repeat(np.arange(times, dtype=float), sites)
    keep = rng.uniform(size=X.shape[0]) > 0.15
    y = 1.0 + rng.normal(size=X.shape[0])
    return X[keep], T[keep], y[keep]


def test_pair_lag_table_is_the_entrywise_covariance(prior1d):
    rng = np.random.default_rng(1)
    X = np.tile(rng.uniform(0.2, 0.8, (5, 1)), (9, 1))
    T = np.repeat(np.arange(9) * 0.3, 5)  # lags equal only up to rounding are merged
    Y, S = rng.uniform(0.2, 0.8, (4, 1)), rng.uniform(0, 3, 4)
    idx = PairLagIndex.build(X, T)
    assert idx.H.shape == (25, 1) and idx.lags.shape == (17,) and idx.pays
    th = prior1d.theta(**VALS)
    gen = prior1d.generator
    for a, b in (((X, T), (X, T)), ((X, T), (Y, S)), ((Y, S), (X, T))):
        direct = gen.covariance(*(jnp.asarray(v) for v in (*a, *b)), th)
        np.testing.assert_allclose(np.asarray(stationary_covariance(gen, *a, *b)(th)), np.asarray(direct),
                                   rtol=1e-5, atol=1e-6)  # float32: the cos·cos + sin·sin products
    # the tail (the variance beyond the trunk) sits on the diagonal only
    C = np.asarray(stationary_covariance(gen, X, T)(th))
    np.testing.assert_allclose(np.diag(C), float(prior1d.covariance(X[:1], T[:1], **VALS)[0, 0]), rtol=1e-6)


def test_model_is_the_exact_gaussian_in_user_units(prior1d):
    """The fit's log density at given user-unit parameters equals N(y | μ, σ²C + s²I) with C the prior's
    covariance at the unit-box parameters: range/L, time_range/τ, velocity·τ/L."""
    from numpyro.infer.util import log_density

    X, T, y = table_data()
    cmap = st.CoordinateMap.from_data(X, 0.5)
    tmap = st.TimeMap.from_times(T, 0.5)  # one prior time unit = half a day
    assert cmap.scale == pytest.approx(2 * (X.max() - X.min())) and tmap.scale == 0.5
    space = prior1d.param_range
    cov = stationary_covariance(prior1d.generator, cmap.to_unit(X), tmap.to_unit(T))
    user = {"range": 0.25 * cmap.scale, "time_range": 1.5 * tmap.scale, "velocity_x1": 0.2 * cmap.scale / tmap.scale,
            "alpha": 1.5}
    vals = {**user, "sigma": 1.3, "noise": 0.4, "intercept_centered": 0.7}

    import numpyro.distributions as dist

    flat = dist.ImproperUniform(dist.constraints.real, (), ())  # the likelihood term is what is checked
    params = st.ModelParams(space, {n: flat for n in space.names}, {}, cmap.scale, tmap.scale)
    model = st.spacetime_model(st.dense_law(cov, len(y), 0.0), params, len(y), (float(y.mean()), float(y.std())),
                               None, flat, flat)
    from numpyro.handlers import substitute, trace

    tr = trace(substitute(model, vals)).get_trace(y=jnp.asarray(y))
    lp = float(tr["y"]["fn"].log_prob(jnp.asarray(y)))
    C = np.asarray(prior1d.covariance(cmap.to_unit(X), tmap.to_unit(T), **VALS), np.float64)
    ref = stats.multivariate_normal(np.full(len(y), 0.7), 1.3**2 * C + 0.4**2 * np.eye(len(y))).logpdf(y)
    np.testing.assert_allclose(lp, ref, rtol=1e-5)
    assert np.isfinite(float(log_density(model, (), {"y": jnp.asarray(y)}, vals)[0]))


@pytest.mark.parametrize("name, vals", [
    ("advection-diffusion-1d", VALS),
    ("advection-diffusion-2d", dict(range=0.2, time_range=1.5, velocity_x1=0.2, velocity_x2=-0.1, alpha=2.2, angle=0.5,
                                    ratio=1.5))])
def test_kalman_filter_is_the_dense_gaussian(name, vals):
    """The filter's log density and its gradient in θ against the dense Gaussian of the prior's covariance,
    at irregular times with 30 % of the (site, time) cells missing."""
    prior = pinnprob.pretrained(name)
    rng = np.random.default_rng(0)
    m, nt = (5, 8) if prior.dim == 1 else (4, 4)  # 2-D: 3 205 states, a short series keeps the test fast
    S = rng.uniform(0.2, 0.8, (m, prior.dim))
    X, T = np.tile(S, (nt, 1)), np.repeat(np.cumsum(rng.uniform(0.1, 0.5, nt)), m)
    keep = rng.uniform(size=m * nt) > 0.3
    X, T = X[keep], T[keep]
    y = jnp.asarray(rng.normal(size=len(T)))
    th = prior.theta(**vals)
    cov = stationary_covariance(prior.generator, X, T)
    n = len(T)

    def dense(t, cov, y):
        K = 1.3**2 * (cov(t) + 1e-4 * jnp.eye(n)) + 0.3**2 * jnp.eye(n)
        return jax.scipy.stats.multivariate_normal.logpdf(y, jnp.zeros(n), K)

    grid = SiteTimeGrid.build(X, T)
    kal = lambda t, gen, y: kalman_logpdf(gen, t, grid, y, 1.3, 0.3, 1e-4)  # noqa: E731
    # jitted, the generator, covariance and data as arguments (not constants to fold): one compilation
    # each instead of hundreds of eager operations
    (vk, gk), (vd, gd) = (eqx.filter_jit(jax.value_and_grad(f))(th, *args)
                          for f, args in ((kal, (prior.generator, y)), (dense, (cov, y))))
    np.testing.assert_allclose(float(vk), float(vd), rtol=2e-5)
    np.testing.assert_allclose(np.asarray(gk), np.asarray(gd), rtol=2e-3, atol=2e-3)


def test_kalman_gaussian_samples_have_its_covariance():
    prior = pinnprob.pretrained("advection-diffusion-1d")
    rng = np.random.default_rng(2)
    X, T = np.tile(rng.uniform(0.2, 0.8, (4, 1)), (5, 1)), np.repeat(np.arange(5) * 0.4, 4)
    keep = np.ones(20, bool)
    keep[[3, 9, 14]] = False
    X, T = X[keep], T[keep]
    d = KalmanGaussian(prior.generator, prior.theta(**VALS), SiteTimeGrid.build(X, T), jnp.zeros(len(T)), 1.2, 0.3)
    num = 4000
    Yd = np.asarray(d.sample(jax.random.key(0), (num,)), np.float64)
    C = 1.44 * np.asarray(prior.covariance(X, T, **VALS), np.float64) + 0.09 * np.eye(len(T))
    floor = np.sqrt((np.sum(C**2) + np.sum(np.outer(np.diag(C), np.diag(C)))) / num) / np.linalg.norm(C)
    assert Yd.shape == (num, len(T))
    assert np.linalg.norm(Yd.T @ Yd / num - C) / np.linalg.norm(C) < 1.5 * floor


def _no_work(*a, **k):
    raise AssertionError("the sampler ran before the input was refused")


@pytest.mark.parametrize("case, match", [
    ("unsorted", "goes back in time"), ("duplicate", "repeats the time"), ("nan", "NaN"),
    ("single", "single time point"), ("length", "times must have shape"),
    ("velocity", "velocity_x1 = 1000000.0 is outside the prior.s box for these coordinates and times"),
    ("time_scale", "time_scale must be a positive"), ("no_times", "pass times="), ("likelihood", "Gaussian likelihood"),
    ("integration", "integration= is for method='laplace'"),
])
def test_bad_input_is_refused_before_work(prior1d, monkeypatch, case, match):
    monkeypatch.setattr(st, "run_method", _no_work)
    X, T, y = table_data()
    kw = {}
    if case == "unsorted":
        i = int(np.flatnonzero(X[:, 0] == X[0, 0])[1])
        T[[0, i]] = T[[i, 0]]
    elif case == "duplicate":
        i = int(np.flatnonzero(X[:, 0] == X[0, 0])[1])
        T[i] = T[0]
    elif case == "nan":
        T[3] = np.nan
    elif case == "single":
        T[:] = 2.0
        X = np.arange(len(y), dtype=float)[:, None]
    elif case == "length":
        T = T[:-1]
    elif case == "velocity":
        kw["fixed"] = {"velocity_x1": 1e6}
    elif case == "time_scale":
        kw["time_scale"] = -1.0
    elif case == "likelihood":
        kw["likelihood"] = "poisson"
    elif case == "integration":
        kw["integration"] = "axial"  # with the default method, NUTS
    copies = [a.copy() for a in (X, T, y)]
    with pytest.raises(ValueError, match=match):
        pinnprob.fit(X, y, times=None if case == "no_times" else T, prior=prior1d, progress_bar=False, **kw)
    for a, b in zip((X, T, y), copies):
        np.testing.assert_array_equal(a, b)


def test_spatial_prior_refuses_times():
    with pytest.raises(ValueError, match="times=, time_scale= and solver= are for space-time priors"):
        pinnprob.fit(np.random.default_rng(0).uniform(size=(20, 2)), np.zeros(20), times=np.arange(20.0))


def test_fit_and_predict_against_numpy_kriging(prior1d):
    """A Laplace fit end to end (user units in the posterior), then predict: its mixture mean and sd against
    the Gaussian conditional written out in NumPy from the prior's own covariance, draw by draw."""
    X, T, y = table_data(seed=3)
    idata = pinnprob.fit(X, y, times=T, prior=prior1d, method="laplace", num_samples=40, progress_bar=False,
                         fixed={"alpha": 1.5})
    from pinnprob.inference.arviz_data import group

    post = group(idata, "posterior")
    L = 2 * (X.max() - X.min())
    rng_lo, rng_hi = (b * L for b in prior1d.param_range.bounds("range"))
    r = post["range"].values
    assert np.all((r >= rng_lo) & (r <= rng_hi))
    Xn = np.array([[X[0, 0]], [50.0], [50.0]])
    Tn = np.array([T.max() + 1.0, 2.5, T.max() + 3.0])  # a forecast at a station, an interpolation, a forecast
    pr = pinnprob.predict(idata, Xn, times=Tn, num_draws=5, return_draws=True)
    assert pr["draws"].shape == (5, 3) and pr["quantiles"].shape == (3, 3)
    # by hand, for the same 5 draws
    meta_scale = L
    tmap = st.TimeMap.from_times(T)
    cmap = st.CoordinateMap.from_data(X, 0.5)
    sel = np.argwhere(np.ones(post["sigma"].shape, bool))
    sel = sel[np.linspace(0, len(sel) - 1, 5).astype(int)]
    means, vars_ = [], []
    for c, d in sel:
        g = lambda n: float(post[n].values[c, d])  # noqa: E731
        kw = dict(range=g("range") / meta_scale, time_range=g("time_range") / tmap.scale,
                  velocity_x1=g("velocity_x1") * tmap.scale / meta_scale, alpha=1.5)
        s, nz, b0 = g("sigma"), g("noise"), g("intercept")
        U, Un, t, tn = cmap.to_unit(X), cmap.to_unit(Xn), tmap.to_unit(T), tmap.to_unit(Tn)
        Knn = s**2 * np.asarray(prior1d.covariance(U, t, **kw)) + (nz**2 + s**2 * 1e-5) * np.eye(len(y))
        Kmn = s**2 * np.asarray(prior1d.covariance(Un, tn, U, t, **kw))
        Kmm = s**2 * np.asarray(prior1d.covariance(Un, tn, **kw)) + s**2 * 1e-5 * np.eye(3)
        means.append(b0 + Kmn @ np.linalg.solve(Knn, y - b0))
        vars_.append(np.diag(Kmm - Kmn @ np.linalg.solve(Knn, Kmn.T)))
    means, vars_ = np.array(means), np.array(vars_)
    np.testing.assert_allclose(pr["mean"], means.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(pr["sd"], np.sqrt(vars_.mean(0) + means.var(0)), rtol=1e-4)
    # a forecast far ahead tends to the prior: its sd exceeds the interpolation's
    assert pr["sd"][2] > pr["sd"][1]
    # conditioning on other data: the fit's own data give the same answer; a subset, another one
    same = pinnprob.predict(idata, Xn, times=Tn, num_draws=5, observed=(X, T, y))
    np.testing.assert_allclose(same["mean"], pr["mean"], rtol=1e-6)
    late = T >= 4
    sub = pinnprob.predict(idata, Xn, times=Tn, num_draws=5, observed=(X[late], T[late], y[late]))
    assert not np.allclose(sub["mean"], pr["mean"])
    with pytest.raises(ValueError, match="goes back in time"):
        pinnprob.predict(idata, Xn, times=Tn, observed=(X[::-1], T[::-1], y[::-1]))
    with pytest.raises(ValueError, match="pass times="):
        pinnprob.predict(idata, Xn)
    with pytest.raises(ValueError, match="outside the modelled box"):
        pinnprob.predict(idata, Xn + 1e4, times=Tn)


def _long_table(tmp_path, shuffle_site=False):
    X, T, y = table_data(seed=5)
    if shuffle_site:  # two rows of one station swapped: its times go back
        i = np.flatnonzero(X[:, 0] == X[0, 0])[:2]
        T[i] = T[i[::-1]]
    path = tmp_path / "long.csv"
    lines = ["km,day,level"] + [f"{a:.4f},{b:g},{c:.5f}" for a, b, c in zip(X[:, 0], T, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_fits_a_long_table(tmp_path, capsys):
    import pandas as pd

    from pinnprob.cli import main

    path = _long_table(tmp_path)
    out = tmp_path / "fit"
    rc = main(["fit", str(path), "--x", "km", "--time", "day", "--value", "level", "--prior", "advection-diffusion-1d",
               "--method", "laplace", "--samples", "20", "--grid", "15", "--quiet", "--out", str(out)])
    assert rc == 0
    summ = pd.read_csv(out / "summary.csv", index_col=0)
    assert set(summ.index) == {"range", "time_range", "velocity_x1", "alpha", "sigma", "noise", "intercept"}
    pred = pd.read_csv(out / "predictions.csv")
    assert len(pred) == 30 and set(pred["kind"]) == {"last time", "forecast"}
    assert np.all(pred["sd"] > 0) and np.all(pred["q05"] < pred["q95"])
    for f in ("map_last.png", "map_forecast.png", "trace.png", "posterior.nc"):
        assert (out / f).stat().st_size > 0


@pytest.mark.parametrize("extra, match", [
    (["--prior", "advection-diffusion-1d", "--y", "level2"], "leave out --y"),
    (["--y", "day2"], "--time needs a space-time prior"),
    (["--prior", "advection-diffusion-1d"], "goes back in time"),
    (["--prior", "advection-diffusion-1d", "--predict-csv", "new.csv"], "--predict-csv is for spatial fits"),
])
def test_cli_space_time_errors(tmp_path, capsys, extra, match):
    from pinnprob.cli import main

    path = _long_table(tmp_path, shuffle_site=True)
    rc = main(["fit", str(path), "--x", "km", "--time", "day", "--value", "level", "--quiet",
               "--out", str(tmp_path / "o"), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and match.replace("\\", "") in err, err


def test_fit_records_its_solver_and_both_laws_agree(prior1d):
    """fit(solver=...) uses the solver asked for (or the cheaper one), and the two laws it chooses between give
    the same log density at random parameters (the filter against the dense Cholesky, through KalmanGaussian)."""
    import json

    X, T, y = table_data(seed=4, sites=5, times=6)
    idata = pinnprob.fit(X, y, times=T, prior=prior1d, method="laplace", num_samples=10, progress_bar=False,
                         fixed={"alpha": 1.5}, solver="kalman")
    assert json.loads(idata.attrs["pinnprob"])["solver"] == "kalman"
    U, t = st.CoordinateMap.from_data(X, 0.5).to_unit(X), st.TimeMap.from_times(T).to_unit(T)
    dense, how_d = st.likelihood_law(prior1d.generator, U, t, 1e-5, "dense")
    kal, how_k = st.likelihood_law(prior1d.generator, U, t, 1e-5, "kalman")
    assert (how_d, how_k) == ("dense", "kalman") and st.likelihood_law(prior1d.generator, U, t, 1e-5)[1] == "dense"
    rng = np.random.default_rng(0)
    yj = jnp.asarray(y)
    # jitted on (loc, θ, σ, noise): one compilation each for the three draws, not eager operations
    lp_kal, lp_dense = (jax.jit(lambda *a, law=law: law(*a).log_prob(yj)) for law in (kal, dense))
    for _ in range(3):
        th = prior1d.theta(range=rng.uniform(0.13, 0.4), time_range=rng.uniform(0.7, 3), velocity_x1=rng.uniform(-0.3, 0.3),
                           alpha=1.5)
        loc, s, nz = jnp.full(len(y), rng.normal()), rng.uniform(0.5, 2), rng.uniform(0.1, 1)
        np.testing.assert_allclose(float(lp_kal(loc, th, s, nz)), float(lp_dense(loc, th, s, nz)), rtol=2e-5)
    with pytest.raises(ValueError, match="solver must be"):
        pinnprob.fit(X, y, times=T, prior=prior1d, solver="qr")


def test_laplace_warns_of_float32_at_many_site_times(prior1d, monkeypatch):
    """method='laplace' at many site-times in float32 warns (once, naming x64) before its mode search; here
    from 10 site-times, not 2 000, and the search itself is cut short. Not in float64, nor for NUTS."""
    X, T, y = table_data(seed=4, sites=5, times=6)

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(st, "LAPLACE_FLOAT32_SITE_TIMES", 10)
    monkeypatch.setattr(st, "run_method", stop)
    for method, x64 in (("laplace", False), ("laplace", True), ("nuts", False)):
        with jax.enable_x64(x64), warnings.catch_warnings(record=True) as said, pytest.raises(Stop):
            warnings.simplefilter("always")
            pinnprob.fit(X, y, times=T, prior=prior1d, method=method, progress_bar=False, fixed={"alpha": 1.5})
        hits = [str(w.message) for w in said if "site-times: in float32" in str(w.message)]
        if method == "laplace" and not x64:
            assert len(hits) == 1 and hits[0].startswith(f"method='laplace' at {len(y)} site-times: in float32")
            assert "jax_enable_x64" in hits[0]
        else:
            assert hits == [], hits
