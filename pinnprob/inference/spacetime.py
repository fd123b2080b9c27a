"""Fit and prediction for space-time data: measurements y_i at (site x_i, time t_i), a long table.

``fit_spacetime(X, times, y, prior=...)`` (what :func:`pinnprob.fit` calls for a space-time prior)
checks the data, maps the coordinates to the prior's unit torus (the data's bounding box with a
buffer, :class:`~pinnprob.inference.data.CoordinateMap`) and the times to the prior's time unit
(:class:`TimeMap`), and samples

    θ ~ priors (user units: range in coordinate units, time_range in time units, velocities in
        coordinate units per time unit),  σ ~ PC,  β ~ N(0, ·),  noise ~ HalfNormal,
    y ~ N(intercept + Zβ, σ² C(θ) + noise² I),

C(θ) the generator's exact covariance between the site-time pairs, evaluated through the table of
distinct separations and lags (:class:`~pinnprob.spacetime_prior.PairLagIndex`). Stations that report
at different times are simply different rows. ``predict_spacetime(idata, X_new, times_new)`` gives the
posterior predictive at new sites and times (interpolation and forecast): per posterior draw the
exact Gaussian conditional (kriging mean, covariance and one conditional simulation), mixed over draws.
"""

from __future__ import annotations

import base64
import json
import math
import warnings
import zlib
from dataclasses import asdict, dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from pinnprob.inference.arviz_data import group, to_arviz
from pinnprob.inference.data import CoordinateMap, check_inputs
from pinnprob.inference.model import ModelParams
from pinnprob.inference.priors import pc_sigma
from pinnprob.inference.runners import FLOAT32_MODE_HINT, chain_method_for, run_method

__all__ = ["TimeMap", "check_spacetime_inputs", "fit_spacetime", "predict_spacetime", "spacetime_model"]


@dataclass(frozen=True)
class TimeMap:
    """prior time = (t − origin) / scale: ``scale`` is the user's time units per prior time unit."""

    origin: float
    scale: float

    @classmethod
    def from_times(cls, t: np.ndarray, time_scale: float | None = None) -> "TimeMap":
        """Origin at the first time; scale ``time_scale`` or, by default, the median spacing of the
        distinct times (one prior time unit per sampling interval)."""
        u = np.unique(t)
        scale = float(np.median(np.diff(u))) if time_scale is None else float(time_scale)
        return cls(float(u[0]), scale)

    def to_unit(self, t) -> np.ndarray:
        return (np.asarray(t, np.float64) - self.origin) / self.scale


def check_times_per_site(X: np.ndarray, t: np.ndarray, name: str = "times") -> None:
    """ValueError unless, at every site, the rows' times are strictly increasing in row order (no
    time twice at a site, none out of order); the first offending site and rows are named."""
    _, site = np.unique(X, axis=0, return_inverse=True)
    site = site.reshape(-1)
    order = np.lexsort((np.arange(t.shape[0]), site))  # by site, keeping row order within a site
    same = site[order][1:] == site[order][:-1]
    step = np.diff(t[order])
    bad = same & (step <= 0)
    if bad.any():
        k = int(np.argmax(bad))
        r0, r1 = int(order[k]), int(order[k + 1])
        what = "repeats the time" if step[k] == 0 else "goes back in time"
        raise ValueError(f"{name} must increase strictly at each site, in row order: at the site of row {r0} "
                         f"({X[r0].tolist()}), row {r1} {what} ({t[r1]:g} after {t[r0]:g}). Sort the table "
                         "by site and time, and average repeated measurements")


