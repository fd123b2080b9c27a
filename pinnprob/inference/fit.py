"""One-call geostatistical fit and prediction with a generative prior.

``fit(X, y, ...)`` maps the user's coordinates to the unit square with a buffer, builds the model

    range ~ range_prior,  σ ~ sigma_prior,  ν ~ U(prior's ν range)  (or fixed),
    β ~ N(0, ·),  f ~ GenerativeField(X; range, ν, σ),
    y ~ N(intercept + Zβ + f, noise²)  |  Poisson(exp(·))  |  Bernoulli(logit = ·),

runs NUTS (NumPyro or BlackJAX) or SVI, and returns ArviZ ``InferenceData`` whose ``range`` is in
the user's units. ``predict(idata, X_new)`` gives posterior predictive summaries and conditional
simulations at new sites, chunked.
"""

from __future__ import annotations

import base64
import json
import math
import time
import warnings
import zlib
from dataclasses import asdict, dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS, SVI, Predictive, Trace_ELBO
from numpyro.infer.autoguide import AutoNormal

from pinnprob.generators.tabulated import TabulatedGenerator
from pinnprob.inference.arviz_data import group, to_arviz
from pinnprob.inference.collapsed import CollapsedGaussian, collapsed_cost, conditional_latent, gram
from pinnprob.inference.distribution import GenerativeField
from pinnprob.inference.priors import PCRange, pc_sigma, quantile, truncate_to_range
from pinnprob.inference.reparam import latent_field
from pinnprob.spde.matern import to_operator_params

__all__ = ["fit", "predict", "fit_prior", "CoordinateMap", "LIKELIHOODS", "METHODS"]

LIKELIHOODS = ("gaussian", "poisson", "bernoulli")
METHODS = ("nuts", "blackjax", "svi")


@dataclass(frozen=True)
class CoordinateMap:
    """unit = (x − origin) / scale: the data's bounding square, centred, with a buffer on each side."""

    origin: tuple
    scale: float

    @classmethod
    def from_data(cls, X: np.ndarray, buffer: float) -> "CoordinateMap":
        lo, hi = X.min(0), X.max(0)
        extent = float(np.max(hi - lo))
        L = extent * (1.0 + 2.0 * buffer)
        centre = 0.5 * (lo + hi)
        return cls(tuple(float(c - L / 2) for c in centre), L)

    def to_unit(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, np.float64) - np.asarray(self.origin)) / self.scale


