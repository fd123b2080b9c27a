"""One-call geostatistical fit with a generative prior.

``fit(X, y, ...)`` checks the data and maps the user's coordinates to the prior's box with a buffer
(:mod:`~pinnprob.inference.data`), builds the model (:mod:`~pinnprob.inference.model`)

    θ ~ priors (by name: for the Matérn range and ν),  σ ~ sigma_prior,
    β ~ N(0, ·),  f ~ GenerativeField(X; θ, σ),
    y ~ N(intercept + Zβ + f, noise²)  |  Poisson(exp(·))  |  Bernoulli(logit = ·),

runs NUTS (NumPyro or BlackJAX), SVI or an INLA-style Laplace approximation
(:mod:`~pinnprob.inference.runners`), recovers a collapsed
field (:mod:`~pinnprob.inference.recovery`) and returns ArviZ ``InferenceData`` whose parameters are in
the user's units. ``predict(idata, X_new)`` (:mod:`~pinnprob.inference.predict`) gives posterior
predictive summaries and conditional simulations at new sites, chunked.
"""

from __future__ import annotations

import base64
import json
import time
import warnings
import zlib
import dataclasses
from dataclasses import asdict

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from pinnprob.inference.arviz_data import to_arviz
from pinnprob.inference.data import CoordinateMap, check_inputs
from pinnprob.inference.model import (ModelParams, ModelSpec, build_model, choose_path, evaluation_cost,
                                      laplace_evaluation_cost, mode_bucket, model_generator, path_inputs,
                                      reduce_prior, tail_sd)
from pinnprob.inference.pilot import lowered_floor, pilot_pays, pilot_start, warm_start_pays
from pinnprob.inference.priors import PCRange, pc_sigma, quantile, truncate_to_range
from pinnprob.inference.recovery import recover_field, recover_field_approximately
from pinnprob.inference.runners import (LAPLACE_INTEGRATIONS, chain_method_for, expected_evaluations,
                                        laplace_integration, laplace_start, run_method)

__all__ = ["fit", "default_param_prior", "model_param_priors", "user_bounds", "check_fixed_in_box"]


def user_bounds(axis, scale: float, time_scale: float = 1.0) -> tuple[float, float]:
    """An axis of the prior's box in the user's units (lengths × scale, times × time_scale), low first."""
    unit = scale**axis.length_power * time_scale**axis.time_power
    return tuple(sorted((axis.lo * unit, axis.hi * unit)))


def default_param_prior(axis, scale: float, extent: float, time_scale: float = 1.0):
    """The default prior of one SPDE parameter, in the user's units: for ``range`` a PC prior with
    P(range < extent/10) = 0.05 (Fuglstad et al. 2019), for every other parameter uniform over its
    training box in natural coordinates (log-uniform on a log axis, e.g. an anisotropy ratio)."""
    lo, hi = user_bounds(axis, scale, time_scale)
    if axis.name == "range":
        return PCRange(extent / 10, 0.05)
    if lo == hi:
        return dist.Delta(lo)
    return dist.LogUniform(lo, hi) if axis.log else dist.Uniform(lo, hi)


def model_param_priors(space, scale: float, extent: float, priors: dict | None = None, fixed=(),
                       time_scale: float = 1.0) -> dict:
    """The priors ``fit`` puts on the SPDE's free parameters (name → NumPyro distribution, user units):
    ``priors[name]`` where given, else :func:`default_param_prior`, each truncated to the prior's box
    in user units (coordinates scaled by ``scale``, times by ``time_scale``; ``extent`` the data's
    largest side)."""
    priors = priors or {}
    out = {}
    for a in space.axes:
        if a.name in fixed:
            continue
        lo, hi = user_bounds(a, scale, time_scale)
        if a.name in priors:
            out[a.name] = truncate_to_range(priors[a.name], lo, hi, a.name)
        else:
            with warnings.catch_warnings():  # the default's truncation is by design, not news
                warnings.simplefilter("ignore")
                out[a.name] = truncate_to_range(default_param_prior(a, scale, extent, time_scale), lo, hi, a.name)
    return out