def check_spacetime_inputs(X, times, y, covariates, method, prior, priors=None, fixed=None, time_scale=None):
    """Float64 copies (X, t, y, Z) after every check on the data and settings (those of
    :func:`~pinnprob.inference.data.check_inputs`, then the times: one per row, finite, increasing at
    each site, at least two distinct; ``time_scale`` positive); one ValueError otherwise."""
    X, y, Z = check_inputs(X, y, covariates, "gaussian", method, prior, priors, fixed)
    try:
        t = np.array(times, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"times must be a numeric array, one time per row: {e}") from None
    if t.ndim != 1 or t.shape[0] != X.shape[0]:
        raise ValueError(f"times must have shape (n,) with n = {X.shape[0]} (the rows of X), got {t.shape}")
    bad = ~np.isfinite(t)
    if bad.any():
        raise ValueError(f"times has {int(bad.sum())} NaN or infinite value(s) (first: row {int(np.argmax(bad))}); "
                         "drop those rows first")
    if np.unique(t).size < 2:
        raise ValueError(f"the data have a single time point ({t[0]:g}): a space-time prior needs at least two "
                         "times; for one time, fit a spatial prior")
    check_times_per_site(X, t)
    if time_scale is not None and not (np.isscalar(time_scale) and math.isfinite(float(time_scale))
                                       and float(time_scale) > 0):
        raise ValueError(f"time_scale must be a positive number (time units per prior time unit), got {time_scale!r}")
    return X, t, y, Z


def dense_law(cov, n: int, jitter: float):
    """``law(loc, θ, σ, noise)``: N(loc, σ²(C(θ) + jitter I) + noise² I) by a dense Cholesky, ``cov(θ) -> (n, n)``
    the generator's covariance at the data's site-time pairs (σ = 1)."""
    eye = jnp.eye(n)

    def law(loc, theta, sigma, noise):
        K = sigma**2 * (cov(theta) + jitter * eye) + noise**2 * eye
        return dist.MultivariateNormal(loc, covariance_matrix=K)

    return law


def kalman_law(gen, grid, jitter: float):
    """``law(loc, θ, σ, noise)``: the same Gaussian by a Kalman filter over the times
    (:class:`~pinnprob.inference.kalman.KalmanGaussian`)."""
    from pinnprob.inference.kalman import KalmanGaussian

    return lambda loc, theta, sigma, noise: KalmanGaussian(gen, theta, grid, loc, sigma, noise, jitter)


def likelihood_law(gen, Xu, tu, jitter: float, how: str = "auto"):
    # how: the solver, checked by fit_spacetime before any work
    """(law, name): the data's Gaussian law as a function of (loc, θ, σ, noise), by a dense Cholesky over
    the pair-lag table or by a Kalman filter over the times, whichever costs fewer flops per evaluation
    (``how="auto"``; or ``"dense"``, ``"kalman"``)."""
    from pinnprob.inference.kalman import SiteTimeGrid, dense_cost, kalman_cost
    from pinnprob.spacetime_prior import stationary_covariance

    if how not in ("auto", "dense", "kalman"):
        raise ValueError(f"solver must be 'auto', 'dense' or 'kalman', got {how!r}")
    grid = SiteTimeGrid.build(Xu, tu)
    n = Xu.shape[0]
    if how == "auto":
        how = "kalman" if kalman_cost(len(grid.times), len(grid.sites), gen.num_modes) < dense_cost(n) else "dense"
    if how == "kalman":
        return kalman_law(gen, grid, jitter), how
    return dense_law(stationary_covariance(gen, Xu, tu), n, jitter), how