def _check_inputs(X, y, covariates, likelihood, method, prior, nu):
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    try:
        X = np.array(X, dtype=np.float64, copy=True)
        y = np.array(y, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"X and y must be numeric arrays: {e}") from None
    if X.ndim != 2 or X.shape[1] != prior.dim:
        raise ValueError(f"X must have shape (n, {prior.dim}), got {X.shape}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have shape (n,) with n = {X.shape[0]} (the rows of X), got {y.shape}")
    if X.shape[0] < 3:
        raise ValueError(f"need at least 3 sites, got {X.shape[0]}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"X has {int((~np.isfinite(X)).any(1).sum())} row(s) with NaN or inf")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"y has {int((~np.isfinite(y)).sum())} NaN or inf value(s); drop those sites first")
    if np.max(X.max(0) - X.min(0)) <= 0:
        raise ValueError("the sites have no spread: all coordinates are equal")
    if likelihood == "poisson" and (np.any(y < 0) or np.any(y != np.round(y))):
        raise ValueError("the poisson likelihood needs non-negative integer counts in y")
    if likelihood == "bernoulli" and not np.all((y == 0) | (y == 1)):
        raise ValueError("the bernoulli likelihood needs y in {0, 1}")
    Z = None
    if covariates is not None:
        try:
            Z = np.array(covariates, dtype=np.float64, copy=True)
        except (TypeError, ValueError) as e:
            raise ValueError(f"covariates must be numeric: {e}") from None
        Z = Z[:, None] if Z.ndim == 1 else Z
        if Z.ndim != 2 or Z.shape[0] != X.shape[0]:
            raise ValueError(f"covariates must have shape (n,) or (n, p) with n = {X.shape[0]}, got {Z.shape}")
        if not np.all(np.isfinite(Z)):
            raise ValueError(f"covariates have {int((~np.isfinite(Z)).sum())} NaN or inf value(s)")
        if np.any(Z.std(0) == 0):
            raise ValueError("a covariate is constant; the intercept already covers it")
    if nu is not None:
        lo, hi = prior.param_range.nu
        if not (np.isscalar(nu) and math.isfinite(float(nu)) and lo <= float(nu) <= hi):
            raise ValueError(f"nu = {nu!r} is outside the prior's training range [{lo:g}, {hi:g}]")
    return X, y, Z


def _gram_for(prior, features, collapsed):
    """ΦᵀΦ when the collapsed likelihood will use it (diagonal-branch generator and cheaper), else None."""
    if not collapsed or not prior.generator.diagonal_branch:
        return None
    n, m = features.shape
    return gram(features) if collapsed_cost(n, m, True)[1] == "gram" else None


def model_generator(prior, range_bounds_unit, nu):
    """The generator the model evaluates: for spectral priors, the branch tabulated over the log-range
    interval ``range_bounds_unit`` (unit-box units) and ν's range (or the fixed ν), which makes a NUTS
    gradient several times cheaper at the same law (:class:`~pinnprob.generators.TabulatedGenerator`,
    interpolation error ~1e-5 in log amplitude); other generators unchanged."""
    if prior.config.family != "spectral":
        return prior.generator
    lo, hi = range_bounds_unit
    nub = prior.param_range.nu if nu is None else (float(nu), float(nu))
    return TabulatedGenerator(prior.generator, (math.log(lo), math.log(hi)), nub, num_range=49)


def truncation_tail(full_eigenvalues, num_kept: int, dim: int):
    """The variance (σ = 1) of the modes ``prior.truncate`` left out, as a function of (range, ν) in
    unit-box units: Σ_{k ≥ m} τ⁻²(κ² + λ_k)^{-α} over the full trunk's eigenvalues λ_k (the exact SPDE
    spectrum, which the generator matches). Orthonormal modes average φ_k² = 1 over the unit box,
    so this is the per-site variance the truncation removes; ``fit`` adds it to the noise variance
    (the modified predictive process of Finley et al. 2009), so that the nugget does not absorb it.
    Returns None when nothing was left out."""
    lam = jnp.asarray(full_eigenvalues)[num_kept:]
    if lam.size == 0:
        return None

    def tail(range_unit, nu):
        kappa, tau, alpha = to_operator_params(range_unit, 1.0, nu, dim)
        return jnp.exp(jax.nn.logsumexp(-2 * jnp.log(tau) - alpha * jnp.log(kappa**2 + lam)))

    return tail


def _obs_scale(noise, sigma, range_unit, nu, tail):
    """sd of y given the field: the noise, plus the truncated modes' variance when ``tail`` is given
    (modified predictive process; :func:`truncation_tail`)."""
    return noise if tail is None else jnp.sqrt(noise**2 + sigma**2 * tail(range_unit, nu))


_UNSET = object()


def _build_model(prior, features, cmap, y_info, Z, likelihood, nu, range_prior, sigma_prior, noise_prior,
                 nu_prior, collapsed, jitter, generator=None, tail=None, gram=_UNSET):
    gen = prior.generator if generator is None else generator
    # ΦᵀΦ, once, outside the model (``fit`` passes the one it also uses to recover the field)
    G = _gram_for(prior, features, collapsed) if gram is _UNSET else gram
    ymean, ysd = y_info
    p = 0 if Z is None else Z.shape[1]
    zmean = None if Z is None else jnp.asarray(Z.mean(0))
    zsd = None if Z is None else jnp.asarray(Z.std(0))
    Zc = None if Z is None else jnp.asarray(Z) - zmean
    gauss = likelihood == "gaussian"

    def model(y=None):
        range_ = numpyro.sample("range", range_prior)
        sigma = numpyro.sample("sigma", sigma_prior)
        nu_ = numpyro.sample("nu", nu_prior) if nu is None else jnp.asarray(float(nu))
        icpt = numpyro.sample("intercept_centered", dist.Normal(ymean if gauss else 0.0, 2.0 * ysd if gauss else 3.0))
        eta = icpt * jnp.ones(features.shape[0])
        if p:
            scale = (2.0 * ysd if gauss else 1.0) / zsd
            beta = numpyro.sample("beta", dist.Normal(jnp.zeros(p), scale).to_event(1))
            eta = eta + Zc @ beta
            numpyro.deterministic("intercept", icpt - jnp.dot(zmean, beta))
        else:
            numpyro.deterministic("intercept", icpt)
        field = GenerativeField(gen, features, range_ / cmap.scale, nu_, sigma, jitter=jitter)
        if gauss:
            noise = numpyro.sample("noise", noise_prior)
            scale = _obs_scale(noise, sigma, range_ / cmap.scale, nu_, tail)
            if collapsed:
                numpyro.sample("y", CollapsedGaussian(field, eta, scale, gram=G), obs=y)
                return
            f = numpyro.sample("field", field)
            numpyro.sample("y", dist.Normal(eta + f, scale).to_event(1), obs=y)
        else:
            f = numpyro.sample("field", field)
            if likelihood == "poisson":
                numpyro.sample("y", dist.Poisson(jnp.exp(eta + f)).to_event(1), obs=y)
            else:
                numpyro.sample("y", dist.Bernoulli(logits=eta + f).to_event(1), obs=y)

    return latent_field(model)


def _collapse_pays(n: int, m: int, with_gram: bool = True) -> bool:
    """Collapsed or latent? A collapsed gradient costs min(n²m + n³/3, nm + m³/3) with the Gram matrix of
    a spectral trunk (nm² + m³/3 without; :func:`collapsed_cost`) and NUTS needs about 15 of them per
    draw in 3-4 dimensions; a latent gradient costs about nm + 300m (trunk product, tabulated branch and
    NUTS bookkeeping per mode) and NUTS in m dimensions needs 250-350, more with strong data (a funnel
    in (θ, z): see docs/results/sbc.md). Collapse when a collapsed gradient is cheap outright
    (≤ 5·10⁸ flops, tens of ms: its few-parameter posterior mixes more reliably) or less than 50× a
    latent one (measured trade-off: docs/results/inference.md)."""
    collapsed = collapsed_cost(n, m, with_gram)[0]
    latent = n * m + 300 * m
    return collapsed <= 5e8 or collapsed < 50 * latent


def _run_blackjax(model, y, key, num_warmup, num_samples, progress_bar):
    import blackjax
    from numpyro.infer.util import initialize_model
    from tqdm.auto import tqdm

    k_init, k_warm, k_run = jax.random.split(key, 3)
    info = initialize_model(k_init, model, model_kwargs={"y": y}, dynamic_args=False)
    logdensity = lambda z: -info.potential_fn(z)  # noqa: E731
    warmup = blackjax.window_adaptation(blackjax.nuts, logdensity)
    (state, params), _ = warmup.run(k_warm, info.param_info.z, num_steps=num_warmup)
    kernel = jax.jit(blackjax.nuts(logdensity, **params).step)

    @jax.jit
    def chunk(state, keys):
        def one(s, k):
            s, inf = kernel(k, s)
            return s, (s.position, inf.is_divergent, inf.num_integration_steps)
        return jax.lax.scan(one, state, keys)

    keys = jax.random.split(k_run, num_samples)
    out, div, steps = [], [], []
    bar = tqdm(total=num_samples, disable=not progress_bar, desc="blackjax nuts")
    for s in range(0, num_samples, 50):
        state, (pos, d, n) = chunk(state, keys[s:s + 50])
        out.append(pos)
        div.append(d)
        steps.append(n)
        bar.update(len(d))
    bar.close()
    positions = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *out)
    samples = jax.vmap(info.postprocess_fn)(positions)
    stats = {"diverging": jnp.concatenate(div), "n_steps": jnp.concatenate(steps)}
    return samples, stats


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
    latent (:func:`_collapse_pays`). Only the modes needed down to the range prior's 0.5 %
    quantile are kept (``mode_tol``: the variance fraction allowed to be left out).

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
    X, y, Z = _check_inputs(X, y, covariates, likelihood, method, prior, nu)
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
        collapsed = likelihood == "gaussian" and prior.gaussian and _collapse_pays(
            X.shape[0], prior.latent_dim, prior.generator.diagonal_branch)
    Xu = jnp.asarray(cmap.to_unit(X))
    # the collapsed path needs the dense Φ (n × n covariance or ΦᵀΦ); the latent path only multiplies by
    # it, from its 1-D tables when the trunk is separable: a NUTS gradient up to 2× cheaper at n = 1000-2000
    # on a quiet CPU, more when memory bandwidth is shared (docs/results/inference.md)
    features = prior.generator.features(Xu) if collapsed else prior.generator.product_features(Xu)
    gen = model_generator(prior, pr.range, nu)  # the range prior's support, in unit-box units
    G = _gram_for(prior, features, collapsed)
    model = _build_model(prior, features, cmap, (float(y.mean()) if likelihood == "gaussian" else 0.0, ysd), Z,
                         likelihood, nu, range_prior, sigma_prior, noise_prior, nu_prior, collapsed, jitter, gen,
                         tail, G)
    key = jax.random.key(seed)
    k_run, k_field = jax.random.split(key)
    yj = jnp.asarray(y)
    t0 = time.perf_counter()
    if method == "nuts":
        mcmc = MCMC(NUTS(model), num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                    chain_method="sequential", progress_bar=progress_bar)
        mcmc.run(k_run, y=yj)
        samples = mcmc.get_samples(group_by_chain=True)
        extra = mcmc.get_extra_fields(group_by_chain=True)
        stats = {"diverging": extra["diverging"]}
    elif method == "blackjax":
        runs = [_run_blackjax(model, yj, k, num_warmup, num_samples, progress_bar)
                for k in jax.random.split(k_run, num_chains)]
        samples = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *[r[0] for r in runs])
        stats = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *[r[1] for r in runs])
    else:
        guide = AutoNormal(model)
        svi = SVI(model, guide, numpyro.optim.Adam(0.01), Trace_ELBO())
        res = svi.run(k_run, svi_steps, y=yj, progress_bar=progress_bar)
        tr = numpyro.handlers.trace(numpyro.handlers.seed(model, 0)).get_trace(y=yj)
        sites = [k for k, v in tr.items() if v["type"] in ("sample", "deterministic") and k != "y"]
        draws = Predictive(model, guide=guide, params=res.params, num_samples=num_samples * num_chains,
                           return_sites=sites)(jax.random.fold_in(k_run, 1), y=yj)
        samples = {k: v.reshape((num_chains, num_samples) + v.shape[1:]) for k, v in draws.items()}
        stats = {"elbo_loss": res.losses}
    samples = {k: np.asarray(jax.block_until_ready(v)) for k, v in samples.items()}  # dispatch is async
    elapsed = time.perf_counter() - t0
    if collapsed:
        samples["field"], samples["field_latent"] = _recover_field(gen, G, features, cmap, samples, yj, Z, nu, tail,
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


def _recover_field(gen, G, features, cmap, samples, y, Z, nu, tail, key, field_draws, jitter):
    """Field (and latent) at the data sites for the posterior draws (all, or ``field_draws`` evenly
    spaced), by an exact draw of z | y under the model's own generator ``gen`` and Gram matrix ``G``."""
    C, S = samples["range"].shape[:2]
    idx = np.arange(S) if field_draws is None else np.linspace(0, S - 1, min(field_draws, S)).astype(int)
    zc = None if Z is None else jnp.asarray(Z - Z.mean(0))

    @jax.jit
    def one(k, r, nu_, sig, icpt, beta, noise):
        field = GenerativeField(gen, features, r / cmap.scale, nu_, sig, jitter=jitter)
        eta = icpt + (0.0 if zc is None else zc @ beta)
        z = conditional_latent(k, field, y - eta, _obs_scale(noise, sig, r / cmap.scale, nu_, tail), gram=G)
        return field.from_latent(z), z

    fields = np.full((C, S, features.shape[0]), np.nan)
    latents = np.full((C, S, gen.latent_dim), np.nan)
    for c in range(C):
        for j, s in enumerate(idx):
            nu_ = samples["nu"][c, s] if nu is None else float(nu)
            beta = samples["beta"][c, s] if "beta" in samples else jnp.zeros(0)
            f, z = one(jax.random.fold_in(key, c * S + s), samples["range"][c, s], nu_, samples["sigma"][c, s],
                       samples["intercept_centered"][c, s], beta, samples["noise"][c, s])
            fields[c, s], latents[c, s] = np.asarray(f), np.asarray(z)
    return fields, latents  # full (chain, draw) shape, NaN where a draw was not recovered


_DRAW_BATCH = 32


@eqx.filter_jit
def _fields_at(gen, feats, range_unit, nu, sigma, Z):
    """σ g(X; z, θ) for a batch of S posterior draws: ``range_unit``, ``nu``, ``sigma`` (S,) and Z (S, m)
    as arrays (so one compilation serves every draw), → (S, n)."""
    return jax.vmap(lambda r, v, s, z: GenerativeField(gen, feats, r, v, s).from_latent(z))(range_unit, nu, sigma, Z)


def predict(idata, X_new, *, covariates=None, prior=None, quantiles=(0.05, 0.5, 0.95), num_draws: int | None = None,
            chunk: int = 20_000, seed: int = 0, return_draws: bool = False):
    """Posterior predictive of the linear predictor at new sites X_new (n_new, 2), user units.

    ``idata`` is what :func:`fit` returned, in memory or read back from a file, with the prior it
    stores; ``prior``, if given, is checked to be the one the fit used (:func:`fit_prior`).
    Returns a dict with ``mean``, ``sd``, ``quantiles`` (q, n_new) of intercept + covariates·β + field,
    and ``draws`` (conditional simulations, num_draws × n_new) when ``return_draws``. Exact given the
    posterior draws of θ and of the latent z; sites are processed in chunks of ``chunk``.
    """
    prior, meta = fit_prior(idata, prior)
    cmap = CoordinateMap(tuple(meta["coordinate_map"]["origin"]), meta["coordinate_map"]["scale"])
    Xn = np.array(X_new, dtype=np.float64, copy=True)
    if Xn.ndim != 2 or Xn.shape[1] != prior.dim or not np.all(np.isfinite(Xn)):
        raise ValueError(f"X_new must be a finite array of shape (n, {prior.dim})")
    U = cmap.to_unit(Xn)
    if np.any(U < 0) or np.any(U > 1):
        raise ValueError("X_new reaches outside the modelled square (the data's extent plus its buffer); "
                         "refit with a larger buffer to predict there")
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
    nus = take("nu") if meta["nu_fixed"] is None else jnp.full(len(sel), float(meta["nu_fixed"]), dtype)
    theta = (take("range") / cmap.scale, nus, take("sigma"), jnp.asarray(lat[ci, di], dtype))
    icpt = post["intercept"].values[ci, di]
    beta = post["beta"].values[ci, di] if p else None  # (draws, p)
    out = np.empty((len(sel), len(Xn)))
    gen = prior.generator
    # draws in batches of a fixed size (the last one padded), so that one compilation serves them all and
    # the branch's activations stay bounded (batch × modes × width numbers)
    nb = min(_DRAW_BATCH, len(sel))
    pad = -len(sel) % nb
    theta = tuple(jnp.concatenate([t, jnp.repeat(t[-1:], pad, axis=0)]) for t in theta)
    for start in range(0, len(Xn), chunk):
        feats = gen.product_features(jnp.asarray(U[start:start + chunk]))  # separable: chunk × 2√m numbers
        eta = icpt[:, None] + (0.0 if beta is None else beta @ Zn[start:start + chunk].T)
        f = np.concatenate([np.asarray(_fields_at(gen, feats, *(t[b:b + nb] for t in theta)))
                            for b in range(0, len(sel), nb)])[:len(sel)]
        out[:, start:start + chunk] = eta + f
    res = {"mean": out.mean(0), "sd": out.std(0), "quantiles": np.quantile(out, quantiles, axis=0),
           "quantile_levels": np.asarray(quantiles)}
    if return_draws:
        res["draws"] = out
    return res