def check_fixed_in_box(params, fixed: dict) -> None:
    """ValueError when a fixed parameter given in the user's units lies outside the prior's box after the
    coordinate (and time) map; the unit-free ones are checked with the data (:func:`check_inputs`)."""
    for name, v in fixed.items():
        a = params.space.axis(name)
        if (a.length_power or a.time_power) and not a.contains(float(params.to_unit(name, v))):
            lo, hi = user_bounds(a, params.scale, params.time_scale)
            raise ValueError(f"{name} = {v!r} is outside the prior's box for these coordinates"
                             f"{' and times' if a.time_power else ''}, [{lo:g}, {hi:g}]")


# above this many sites a float32 collapsed log density is too coarse for the optimiser (measured at 104 494
# sites: the optimiser stopped ~3 log-density units short of the mode; docs/results/satellite.md)
LAPLACE_FLOAT32_SITES = 20_000
# the warm-up a NUTS warm start needs (fit warns below): its step size is set by the last 10 % of a
# warm-up under 150 iterations (NumPyro's windows); on a Gaussian with 30, 1 seed of 4 gave an ESS of 35
# of 400 draws (1.2 steps a draw), with 100 or 200 every seed gave 337-694 (benchmarks/warm_start.py
# --part stepsize)
WARM_START_WARMUP = 100