def spacetime_model(law, params: ModelParams, n: int, y_info: tuple, Z, sigma_prior, noise_prior,
                    velocity_names=()):
    """The NumPyro model ``model(y=None)`` of a Gaussian space-time fit. ``law(loc, θ, σ, noise)`` the data's
    Gaussian given the parameters (:func:`likelihood_law`); ``params`` the SPDE's parameters in
    user units; ``y_info`` (mean, sd) of y, which scale the intercept and β priors. With two velocity
    components it also records ``speed`` and ``direction`` (of travel, degrees anticlockwise from the
    first coordinate's axis)."""
    ymean, ysd = y_info
    p = 0 if Z is None else Z.shape[1]
    zmean = None if Z is None else jnp.asarray(Z.mean(0))
    zsd = None if Z is None else jnp.asarray(Z.std(0))
    Zc = None if Z is None else jnp.asarray(Z) - zmean

    def model(y=None):
        values, sigma = params.sample(sigma_prior)
        theta = params.theta(values)
        icpt = numpyro.sample("intercept_centered", dist.Normal(ymean, 2.0 * ysd))
        eta = icpt * jnp.ones(n)
        if p:
            beta = numpyro.sample("beta", dist.Normal(jnp.zeros(p), 2.0 * ysd / zsd).to_event(1))
            eta = eta + Zc @ beta
            numpyro.deterministic("intercept", icpt - jnp.dot(zmean, beta))
        else:
            numpyro.deterministic("intercept", icpt)
        if len(velocity_names) == 2:
            v1, v2 = (values[k] for k in velocity_names)
            numpyro.deterministic("speed", jnp.hypot(v1, v2))
            numpyro.deterministic("direction", jnp.degrees(jnp.arctan2(v2, v1)))
        noise = numpyro.sample("noise", noise_prior)
        numpyro.sample("y", law(eta, theta, sigma, noise), obs=y)

    return model


# above this many site-times fit warns before method="laplace"'s mode search in float32: at 5 000 BFGS stopped
# on precision loss at gradient norm 5.3, far from the mode (a Hessian there not positive definite), where
# float64 converged in 27 steps; at 2 000 a float32 search served NUTS's warm start, and in between it was
# not measured (docs/results/warm_start_hessian.md, advection_diffusion_speed_warm.json)
LAPLACE_FLOAT32_SITE_TIMES = 2_000


