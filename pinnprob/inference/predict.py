"""Prediction from a fit: the prior the fit's model used, read back (and checked) from the fit's
attributes, and the posterior predictive of the linear predictor (intercept + covariates·β + field)
at new sites, from the posterior draws of θ and of the latent z, in chunks of sites and batches of draws.
"""

from __future__ import annotations

import base64
import json
import zlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from pinnprob.inference.arviz_data import group
from pinnprob.inference.data import CoordinateMap
from pinnprob.inference.model import ModelParams
from pinnprob.inference.sharding import shard_sites, site_mesh

__all__ = ["fit_prior", "predict", "fields_at", "branches_at", "mean_field_at"]


def fit_prior(idata, prior=None):
    """The prior a fit's model used (the truncated one), read from the fit's attributes, and the fit's
    settings. ``prior``, when given, must be the prior that was passed to :func:`fit` (same
    fingerprint), else ValueError: a fit never predicts with a prior other than its own."""
    from pinnprob.prior import PriorFileError, from_bytes

    attrs = idata.attrs  # root attributes: InferenceData and DataTree alike
    if "pinnprob" not in attrs:
        raise ValueError("this ArviZ data was not made by pinnprob.fit: it has no 'pinnprob' attribute")
    meta = json.loads(attrs["pinnprob"])
    fp = meta.get("prior_fingerprint")
    if prior is not None and prior.fingerprint != fp:
        raise ValueError(f"the prior passed to predict is not the one this fit used (fingerprint "
                         f"{prior.fingerprint[:12]}…, the fit's {str(fp)[:12]}…); pass that prior, or none to "
                         "use the copy stored in the fit")
    blob = attrs.get("pinnprob_prior")
    if blob is None:
        raise ValueError("this fit carries no prior (its 'pinnprob_prior' attribute is missing, e.g. stripped "
                         "when it was saved); refit it with this version of pinnprob")
    try:
        stored = from_bytes(zlib.decompress(base64.b64decode(blob)), "the prior stored in this fit")
    except (ValueError, zlib.error) as e:
        raise PriorFileError(f"the prior stored in this fit could not be read: {e}") from e
    if stored.fingerprint != meta.get("stored_prior_fingerprint"):
        raise PriorFileError("the prior stored in this fit does not match its fingerprint (corrupted attributes)")
    return stored, meta


_DRAW_BATCH = 32


@eqx.filter_jit
def fields_at(gen, feats, theta, branches, sigma, Z, E=None):
    """σ g(X; z, θ) for a batch of S posterior draws: θ (S, p), their ``branches``
    (:func:`branches_at`), σ (S,) and Z (S, m) as arrays (so one compilation serves every draw),
    → (S, n); with E (S, n) standard normals, plus the generator's site part σ√δ(x)·E (independent of
    the data: a conditional simulation of it is a fresh draw)."""
    def one(t, b, s, z, e):
        out = s * gen.combine(feats, b, z)  # GenerativeField.from_latent, the branch given
        return out if e is None else out + s * jnp.sqrt(gen.site_variance_at(feats, t)) * e
    if E is None:
        return jax.vmap(lambda t, b, s, z: one(t, b, s, z, None))(theta, branches, sigma, Z)
    return jax.vmap(one)(theta, branches, sigma, Z, E)


@eqx.filter_jit
def branches_at(gen, theta):
    """The generator's branch for a batch of draws θ (S, p), leading axis S (site-independent: computed
    once for every chunk of sites)."""
    return jax.vmap(gen.branch)(theta)


@eqx.filter_jit
def mean_field_at(gen, feats, branches, weights, Z):
    """Σ_s w_s g(X; z_s, θ_s) for a batch of S draws given their ``branches`` (:func:`branches_at`),
    weights (S,) (σ_s / draws, 0 for padding) and Z (S, m) → (n,)
    (:meth:`~pinnprob.generators.AbstractGenerator.weighted_sum`: one product with the trunk for a
    spectral generator)."""
    return gen.weighted_sum(feats, branches, weights, Z)


