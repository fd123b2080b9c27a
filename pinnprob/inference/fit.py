"""One-call geostatistical fit with a generative prior.

``fit(X, y, ...)`` checks the data and maps the user's coordinates to the unit square with a buffer
(:mod:`~pinnprob.inference.data`), builds the model (:mod:`~pinnprob.inference.model`)

    range ~ range_prior,  σ ~ sigma_prior,  ν ~ U(prior's ν range)  (or fixed),
    β ~ N(0, ·),  f ~ GenerativeField(X; range, ν, σ),
    y ~ N(intercept + Zβ + f, noise²)  |  Poisson(exp(·))  |  Bernoulli(logit = ·),

runs NUTS (NumPyro or BlackJAX) or SVI (:mod:`~pinnprob.inference.runners`), recovers a collapsed
field (:mod:`~pinnprob.inference.recovery`) and returns ArviZ ``InferenceData`` whose ``range`` is in
the user's units. ``predict(idata, X_new)`` (:mod:`~pinnprob.inference.predict`) gives posterior
predictive summaries and conditional simulations at new sites, chunked.
"""

from __future__ import annotations

import base64
import json
import time
import warnings
import zlib
from dataclasses import asdict

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from pinnprob.inference.arviz_data import to_arviz
from pinnprob.inference.collapsed import collapse_pays
from pinnprob.inference.data import CoordinateMap, check_inputs
from pinnprob.inference.model import ModelSpec, build_model, gram_for, model_generator, truncation_tail
from pinnprob.inference.priors import PCRange, pc_sigma, quantile, truncate_to_range
from pinnprob.inference.recovery import recover_field
from pinnprob.inference.runners import run_blackjax, run_nuts, run_svi

__all__ = ["fit"]