def fit_spacetime(X, times, y, *, prior, covariates=None, range_prior=None, sigma_prior=None, noise_prior=None,
                  priors: dict | None = None, fixed: dict | None = None, method: str = "nuts",
                  num_warmup: int = 500, num_samples: int = 500, num_chains: int = 1, seed: int = 0,
                  buffer: float = 0.5, time_scale: float | None = None, svi_steps: int = 3000,
                  progress_bar: bool = True, jitter: float = 1e-5, covariate_names=None, solver: str = "auto",
                  chain_method: str | None = None, integration: str | None = None):
    """Fit a Gaussian space-time model with a space-time generative prior (see the module docstring);
    ``pinnprob.fit(X, y, times=..., prior=...)`` calls this. Returns ArviZ data as :func:`pinnprob.fit`
    does, with the SPDE's parameters in the user's units (``range`` in coordinate units, ``time_range``
    in time units, velocities in coordinate units per time unit), ``sigma``, ``noise``, ``intercept``,
    ``beta`` and, in 2-D, ``speed`` and ``direction``. ``time_scale`` is the user's time units per prior
    time unit (default: the median spacing of the distinct times), so the prior covers temporal ranges
    of ``time_scale`` × its ``time_range`` box; parameters whose given prior reaches beyond the box are
    truncated to it with a warning, fixed values outside it are refused. ``solver``: the Gaussian's
    log density by a dense Cholesky (``"dense"``, O(n³)) or a Kalman filter over the times (``"kalman"``,
    O(T (2K+1)² m) for T times, m sites, K modes), by default whichever is cheaper (recorded in the
    result's ``pinnprob`` attribute as ``"solver"``). ``integration``: method="laplace"'s, as in
    :func:`pinnprob.fit` (default: importance-weighted proposals)."""
    from pinnprob.inference.fit import check_fixed_in_box, model_param_priors

    if solver not in ("auto", "dense", "kalman"):
        raise ValueError(f"solver must be 'auto', 'dense' or 'kalman', got {solver!r}")
    priors, fixed = dict(priors or {}), dict(fixed or {})
    if range_prior is not None:
        priors["range"] = range_prior
    if covariate_names is None and hasattr(covariates, "columns"):
        covariate_names = [str(c) for c in covariates.columns]
    X, t, y, Z = check_spacetime_inputs(X, times, y, covariates, method, prior, priors, fixed, time_scale)
    chain_method = chain_method_for(chain_method, num_chains)
    if covariate_names is not None:
        covariate_names = [str(c) for c in covariate_names]
        if Z is None or len(covariate_names) != Z.shape[1]:
            raise ValueError(f"covariate_names has {len(covariate_names)} name(s) for "
                             f"{0 if Z is None else Z.shape[1]} covariate(s)")
    cmap = CoordinateMap.from_data(X, buffer)
    tmap = TimeMap.from_times(t, time_scale)
    space = prior.param_range
    params_probe = ModelParams(space, {n: None for n in space.names if n not in fixed}, fixed, cmap.scale, tmap.scale)
    check_fixed_in_box(params_probe, fixed)
    extent = float(np.max(X.max(0) - X.min(0)))
    ysd = float(y.std()) or 1.0
    model_priors = model_param_priors(space, cmap.scale, extent, priors, fixed, tmap.scale)
    params = ModelParams(space, model_priors, fixed, cmap.scale, tmap.scale)
    sigma_prior = pc_sigma(2.0 * ysd, 0.05) if sigma_prior is None else sigma_prior
    noise_prior = dist.HalfNormal(ysd) if noise_prior is None else noise_prior
    law, how = likelihood_law(prior.generator, cmap.to_unit(X), tmap.to_unit(t), jitter, solver)
    vnames = tuple(n for n in prior.spde.velocity_names if n not in fixed)  # speed and direction when both are free
    model = spacetime_model(law, params, X.shape[0], (float(y.mean()), ysd), Z, sigma_prior, noise_prior, vnames)
    if method == "laplace" and X.shape[0] > LAPLACE_FLOAT32_SITE_TIMES and jnp.result_type(float) == jnp.float32:
        warnings.warn(f"method='laplace' at {X.shape[0]} site-times: {FLOAT32_MODE_HINT}", stacklevel=3)
    k_run = jax.random.key(seed)
    yj = jnp.asarray(y)
    samples, stats, laplace_info, elapsed = run_method(method, model, yj, k_run, num_warmup, num_samples,
                                                       num_chains, svi_steps, progress_bar, chain_method,
                                                       integration or "importance")
    posterior = {k: v for k, v in samples.items() if k != "intercept_centered" and k not in fixed}
    meta = {
        "data_kind": "space-time", "coordinate_map": asdict(cmap), "time_map": asdict(tmap),
        "likelihood": "gaussian", "fixed": {k: float(v) for k, v in fixed.items()}, "collapsed": True,
        "prior_config": prior.config.to_dict(), "prior_fingerprint": prior.fingerprint,
        "stored_prior_fingerprint": prior.fingerprint, "covariates": 0 if Z is None else Z.shape[1],
        "method": method, "sampling_seconds": elapsed, "jitter": jitter, "solver": how,
        "chain_method": chain_method if method == "nuts" else None, "devices": jax.local_device_count(),
        "units": {n: _unit_label(space.axis(n)) for n in space.names},
    }
    if laplace_info is not None:
        meta["laplace"] = laplace_info
    attrs = {"pinnprob": json.dumps(meta),
             "pinnprob_prior": base64.b64encode(zlib.compress(prior.to_bytes(), 6)).decode("ascii")}
    sample_stats = {k: np.asarray(v) for k, v in stats.items() if k != "elbo_loss"}
    constant = {"X": X, "times": t, **({"covariates": Z} if Z is not None else {})}
    return to_arviz(
        {"posterior": posterior, "sample_stats": sample_stats, "observed_data": {"y": y}, "constant_data": constant},
        dims={"beta": ["covariate"], "X": ["obs", "coordinate"], "times": ["obs"], "covariates": ["obs", "covariate"],
              "y": ["obs"]},
        coords=None if covariate_names is None else {"covariate": covariate_names}, attrs=attrs,
    )