def predict(idata, X_new, *, times=None, covariates=None, prior=None, quantiles=(0.05, 0.5, 0.95),
            num_draws: int | None = None, chunk: int = 20_000, seed: int = 0, return_draws: bool = False,
            include_noise: bool = False, observed=None, shard: bool | None = None):
    """Posterior predictive of the linear predictor at new sites X_new (n_new, 2), user units.

    ``idata`` is what :func:`fit` returned, in memory or read back from a file, with the prior it
    stores; ``prior``, if given, is checked to be the one the fit used (:func:`fit_prior`).
    Returns a dict with ``mean``, ``sd``, ``quantiles`` (q, n_new) of intercept + covariates·β + field,
    and ``draws`` (conditional simulations, num_draws × n_new) when ``return_draws``. Exact given the
    posterior draws of θ and of the latent z. The ``mean`` of a collapsed fit averages each draw's
    conditional mean E[field | y, θ] (``field_latent_mean``, Rao–Blackwellised), not the conditional
    simulations, so it carries no Monte Carlo error from them; ``sd`` and ``quantiles`` come from the
    simulations; sites are processed in chunks of ``chunk``, each split
    across the local devices when there are several (``shard``; default: then, for spatial fits;
    :mod:`pinnprob.inference.sharding`).

    A space-time fit takes ``times`` (n_new,) too and is predicted by
    :func:`~pinnprob.inference.spacetime.predict_spacetime` (``num_draws`` default 200 there;
    ``include_noise`` adds the measurement noise, ``observed=(X, times, y)`` conditions on other data).
    """
    if json.loads(idata.attrs.get("pinnprob", "{}")).get("data_kind") == "space-time":
        from pinnprob.inference.spacetime import predict_spacetime

        if times is None:
            raise ValueError("this is a space-time fit: pass times= (one time per row of X_new)")
        return predict_spacetime(idata, X_new, times, covariates=covariates, prior=prior, quantiles=quantiles,
                                 num_draws=200 if num_draws is None else num_draws, seed=seed,
                                 include_noise=include_noise, return_draws=return_draws, observed=observed)
    if times is not None or include_noise or observed is not None:
        raise ValueError("times=, include_noise= and observed= are for space-time fits; this fit is of spatial data")
    prior, meta = fit_prior(idata, prior)
    cmap = CoordinateMap.from_dict(meta["coordinate_map"])
    Xn = np.array(X_new, dtype=np.float64, copy=True)
    if Xn.ndim != 2 or Xn.shape[1] != prior.dim or not np.all(np.isfinite(Xn)):
        raise ValueError(f"X_new must be a finite array of shape (n, {prior.dim})")
    U = cmap.to_unit(Xn)
    out = np.flatnonzero(cmap.outside(U))
    if out.size:
        raise ValueError(f"{out.size} row(s) of X_new (first: row {out[0]}) lie outside the modelled box (the "
                         "data's extent plus its buffer, or the fit's bounds); refit with a larger buffer, or with "
                         "bounds= holding these sites, to predict there")
    p = meta["covariates"]
    if p and covariates is None:
        raise ValueError(f"the model has {p} covariate(s): pass covariates for the new sites")
    Zn = None if not p else np.atleast_2d(np.asarray(covariates, np.float64).reshape(len(Xn), -1))
    post = group(idata, "posterior")
    lat = post["field_latent"].values
    ok = ~np.isnan(lat).any(-1)
    C, S = ok.shape
    sel = np.argwhere(ok)  # (draws, 2): chain, draw
    if len(sel) == 0:
        raise ValueError("the fit has no posterior draw with a recovered field (field_latent is all NaN)")
    if num_draws is not None:
        sel = sel[np.linspace(0, len(sel) - 1, min(num_draws, len(sel))).astype(int)]
    ci, di = sel[:, 0], sel[:, 1]
    dtype = jnp.result_type(float)
    take = lambda name: jnp.asarray(post[name].values[ci, di], dtype)  # noqa: E731  (draws,) + shape
    fixed = meta.get("fixed", {} if meta.get("nu_fixed") is None else {"nu": meta["nu_fixed"]})
    space = prior.param_range
    params = ModelParams(space, {n: None for n in space.names if n not in fixed}, fixed, cmap.scale)
    th = params.theta_from_draws({n: take(n) for n in params.priors}, len(sel)).astype(dtype)
    theta = (th, take("sigma"), jnp.asarray(lat[ci, di], dtype))
    icpt = post["intercept"].values[ci, di]
    beta = post["beta"].values[ci, di] if p else None  # (draws, p)
    out = np.empty((len(sel), len(Xn)))
    gen = prior.generator
    # draws in batches of a fixed size (the last one padded), so that one compilation serves them all and
    # the branch's activations stay bounded (batch × modes × width numbers)
    nb = min(_DRAW_BATCH, len(sel))
    pad = -len(sel) % nb
    theta = tuple(jnp.concatenate([t, jnp.repeat(t[-1:], pad, axis=0)]) for t in theta)
    # each batch's branches once, for every chunk of sites
    branches = [branches_at(gen, theta[0][b:b + nb]) for b in range(0, len(sel), nb)]
    # the Rao-Blackwellised mean: Σ_s σ_s g(x; E[z | y, θ_s], θ_s) / draws (padding weighted 0)
    rb = None
    if "field_latent_mean" in post:
        zbar = jnp.asarray(post["field_latent_mean"].values[ci, di], dtype)
        zbar = jnp.concatenate([zbar, jnp.repeat(zbar[-1:], pad, axis=0)])
        weights = jnp.concatenate([theta[1][:len(sel)] / len(sel), jnp.zeros(pad, dtype)])
        rb = [(branches[i], weights[b:b + nb], zbar[b:b + nb]) for i, b in enumerate(range(0, len(sel), nb))]
        mean = np.empty(len(Xn))
    mesh = site_mesh() if shard is None or shard else None
    for start in range(0, len(Xn), chunk):
        # the chunk's sites across the devices (padded to a multiple of their number); XLA partitions
        # the trunk and the products below along them
        Uc, nc = shard_sites(U[start:start + chunk], mesh)
        feats = gen.product_features(Uc)  # separable: chunk × 2√m numbers
        eta = icpt[:, None] + (0.0 if beta is None else beta @ Zn[start:start + chunk].T)
        E = jax.random.normal(jax.random.fold_in(jax.random.key(seed), start), (len(theta[0]), nc), dtype)
        E = shard_sites(E, mesh, axis=1)[0]
        f = np.concatenate([np.asarray(fields_at(gen, feats, theta[0][b:b + nb], branches[i], theta[1][b:b + nb],
                                                 theta[2][b:b + nb], E[b:b + nb]))[:, :nc]
                            for i, b in enumerate(range(0, len(sel), nb))])[:len(sel)]
        out[:, start:start + chunk] = eta + f
        if rb is not None:
            mean[start:start + chunk] = np.mean(eta, 0) + sum(np.asarray(mean_field_at(gen, feats, *r))[:nc]
                                                              for r in rb)
    res = {"mean": out.mean(0) if rb is None else mean, "sd": out.std(0),
           "quantiles": np.quantile(out, quantiles, axis=0), "quantile_levels": np.asarray(quantiles)}
    if return_draws:
        res["draws"] = out
    return res