def fit(X, y, *, times=None, prior=None, covariates=None, likelihood: str = "gaussian", nu=None, range_prior=None,
        sigma_prior=None, noise_prior=None, priors: dict | None = None, fixed: dict | None = None,
        method: str = "nuts", num_warmup: int = 500, num_samples: int = 500,
        num_chains: int = 1, seed: int = 0, collapsed: bool | None = None, buffer: float = 0.5, bounds=None,
        mode_tol: float = 0.01, svi_steps: int = 3000, field_draws: int | None = None, progress_bar: bool = True,
        jitter: float = 1e-5, covariate_names=None, time_scale: float | None = None, solver: str | None = None,
        chain_method: str | None = None, integration: str | None = None, warm_start: bool | None = None):
    """Fit a geostatistical model with a generative field prior; returns the ArviZ object of the
    installed ArviZ: ``InferenceData`` (ArviZ 0.x) or ``xarray.DataTree`` (ArviZ ≥ 1.0).

    ``X`` (n, 2) in the user's units, ``y`` (n,). ``prior`` a :class:`~pinnprob.GenerativePrior` or the
    name of a shipped one (default ``"matern2d"``). For a space-time prior (e.g.
    ``"advection-diffusion-1d"``) the rows are site-time pairs with ``times`` (n,) in the user's time
    unit, and the fit is :func:`~pinnprob.inference.spacetime.fit_spacetime` (Gaussian likelihood;
    ``time_scale`` and ``solver``, dense or Kalman filter, there). Posterior variables: the SPDE's parameters by name
    (:attr:`~pinnprob.GenerativePrior.param_names`; lengths such as ``range`` in user units, slopes
    per user unit), ``sigma``, ``noise`` (Gaussian), ``intercept``, ``beta`` (covariates),
    ``field`` (the field at the data sites) and ``field_latent`` (its latent z); a collapsed fit adds
    ``field_latent_mean``, E[z | y] at each draw's parameters, which :func:`predict` averages for its
    mean. Default priors: for ``range`` a PC prior with
    P(range < extent/10) = 0.05, for the other SPDE parameters uniform over the prior's box
    (:func:`default_param_prior`), for σ a PC prior with P(σ > 2·sd(y)) = 0.05 (on the
    linear-predictor scale for Poisson / Bernoulli: P(σ > 2) = 0.05), noise half-normal with scale
    sd(y). ``priors`` (name → NumPyro distribution, user units) replaces any of them, ``fixed``
    (name → value) fixes parameters; ``range_prior=`` and ``nu=`` are short for
    ``priors={"range": ...}`` and ``fixed={"nu": ...}``. A prior that reaches beyond the generative
    prior's box is truncated to it with a warning. ``collapsed`` (Gaussian likelihood only)
    integrates the field out and recovers it afterwards, exactly, by Matheron's rule (for every
    draw, or for ``field_draws`` evenly spaced draws, the others NaN); by default it is used when it
    is cheaper than sampling the latent (:func:`~pinnprob.inference.collapsed.collapse_pays`). A
    spectral prior models the data's bounding rectangle with ``buffer`` × its longest side on each
    side (:meth:`~pinnprob.GenerativePrior.on_box`; other priors the square around it, where they
    were trained; ``bounds``, one (low, high) pair per coordinate in the user's units holding every
    site, sets that box instead, e.g. to predict over a study area larger than the data's), and
    keeps only the modes needed down to the range prior's 0.5 % quantile, or down to a pilot's
    posterior where that reaches shorter ranges (``method="laplace"`` or a NUTS warm start at many
    sites; for a spectral prior the ``pinnprob`` attribute's ``modes`` says which) (``mode_tol``: the variance fraction allowed to be left out, at
    ν ≥ 1; rougher fields keep the modes of ν = 1), and the variance of the modes left out goes with
    the noise, per site. With up to
    about 2 500 sites a collapsed spectral fit forms the covariance at the sites from a few
    precomputed matrices (:class:`~pinnprob.inference.site_covariance.SiteCovariance`; relative
    error bound ≤ 1e-4), so its gradient costs about what an exact GP's does, whatever the number
    of modes — when the fit is long enough to repay building them (the cost model weighs each path's
    one-off cost against the evaluations that ``method`` and the numbers of draws imply:
    :func:`~pinnprob.inference.runners.expected_evaluations`). The ``pinnprob`` attribute says which
    path was taken (``collapsed_path``).

    ``chain_method`` (NumPyro NUTS): ``"sequential"``, ``"parallel"`` (one chain per device) or
    ``"vectorized"``; by default parallel when there are as many local devices as chains, else
    sequential (:func:`~pinnprob.inference.runners.chain_method_for`; the ``pinnprob`` attribute says
    which ran).

    ``warm_start`` (``method="nuts"``, the collapsed model): start the chains at draws from the
    Laplace approximation at the parameters' posterior mode (``method="laplace"``'s search, from a
    pilot's mode at many sites) and keep its covariance as NUTS's dense inverse mass matrix through
    warm-up, which then adapts the step size only
    (:func:`~pinnprob.inference.runners.run_nuts`). At 10⁴-10⁵ sites the posterior is narrow
    (the noise's sd a fraction of a percent of its value) and NumPyro's start, with the identity
    mass matrix until the first adaptation window, would take deep trees at seconds a gradient. None
    (the default): when one evaluation is dear (:func:`~pinnprob.inference.pilot.warm_start_pays`);
    True implies ``collapsed=True``. The ``pinnprob`` attribute says whether it ran
    (``warm_start``).

    ``method``: ``"nuts"`` (NumPyro), ``"blackjax"``, ``"svi"`` or ``"laplace"`` — for a Gaussian
    likelihood, the parameters' posterior mode on the collapsed model, the Laplace approximation there
    and importance-weighted draws from it (:func:`~pinnprob.inference.runners.run_laplace`; its
    diagnostics, e.g. the weights' effective sample size, are in the ``pinnprob`` attribute under
    ``"laplace"``); the field is then drawn from its exact conditional, as after NUTS. For Poisson
    and Bernoulli likelihoods the field is integrated out by a Laplace approximation (Newton's method
    per evaluation, :class:`~pinnprob.inference.laplace_collapsed.LaplaceCollapsed`), the intercept
    and β are parameters like the range, and the field is drawn from that Gaussian approximation of
    its conditional — approximate, as in INLA's ``strategy="gaussian"``. ``integration``
    (laplace only): ``"importance"`` (the proposals above) or ``"axial"`` (2p evaluations: split
    normals along the Hessian's axes, for fits whose every evaluation is costly); by default
    importance unless its proposals would cost more than 3·10¹³ flops
    (:func:`~pinnprob.inference.runners.laplace_integration`).

    The result carries what :func:`predict` needs in its root attributes: the coordinate map, the
    model's settings, and the prior the model used (its weights, compressed, and the fingerprint of
    the ``prior`` passed here), so that a fit written with ``to_netcdf`` and read back predicts as
    before. ``covariate_names`` label the ``covariate`` dimension of ``beta`` (default: the columns
    of a pandas ``covariates`` table, else 0, 1, ...).
    """
    from pinnprob.api import pretrained

    prior = pretrained("matern2d") if prior is None else (pretrained(prior) if isinstance(prior, str) else prior)
    if integration is not None and (method != "laplace" or integration not in LAPLACE_INTEGRATIONS):
        raise ValueError(f"integration= is for method='laplace', one of {LAPLACE_INTEGRATIONS}; got "
                         f"{integration!r} with method={method!r}")
    if warm_start is not None and (method != "nuts" or prior.data_kind == "space-time"):
        raise ValueError(f"warm_start= is for spatial fits with method='nuts'; got method={method!r}"
                         + (" and a space-time prior" if prior.data_kind == "space-time" else ""))
    if bounds is not None and prior.data_kind == "space-time":
        raise ValueError("bounds= is for spatial fits; a space-time fit models the square around its sites "
                         "(buffer=)")
    if prior.data_kind == "space-time":
        from pinnprob.inference.spacetime import fit_spacetime

        if times is None:
            raise ValueError("this prior is for space-time data: pass times= (one time per row of X)")
        if likelihood != "gaussian" or nu is not None or collapsed is False or field_draws is not None:
            raise ValueError("a space-time fit takes a Gaussian likelihood, integrates the field out (predict "
                             "gives it at any site and time) and has no nu; leave likelihood, nu, collapsed and "
                             "field_draws unset")
        return fit_spacetime(X, times, y, prior=prior, covariates=covariates, range_prior=range_prior,
                             sigma_prior=sigma_prior, noise_prior=noise_prior, priors=priors, fixed=fixed,
                             method=method, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                             seed=seed, buffer=buffer, time_scale=time_scale, svi_steps=svi_steps,
                             progress_bar=progress_bar, jitter=jitter, covariate_names=covariate_names,
                             solver="auto" if solver is None else solver, chain_method=chain_method,
                             integration=integration)
    if times is not None or time_scale is not None or solver is not None:
        raise ValueError(f"times=, time_scale= and solver= are for space-time priors; this prior is for {prior.data_kind} "
                         "data")
    base_fingerprint = prior.fingerprint
    space = prior.param_range
    priors, fixed = dict(priors or {}), dict(fixed or {})
    if range_prior is not None:
        priors["range"] = range_prior
    if nu is not None:
        fixed["nu"] = nu
    if covariate_names is None and hasattr(covariates, "columns"):
        covariate_names = [str(c) for c in covariates.columns]
    X, y, Z = check_inputs(X, y, covariates, likelihood, method, prior, priors, fixed)
    chain_method = chain_method_for(chain_method, num_chains)
    if covariate_names is not None:
        covariate_names = [str(c) for c in covariate_names]
        if Z is None or len(covariate_names) != Z.shape[1]:
            raise ValueError(f"covariate_names has {len(covariate_names)} name(s) for "
                             f"{0 if Z is None else Z.shape[1]} covariate(s)")
    if collapsed and method != "laplace" and not (likelihood == "gaussian" and prior.gaussian):
        raise ValueError("collapsed=True needs a Gaussian likelihood and a Gaussian generator")
    if warm_start:
        if not (likelihood == "gaussian" and prior.gaussian) or collapsed is False:
            raise ValueError("warm_start=True starts NUTS on the collapsed model: it needs a Gaussian likelihood "
                             "and a Gaussian generator, and collapsed left unset or True")
        collapsed = True
    if method == "laplace":
        if not prior.gaussian:
            raise ValueError("method='laplace' needs a Gaussian generator (it integrates the field out); "
                             "use method='nuts'")
        if collapsed is False:
            raise ValueError("method='laplace' works on the collapsed model: leave collapsed unset or True")
        collapsed = True
    # a prior that moves to any box (spectral) models the data's bounding rectangle, which needs fewer
    # modes than the square around it, in proportion to its area; others keep the square they were
    # trained on
    cmap = CoordinateMap.for_fit(X, buffer, bounds, rectangle=prior.any_box)
    if cmap.lengths is not None:
        prior = prior.on_box(cmap.lengths)
    extent = float(np.max(X.max(0) - X.min(0)))
    ysd = float(y.std()) if likelihood == "gaussian" else 1.0
    ysd = ysd if ysd > 0 else 1.0
    model_priors = model_param_priors(space, cmap.scale, extent, priors, fixed)
    params = ModelParams(space, model_priors, fixed, cmap.scale)
    check_fixed_in_box(params, fixed)
    sigma_prior = pc_sigma(2.0 * ysd, 0.05) if sigma_prior is None else sigma_prior
    noise_prior = dist.HalfNormal(ysd) if noise_prior is None else noise_prior
    # a spectral prior keeps the modes needed for the shortest range the range prior gives mass to
    range_floor = None
    if "range" in model_priors:
        lo_user = space.range[0] * cmap.scale
        range_floor = max(float(quantile(model_priors["range"], 0.005)), lo_user) / cmap.scale
    elif "range" in fixed:
        range_floor = float(fixed["range"]) / cmap.scale
    boxed = prior

    def cut(floor, multiple_of=1):
        """(prior, tail): the boxed prior's modes for ranges down to ``floor`` (unit box), their left-out
        variance for a Gaussian likelihood (else None)."""
        reduced, left = reduce_prior(boxed, params, floor, mode_tol, multiple_of)
        return reduced, left if likelihood == "gaussian" else None

    prior, tail = cut(range_floor)
    spectral_cut = prior is not boxed  # a spectral prior, cut to the modes the range floor needs
    # a non-Gaussian likelihood under method="laplace": the field integrated out by a Laplace
    # approximation (Newton per evaluation), whatever the cost model says of the Gaussian paths
    newton_path = method == "laplace" and likelihood != "gaussian"
    can_collapse = likelihood == "gaussian" and prior.gaussian
    user_integration = integration

    def plan(prior):
        """(cost of one evaluation or None, integration, path) for ``prior``'s modes: the path decided
        once by the cost model, latent or collapsed, and how a collapsed likelihood evaluates the
        covariance, each path's one-off cost (a site covariance, ΦᵀΦ) weighed against the evaluations
        this fit will make."""
        cost = None if method != "laplace" else (laplace_evaluation_cost if newton_path else evaluation_cost)(
            prior, X.shape[0])
        integ = user_integration
        if method == "laplace" and integ is None:
            integ = laplace_integration(cost, num_samples * num_chains)
        evaluations = expected_evaluations(method, num_warmup, num_samples, num_chains, svi_steps, field_draws,
                                           integ or "importance")
        if newton_path:
            return cost, integ, "laplace"
        return cost, integ, choose_path(prior, X.shape[0], evaluations,
                                        collapsed if collapsed is not None or can_collapse else False,
                                        mcmc=method in ("nuts", "blackjax"))

    cost, integration, path = plan(prior)
    Xu = jnp.asarray(cmap.to_unit(X))
    key = jax.random.key(seed)
    k_run, k_field = jax.random.split(key)
    yj = jnp.asarray(y)
    seconds = {}  # wall time of the fit's phases (blocked on their results)
    modes = {"range_floor": None if range_floor is None else range_floor * cmap.scale, "range_floor_from": "prior"}

    def model_spec(prior, tail, features=None, G=None, SC=None):
        return ModelSpec(
            prior=prior, features=features, cmap=cmap,
            y_info=(float(y.mean()) if likelihood == "gaussian" else 0.0, ysd), Z=Z, likelihood=likelihood,
            params=params, sigma_prior=sigma_prior, noise_prior=noise_prior, collapsed=path != "latent",
            jitter=jitter, generator=model_generator(prior, params), tail=tail, gram=G, site_covariance=SC)

    # at many sites, a Laplace fit's mode search starts from a pilot fit's mode on a subsample, when the
    # evaluations that saves are dear (pilot.py); a spectral prior then keeps the modes for the ranges
    # the pilot's posterior allows where they are shorter than the range prior's 0.5 % quantile (a range
    # the prior's cut could not represent). NUTS on a collapsed model whose evaluations are dear starts at
    # the Laplace approximation (run_nuts), whose mode search starts from such a pilot likewise
    dear = cost if cost is not None else evaluation_cost(prior, X.shape[0]) if path != "latent" else 0.0
    warm = method == "nuts" and path != "latent" and (warm_start_pays(dear) if warm_start is None else warm_start)
    searches_mode = method == "laplace" or warm  # by BFGS, then the Hessian by differences there
    if searches_mode and X.shape[0] > LAPLACE_FLOAT32_SITES and jnp.result_type(float) == jnp.float32:
        who = "a NUTS warm start" if warm else "method='laplace'"
        warnings.warn(f"{who} at {X.shape[0]} sites in float32: the log density is good to ~0.1 there, and the "
                      "optimiser may stop short of the mode; jax.config.update('jax_enable_x64', True) before "
                      "fitting", stacklevel=2)
    if warm:
        collapsed = True  # kept if the pilot's floor re-cuts the modes (plan below)
        if num_warmup < WARM_START_WARMUP:
            warnings.warn(f"a NUTS warm start with num_warmup={num_warmup} (< {WARM_START_WARMUP}): the step size is "
                          "adapted on too few iterations (NumPyro restarts its step-size adaptation at the end of its "
                          "mass-matrix window even with the mass matrix fixed: below 150 warm-up iterations only the "
                          f"last 10 % count); use num_warmup ≥ {WARM_START_WARMUP}", stacklevel=2)
    start = pilot = None
    if searches_mode and pilot_pays(X.shape[0], dear):
        t0 = time.perf_counter()
        start, pilot = pilot_start(model_spec(prior, tail), Xu, yj, jax.random.fold_in(key, 2), progress_bar,
                                   floor=spectral_cut)
        seconds["pilot"] = time.perf_counter() - t0
        floor = None if not spectral_cut else lowered_floor(range_floor * cmap.scale, pilot.get("range_floor"),
                                                            model_priors.get("range"))
        if floor is not None:
            range_floor = floor / cmap.scale
            modes.update(range_floor=floor, range_floor_from="pilot")
            prior, tail = cut(range_floor)
            cost, integration, path = plan(prior)
    if path == "reduced" and tail is not None:
        # a site covariance's cost hardly depends on the number of modes: round it up, so that fits of
        # similar data (cross-validation folds) share array shapes and compilations
        prior, tail = cut(range_floor, mode_bucket(prior.latent_dim))
    modes["modes"] = int(prior.latent_dim)
    collapsed = path != "latent"
    # the dense, Woodbury, site-covariance and Newton paths need the dense Φ; the latent and Gram paths
    # only multiply by it (Φw, Φᵀr) and sum ΦᵀΦ (from harmonic moments), from its 1-D tables when the trunk
    # is separable: a NUTS gradient up to 2× cheaper at n = 1000-2000 on a quiet CPU, more when memory
    # bandwidth is shared (docs/results/inference.md), and no n × m array at 10⁵ sites
    t0 = time.perf_counter()
    spec = model_spec(prior, tail)
    gen = spec.generator
    features, G, SC = jax.block_until_ready(path_inputs(prior, gen, Xu, params.theta_bounds(), path, progress_bar))
    seconds["setup"] = time.perf_counter() - t0
    spec = dataclasses.replace(spec, features=features, gram=G, site_covariance=SC)
    model = build_model(spec)
    if warm:
        # the whole model's mode (from the pilot's, if any) and its Hessian there (p gradients)
        t0 = time.perf_counter()
        try:
            start = laplace_start(model, yj, jax.random.fold_in(key, 3), hessian_scale=1.0,
                                  progress_bar=progress_bar, desc="warm start", start=start)
        except RuntimeError as e:
            raise RuntimeError(f"NUTS's warm start found no mode of the collapsed model ({e}); fit with "
                               "warm_start=False") from e
        seconds["warm_start"] = time.perf_counter() - t0
    samples, stats, laplace_info, elapsed = run_method(method, model, yj, k_run, num_warmup, num_samples,
                                                       num_chains, svi_steps, progress_bar, chain_method,
                                                       integration or "importance", start)
    seconds["sampling"] = elapsed
    if spectral_cut:
        modes["tail_sd"] = tail_sd(tail, params, samples)
    if pilot is not None and laplace_info is not None:
        laplace_info["start"], laplace_info["pilot"] = "pilot", pilot
    draws_info = None
    t0 = time.perf_counter()
    if path == "laplace":
        samples["field"], samples["field_latent"], samples["field_latent_mean"], draws_info = \
            recover_field_approximately(gen, features, params, samples, yj, Z, likelihood, k_field, field_draws,
                                        jitter, progress_bar)
    elif collapsed:
        samples["field"], samples["field_latent"], samples["field_latent_mean"], draws_info = recover_field(
            gen, G, features, params, samples, yj, Z, tail, k_field, field_draws, jitter, SC, progress_bar)
    if draws_info is not None:
        seconds["field_draws"] = time.perf_counter() - t0
    posterior = {k: v for k, v in samples.items() if k not in ("intercept_centered",) and k not in fixed}
    meta = {
        "coordinate_map": asdict(cmap), "likelihood": likelihood, "nu_fixed": fixed.get("nu"),
        "fixed": {k: float(v) for k, v in fixed.items()}, "collapsed": collapsed,
        "prior_config": prior.config.to_dict(), "prior_fingerprint": base_fingerprint,
        "stored_prior_fingerprint": prior.fingerprint, "covariates": 0 if Z is None else Z.shape[1],
        "method": method, "sampling_seconds": elapsed,
        # wall seconds of the phases: setup (ΦᵀΦ, site covariance, tables), pilot, warm start, sampling,
        # field draws
        "seconds": seconds,
        "chain_method": chain_method if method == "nuts" else None, "devices": jax.local_device_count(),
        # NUTS started at the Laplace approximation with its covariance as mass matrix (the pilot it
        # started from, if any, and the whole model's mode search), or not (None: not NUTS)
        "warm_start": (None if method != "nuts" else {"pilot": pilot, "mode": start.info} if warm else False),
        # how the likelihood evaluated the field's law: latent, or collapsed by a site covariance
        # ('reduced', with its rank and error bound), the Gram matrix, or the modes ('dense')
        # the modes a spectral prior kept, and the shortest range they serve (user units), from the range
        # prior's 0.5 % quantile or a pilot's posterior, and the sd the modes left out add to each site
        **({"modes": modes} if spectral_cut else {}),
        "collapsed_path": ("latent" if not collapsed else "laplace" if path == "laplace" else "reduced"
                           if SC is not None else "gram" if G is not None else "dense"),
    }
    if SC is not None:
        meta["site_covariance"] = {"rank": SC.rank, "error_bound": SC.error}
    if laplace_info is not None:
        meta["laplace"] = laplace_info
    if draws_info is not None:
        meta["field_draws"] = draws_info
    attrs = {"pinnprob": json.dumps(meta),
             # the (truncated) prior the model used, for predict() after a round trip through a file
             "pinnprob_prior": base64.b64encode(zlib.compress(prior.to_bytes(), 6)).decode("ascii")}
    sample_stats = {k: np.asarray(v) for k, v in stats.items() if k != "elbo_loss"}
    constant = {"X": X, **({"covariates": Z} if Z is not None else {})}
    return to_arviz(
        {"posterior": posterior, "sample_stats": sample_stats, "observed_data": {"y": y}, "constant_data": constant},
        dims={"field": ["site"], "field_latent": ["mode"], "field_latent_mean": ["mode"], "beta": ["covariate"],
              "X": ["site", "coordinate"], "covariates": ["site", "covariate"], "y": ["site"]},
        coords=None if covariate_names is None else {"covariate": covariate_names}, attrs=attrs,
    )