@eqx.filter_jit
def _conditional_draw(c_nn, c_mn, c_mm, yj, Zj, Znj, jitter, include_noise, th, s, nz, b0, b, key):
    """For one posterior draw: the Gaussian conditional at the new pairs given the data — its mean,
    variances and one simulation. A module-level jit over Equinox covariance modules: calls with the same
    shapes (a rolling forecast) compile once."""
    dtype = yj.dtype
    n, m = yj.shape[0], Znj.shape[0]
    K = s**2 * (c_nn(th) + jitter * jnp.eye(n, dtype=dtype)) + nz**2 * jnp.eye(n, dtype=dtype)
    L = jnp.linalg.cholesky(K)
    r = yj - b0 - Zj @ b
    A = jax.scipy.linalg.solve_triangular(L, s**2 * c_mn(th).T, lower=True)  # L⁻¹ K_nm
    w = jax.scipy.linalg.solve_triangular(L, r, lower=True)
    mean = b0 + Znj @ b + A.T @ w
    cov = s**2 * (c_mm(th) + jitter * jnp.eye(m, dtype=dtype)) - A.T @ A
    cov = cov + (nz**2 if include_noise else 0.0) * jnp.eye(m, dtype=dtype)
    lam, V = jnp.linalg.eigh(0.5 * (cov + cov.T))  # PSD up to rounding: clip tiny negatives
    e = jax.random.normal(key, (m,), dtype)
    sim = mean + V @ (jnp.sqrt(jnp.clip(lam, 0.0)) * e)
    return mean, jnp.clip(jnp.diagonal(cov), 0.0), sim


def _unit_label(axis) -> str:
    """'length', 'time', 'length / time', ... or '' for a unit-free parameter."""
    parts = [(p, n) for p, n in ((axis.length_power, "length"), (axis.time_power, "time")) if p]
    num = " ".join(n if p == 1 else f"{n}^{p}" for p, n in parts if p > 0)
    den = " ".join(n if p == -1 else f"{n}^{-p}" for p, n in parts if p < 0)
    return (num or "1") + (f" / {den}" if den else "") if parts else ""