def fit(X, y, *, prior=None, covariates=None, likelihood: str = "gaussian", nu=None, range_prior=None,
        sigma_prior=None, noise_prior=None, method: str = "nuts", num_warmup: int = 500, num_samples: int = 500,
        num_chains: int = 1, seed: int = 0, collapsed: bool | None = None, buffer: float = 0.5,
        mode_tol: float = 0.01, svi_steps: int = 3000, field_draws: int | None = None, progress_bar: bool = True,
        jitter: float = 1e-5, covariate_names=None):
    """Fit a geostatistical model with a generative field prior; returns the ArviZ object of the
    installed ArviZ: ``InferenceData`` (ArviZ 0.x) or ``xarray.DataTree`` (ArviZ ≥ 1.0).

    ``X`` (n, 2) in the user's units, ``y`` (n,). Posterior variables: ``range`` (user units),
    ``sigma``, ``nu`` (when free), ``noise`` (Gaussian), ``intercept``, ``beta`` (covariates) and
    ``field`` (the field at the data sites). Default priors: PC prior for the range with
    P(range < extent/10) = 0.05 and for σ with P(σ > 2·sd(y)) = 0.05 (on the linear-predictor scale
    for Poisson / Bernoulli: P(σ > 2) = 0.05), ν uniform over the prior's range, noise half-normal
    with scale sd(y). Any NumPyro distribution is accepted instead; a range or ν prior that
    reaches beyond the generative prior's range is truncated to it with a warning. ``collapsed``
    (Gaussian likelihood only) integrates the field out and recovers it afterwards, exactly, by
    Matheron's rule (for every draw, or for ``field_draws`` evenly spaced draws, the others NaN); by default it is used when it is cheaper than sampling the
    latent (:func:`~pinnprob.inference.collapsed.collapse_pays`). Only the modes needed down to the
    range prior's 0.5 % quantile are kept (``mode_tol``: the variance fraction allowed to be left out).

    The result carries what :func:`predict` needs in its root attributes: the coordinate map, the
    model's settings, and the prior the model used (its weights, compressed, and the fingerprint of
    the ``prior`` passed here), so that a fit written with ``to_netcdf`` and read back predicts as
    before. ``covariate_names`` label the ``covariate`` dimension of ``beta`` (default: the columns
    of a pandas ``covariates`` table, else 0, 1, ...).
    """
    from pinnprob.api import pretrained

    prior = pretrained("matern2d") if prior is None else prior
    base_fingerprint = prior.fingerprint
    if covariate_names is None and hasattr(covariates, "columns"):
        covariate_names = [str(c) for c in covariates.columns]
    X, y, Z = check_inputs(X, y, covariates, likelihood, method, prior, nu)
    if covariate_names is not None:
        covariate_names = [str(c) for c in covariate_names]
        if Z is None or len(covariate_names) != Z.shape[1]:
            raise ValueError(f"covariate_names has {len(covariate_names)} name(s) for "
                             f"{0 if Z is None else Z.shape[1]} covariate(s)")
    if collapsed and not (likelihood == "gaussian" and prior.gaussian):
        raise ValueError("collapsed=True needs a Gaussian likelihood and a Gaussian generator")
    cmap = CoordinateMap.from_data(X, buffer)
    extent = float(np.max(X.max(0) - X.min(0)))
    ysd = float(y.std()) if likelihood == "gaussian" else 1.0
    ysd = ysd if ysd > 0 else 1.0
    pr = prior.param_range
    lo_user, hi_user = pr.range[0] * cmap.scale, pr.range[1] * cmap.scale
    if range_prior is None:
        with warnings.catch_warnings():  # the default's truncation is by design, not news
            warnings.simplefilter("ignore")
            range_prior = truncate_to_range(PCRange(extent / 10, 0.05), lo_user, hi_user, "range")
    else:
        range_prior = truncate_to_range(range_prior, lo_user, hi_user, "range")
    sigma_prior = pc_sigma(2.0 * ysd, 0.05) if sigma_prior is None else sigma_prior
    noise_prior = dist.HalfNormal(ysd) if noise_prior is None else noise_prior
    nu_prior = dist.Uniform(*pr.nu)
    # modes: enough for the shortest range the (truncated) range prior gives mass to
    min_range = float(np.clip(quantile(range_prior, 0.005), lo_user, hi_user)) / cmap.scale
    tail = None
    if prior.config.family == "spectral":
        full_eigenvalues = prior.generator.basis.eigenvalues
        prior = prior.truncate(max(min_range, pr.range[0]), tol=mode_tol, nu=nu)
        if likelihood == "gaussian":
            tail = truncation_tail(full_eigenvalues, prior.latent_dim, prior.dim)
    if collapsed is None:
        collapsed = likelihood == "gaussian" and prior.gaussian and collapse_pays(
            X.shape[0], prior.latent_dim, prior.generator.diagonal_branch)
    Xu = jnp.asarray(cmap.to_unit(X))
    # the collapsed path needs the dense Φ (n × n covariance or ΦᵀΦ); the latent path only multiplies by
    # it, from its 1-D tables when the trunk is separable: a NUTS gradient up to 2× cheaper at n = 1000-2000
    # on a quiet CPU, more when memory bandwidth is shared (docs/results/inference.md)
    features = prior.generator.features(Xu) if collapsed else prior.generator.product_features(Xu)
    gen = model_generator(prior, pr.range, nu)  # the range prior's support, in unit-box units
    G = gram_for(prior, features, collapsed)
    model = build_model(ModelSpec(
        prior=prior, features=features, cmap=cmap, y_info=(float(y.mean()) if likelihood == "gaussian" else 0.0, ysd),
        Z=Z, likelihood=likelihood, nu=nu, range_prior=range_prior, sigma_prior=sigma_prior, noise_prior=noise_prior,
        nu_prior=nu_prior, collapsed=collapsed, jitter=jitter, generator=gen, tail=tail, gram=G))
    key = jax.random.key(seed)
    k_run, k_field = jax.random.split(key)
    yj = jnp.asarray(y)
    t0 = time.perf_counter()
    if method == "nuts":
        samples, stats = run_nuts(model, yj, k_run, num_warmup, num_samples, num_chains, progress_bar)
    elif method == "blackjax":
        samples, stats = run_blackjax(model, yj, k_run, num_warmup, num_samples, num_chains, progress_bar)
    else:
        samples, stats = run_svi(model, yj, k_run, num_samples, num_chains, svi_steps, progress_bar)
    samples = {k: np.asarray(jax.block_until_ready(v)) for k, v in samples.items()}  # dispatch is async
    elapsed = time.perf_counter() - t0
    if collapsed:
        samples["field"], samples["field_latent"] = recover_field(gen, G, features, cmap, samples, yj, Z, nu, tail,
                                                                  k_field, field_draws, jitter)
    posterior = {k: v for k, v in samples.items() if k not in ("intercept_centered",)}
    if nu is not None:
        posterior.pop("nu", None)
    meta = {
        "coordinate_map": asdict(cmap), "likelihood": likelihood, "nu_fixed": nu, "collapsed": collapsed,
        "prior_config": prior.config.to_dict(), "prior_fingerprint": base_fingerprint,
        "stored_prior_fingerprint": prior.fingerprint, "covariates": 0 if Z is None else Z.shape[1],
        "method": method, "sampling_seconds": elapsed,
    }
    attrs = {"pinnprob": json.dumps(meta),
             # the (truncated) prior the model used, for predict() after a round trip through a file
             "pinnprob_prior": base64.b64encode(zlib.compress(prior.to_bytes(), 6)).decode("ascii")}
    sample_stats = {k: np.asarray(v) for k, v in stats.items() if k != "elbo_loss"}
    constant = {"X": X, **({"covariates": Z} if Z is not None else {})}
    return to_arviz(
        {"posterior": posterior, "sample_stats": sample_stats, "observed_data": {"y": y}, "constant_data": constant},
        dims={"field": ["site"], "field_latent": ["mode"], "beta": ["covariate"], "X": ["site", "coordinate"],
              "covariates": ["site", "covariate"], "y": ["site"]},
        coords=None if covariate_names is None else {"covariate": covariate_names}, attrs=attrs,
    )