def predict_spacetime(idata, X_new, times_new, *, covariates=None, prior=None, quantiles=(0.05, 0.5, 0.95),
                      num_draws: int | None = 200, seed: int = 0, include_noise: bool = False,
                      return_draws: bool = False, observed=None):
    """Posterior predictive at new site-time pairs (X_new (m, d) user units, times_new (m,) user time
    units): interpolation at new sites, forecasts at later times. Per posterior draw (``num_draws``
    evenly spaced ones; None: all) the exact Gaussian conditional of intercept + covariates·β + field
    given y (plus the noise when ``include_noise``: the predictive of a new measurement), and one
    conditional simulation from it. Returns ``mean`` and ``sd`` (the mixture's exact moments),
    ``quantiles`` (q, m) from the simulations, and ``draws`` (num_draws, m) when ``return_draws``.

    ``observed=(X_obs, times_obs, y_obs)`` (user units; a model without covariates) conditions on
    other data than the fit's, with the fit's posterior of the parameters: a rolling forecast from the
    last days' measurements, or the field at times the fit did not see."""
    from pinnprob.inference.predict import fit_prior
    from pinnprob.spacetime_prior import stationary_covariance

    prior, meta = fit_prior(idata, prior)
    if meta.get("data_kind") != "space-time":
        raise ValueError("this fit is of spatial data: call predict(idata, X_new) without times")
    cmap = CoordinateMap.from_dict(meta["coordinate_map"])
    tmap = TimeMap(**meta["time_map"])
    try:
        Xn = np.array(X_new, dtype=np.float64, copy=True)
        tn = np.array(times_new, dtype=np.float64, copy=True).reshape(-1)
    except (TypeError, ValueError) as e:
        raise ValueError(f"X_new and times_new must be numeric arrays: {e}") from None
    if Xn.ndim != 2 or Xn.shape[1] != prior.dim or not np.all(np.isfinite(Xn)):
        raise ValueError(f"X_new must be a finite array of shape (m, {prior.dim})")
    if tn.shape[0] != Xn.shape[0] or not np.all(np.isfinite(tn)):
        raise ValueError(f"times_new must hold one finite time per row of X_new ({Xn.shape[0]}), got {tn.shape[0]}")
    U = cmap.to_unit(Xn)
    if np.any(U < 0) or np.any(U > 1):
        raise ValueError("X_new reaches outside the modelled box (the data's extent plus its buffer); "
                         "refit with a larger buffer to predict there")
    p = meta["covariates"]
    if p and covariates is None:
        raise ValueError(f"the model has {p} covariate(s): pass covariates for the new site-time pairs")
    Zn = None if not p else np.asarray(covariates, np.float64).reshape(len(Xn), -1)
    const, obs, post = group(idata, "constant_data"), group(idata, "observed_data"), group(idata, "posterior")
    X, t, y = const["X"].values, const["times"].values, obs["y"].values
    Z = const["covariates"].values if p else None
    if observed is not None:
        if p:
            raise ValueError("observed= conditions a model without covariates; this one has covariates")
        if not (isinstance(observed, (tuple, list)) and len(observed) == 3):
            raise ValueError("observed must be a tuple (X_obs, times_obs, y_obs)")
        X, t, y, _ = check_spacetime_inputs(*observed[:2], observed[2], None, "nuts", prior)
        if np.any(cmap.to_unit(X) < 0) or np.any(cmap.to_unit(X) > 1):
            raise ValueError("observed sites reach outside the modelled box (the fit's data extent plus its buffer)")
    chains, draws = post["sigma"].shape
    sel = np.argwhere(np.ones((chains, draws), bool))
    if num_draws is not None:
        sel = sel[np.linspace(0, len(sel) - 1, min(int(num_draws), len(sel))).astype(int)]
    ci, di = sel[:, 0], sel[:, 1]
    space = prior.param_range
    fixed = meta.get("fixed", {})
    params = ModelParams(space, {n: None for n in space.names if n not in fixed}, fixed, cmap.scale, tmap.scale)
    dtype = jnp.result_type(float)
    take = lambda name: jnp.asarray(post[name].values[ci, di], dtype)  # noqa: E731
    theta = params.theta_from_draws({n: take(n) for n in params.priors}, len(sel)).astype(dtype)
    sigma, noise, icpt = take("sigma"), take("noise"), take("intercept")
    beta = take("beta") if p else jnp.zeros((len(sel), 0), dtype)
    Xu, tu, Xnu, tnu = cmap.to_unit(X), tmap.to_unit(t), U, tmap.to_unit(tn)
    gen = prior.generator
    c_nn = stationary_covariance(gen, Xu, tu)
    c_mn = stationary_covariance(gen, Xnu, tnu, Xu, tu)
    c_mm = stationary_covariance(gen, Xnu, tnu)
    jitter = float(meta.get("jitter", 1e-5))
    yj = jnp.asarray(y, dtype)
    Zj = jnp.zeros((len(y), 0), dtype) if Z is None else jnp.asarray(Z, dtype)
    Znj = jnp.zeros((len(Xn), 0), dtype) if Zn is None else jnp.asarray(Zn, dtype)

    one = lambda *a: _conditional_draw(c_nn, c_mn, c_mm, yj, Zj, Znj, jitter, bool(include_noise), *a)  # noqa: E731
    keys = jax.random.split(jax.random.key(seed), len(sel))
    means, vars_, sims = (np.stack(a) for a in zip(*(
        [np.asarray(v) for v in one(theta[i], sigma[i], noise[i], icpt[i], beta[i], keys[i])]
        for i in range(len(sel)))))
    mean = means.mean(0)
    sd = np.sqrt(vars_.mean(0) + means.var(0))
    res = {"mean": mean, "sd": sd, "quantiles": np.quantile(sims, quantiles, axis=0),
           "quantile_levels": np.asarray(quantiles)}
    if return_draws:
        res["draws"] = sims
    return res
