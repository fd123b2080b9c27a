"""The NumPyro model a fit samples: priors on the SPDE's parameters (by name, in the user's units), σ,
the intercept and β; the generative field at the data sites through the generator the model evaluates
(for a spectral prior, its branch tabulated); and the likelihood — Gaussian (field collapsed or
latent, noise plus the truncated modes' variance), Poisson or Bernoulli (field latent, or collapsed
by a Laplace approximation) — wrapped so that the field is
sampled through its latent. :class:`ModelParams` maps the user's parameters to θ; :class:`ModelSpec`
holds what the model is built from; :func:`build_model` builds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from pinnprob.generators.base import AbstractDiagonalGenerator
from pinnprob.inference.collapsed import CollapsedGaussian, collapse_pays, collapsed_cost, gram
from pinnprob.inference.data import CoordinateMap
from pinnprob.inference.distribution import GenerativeField
from pinnprob.inference.laplace_collapsed import OBSERVATIONS, LaplaceCollapsed
from pinnprob.inference.reparam import latent_field
from pinnprob.inference.site_covariance import SiteCovariance
from pinnprob.parameters import ParameterSpace

__all__ = ["ModelParams", "ModelSpec", "build_model", "PRODUCT_FEATURE_PATHS", "model_generator",
           "truncation_tail", "tail_sd", "obs_scale", "gram_for", "path_inputs", "choose_path", "collapsed_path",
           "collapses", "site_covariance_for"]

# the cost model's guess of a site covariance's rank (measured: 17-20 for the shipped Matérn prior at
# tolerance 1e-4), the most entries its R n × n blocks may hold, and the tolerance on its error bound
SITE_COVARIANCE_RANK = 24
SITE_COVARIANCE_ENTRIES = 1.5e8
SITE_COVARIANCE_TOL = 1e-4
# Newton steps a Laplace-collapsed evaluation takes from z = 0 (5-7 measured on Poisson and
# Bernoulli data at 40-400 sites, float32), for the cost model only
LAPLACE_NEWTON_STEPS = 6
# the paths (choose_path) that only multiply by the trunk at the sites (Φw, Φᵀr) and sum ΦᵀΦ: they take
# the generator's product_features (1-D tables for a separable trunk), the others its dense features
PRODUCT_FEATURE_PATHS = ("latent", "gram")


@dataclass(frozen=True)
class ModelParams:
    """The SPDE's parameters in a model, in the user's units: ``priors`` (name → NumPyro distribution)
    for the free ones, ``fixed`` (name → value) for the others. ``space`` is the prior's (unit-box
    units) and ``scale`` the coordinate map's: a parameter whose unit has length to the power k
    (:attr:`~pinnprob.parameters.Axis.length_power`) and time to the power j
    (:attr:`~pinnprob.parameters.Axis.time_power`) is divided by scale^k · time_scale^j on its way to
    the box (``time_scale``: the user's time units per prior time unit, space-time priors)."""

    space: ParameterSpace
    priors: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)
    scale: float = 1.0
    time_scale: float = 1.0

    def __post_init__(self):
        names = set(self.space.names)
        if set(self.priors) | set(self.fixed) != names or set(self.priors) & set(self.fixed):
            raise ValueError(f"each of {list(self.space.names)} needs a prior or a fixed value, not both; "
                             f"got priors for {sorted(self.priors)}, fixed {sorted(self.fixed)}")

    def unit(self, name: str) -> float:
        """One unit-box unit of parameter ``name`` in the user's units."""
        a = self.space.axis(name)
        return self.scale**a.length_power * self.time_scale**a.time_power

    def to_unit(self, name: str, value):
        """A parameter's value in unit-box units."""
        return value / self.unit(name)

    def to_user(self, name: str, value):
        return value * self.unit(name)

    def theta(self, values: dict):
        """θ (natural coordinates, unit box) from the parameters by name in the user's units."""
        return self.space.theta(**{n: self.to_unit(n, values[n]) for n in self.space.names})

    def theta_bounds(self) -> np.ndarray:
        """(p, 2): the box in natural coordinates, or the fixed value twice, per axis."""
        out = []
        for a in self.space.axes:
            if a.name in self.fixed:
                v = float(self.to_unit(a.name, self.fixed[a.name]))
                v = np.log(v) if a.log else v
                out.append((v, v))
            else:
                out.append(a.natural_bounds)
        return np.asarray(out, np.float64)

    def sample(self, sigma_prior):
        """Inside a model: the free parameters and σ as sample sites (the first parameter, then σ, then
        the rest: for the Matérn range, σ, ν), the fixed ones as constants; returns (values, σ)."""
        names = self.space.names
        values = {}

        def one(n):
            values[n] = numpyro.sample(n, self.priors[n]) if n in self.priors else jnp.asarray(float(self.fixed[n]))

        one(names[0])
        sigma = numpyro.sample("sigma", sigma_prior)
        for n in names[1:]:
            one(n)
        return values, sigma

    def theta_from_draws(self, draws: dict, num: int) -> jax.Array:
        """θ (num, p) for ``num`` posterior draws given by name as arrays (num,) (fixed ones filled in)."""
        vals = {n: jnp.asarray(draws[n]) if n in self.priors else jnp.full((num,), float(self.fixed[n]))
                for n in self.space.names}
        return self.theta(vals)


def model_generator(prior, params: ModelParams):
    """The generator the model evaluates: the prior's, made cheaper for θ within the model's bounds
    where its type allows (:meth:`~pinnprob.generators.AbstractGenerator.for_inference`; for spectral
    priors the branch tabulated, interpolation error ~1e-5 in log amplitude)."""
    return prior.generator.for_inference(params.theta_bounds())


class TruncationTail(eqx.Module):
    """θ ↦ Σ_k D_k(θ)⁻², the variance (σ = 1) of the modes with eigenvalues ``eigenvalues`` (a module, not
    a closure: jitted functions of it compile once for its shapes)."""

    spde: Any
    eigenvalues: jax.Array

    def __call__(self, theta):
        # orthonormal modes average φ² = 1/|D| over the SPDE's box D
        volume = math.prod(self.spde.domain.lengths)
        return jnp.exp(jax.nn.logsumexp(-2.0 * self.spde.log_symbol(self.eigenvalues, theta))) / volume


def truncation_tail(spde, full_eigenvalues, num_kept: int):
    """The variance (σ = 1) of the modes ``prior.truncate`` left out, as a function of θ:
    Σ_{k ≥ m} D_k(θ)⁻² / |D| over the full trunk's eigenvalues λ_k, from the diagonal SPDE's symbol (the
    exact spectrum, which the generator matches). Orthonormal modes average φ_k² = 1/|D| over the
    SPDE's box D, so this is the per-site variance the truncation removes; ``fit`` adds it to the noise
    variance (the modified predictive process of Finley et al. 2009), so that the nugget does not
    absorb it. A :class:`TruncationTail`, or None when nothing was left out."""
    lam = jnp.asarray(full_eigenvalues)[num_kept:]
    if lam.size == 0:
        return None
    return TruncationTail(spde, lam)


def tail_sd(tail, params: "ModelParams", samples: dict, max_draws: int = 1000) -> float | None:
    """The posterior mean of σ √tail(θ): the sd that the modes a spectral prior left out add to each
    site (y's units), over ``samples`` (draws by site name, any shape; at most ``max_draws`` of them,
    evenly spaced), the fixed parameters from ``params``. None without a ``tail``. Beside the noise it
    says how much of the data's variance the truncation handed to the modified predictive process
    (:func:`obs_scale`), which treats it as independent between sites."""
    if tail is None:
        return None
    sigma = np.ravel(np.asarray(samples["sigma"], np.float64))
    step = -(-sigma.size // max_draws)  # ⌈draws / max_draws⌉
    sigma = sigma[::step]
    theta = params.theta_from_draws({n: np.ravel(np.asarray(samples[n], np.float64))[::step] for n in params.priors},
                                    sigma.size)
    return float(jnp.mean(jnp.asarray(sigma) * jnp.sqrt(jax.vmap(tail)(theta))))


def mode_bucket(m: int) -> int:
    """The multiple a cut of ``m`` modes is rounded up to where extra modes cost next to nothing (the
    'reduced' path): 2^(⌊log₂ m⌋ − 5), so at most 1/32 more modes. Fits of similar data (the folds of a
    cross-validation) then keep the same number of modes and reuse each other's compilations."""
    return 1 << max(int(m).bit_length() - 6, 0)


def reduce_prior(prior, params: ModelParams, range_floor: float | None, tol: float, multiple_of: int = 1):
    """(prior, tail) for a model: a diagonal (spectral) prior keeps only the modes needed down to
    ``range_floor`` (unit box) at ``tol``, their number rounded up to a multiple of ``multiple_of``,
    and reports the left-out variance (:func:`truncation_tail`); other priors are used whole (tail
    None)."""
    if not isinstance(prior.generator, AbstractDiagonalGenerator) or range_floor is None:
        return prior, None
    full = prior.generator.basis.eigenvalues
    nu = params.fixed.get("nu")
    reduced = prior.truncate(max(range_floor, prior.param_range.range[0]), tol=tol, nu=nu, multiple_of=multiple_of)
    return reduced, truncation_tail(prior.spde, full, reduced.latent_dim)


def obs_scale(noise, sigma, theta, tail):
    """sd of y given the field: the noise, plus the truncated modes' variance when ``tail`` is given
    (modified predictive process; :func:`truncation_tail`)."""
    return noise if tail is None else jnp.sqrt(noise**2 + sigma**2 * tail(theta))


def _cost_inputs(prior, n: int) -> tuple[int, bool, int | None]:
    """(m, diagonal, rank) for the cost model: the prior's modes, whether its generator is spectral
    (Ψ = Φ diag(a(θ)): the Gram and site-covariance paths), and the rank it assumes for a site
    covariance, or None where there can be none (not spectral, or too many sites for its blocks)."""
    diagonal = isinstance(prior.generator, AbstractDiagonalGenerator)
    fits = SITE_COVARIANCE_RANK * n * n <= SITE_COVARIANCE_ENTRIES
    return prior.latent_dim, diagonal, SITE_COVARIANCE_RANK if diagonal and fits else None


def choose_path(prior, n: int, evaluations: float | None = None, collapsed: bool | None = None,
                mcmc: bool = False) -> str:
    """The path a Gaussian fit at ``n`` sites takes, decided once: 'latent' (the field sampled), or
    how the collapsed likelihood evaluates the covariance — 'reduced' (a site covariance), 'gram',
    'dense' or 'woodbury' — by the cost model
    (:func:`~pinnprob.inference.collapsed.collapsed_cost`), each path's one-off cost spread over the
    ``evaluations`` the fit is expected to make
    (:func:`~pinnprob.inference.runners.expected_evaluations`; None: a long fit, one-off costs left
    out). ``collapsed`` True or False imposes the form; None decides it
    (:func:`~pinnprob.inference.collapsed.collapse_pays`) as for a long fit, whatever
    ``evaluations``: the collapsed form's few-parameter posterior mixes more reliably than the
    latent one, so a short fit is not sent to the latent form for its one-off costs. ``mcmc``: the fit
    samples by NUTS, which the latent form cannot serve at many sites and few modes
    (:func:`~pinnprob.inference.collapsed.latent_too_stiff`)."""
    m, diagonal, rank = _cost_inputs(prior, n)
    if collapsed is None:
        collapsed = collapse_pays(n, m, diagonal, rank, mcmc=mcmc)
    return collapsed_cost(n, m, diagonal, rank, evaluations)[1] if collapsed else "latent"


def evaluation_cost(prior, n: int) -> float:
    """Flops of one collapsed evaluation at ``n`` sites by the cheapest path for a long fit
    (:func:`~pinnprob.inference.collapsed.collapsed_cost`, one-off costs left out)."""
    m, diagonal, rank = _cost_inputs(prior, n)
    return collapsed_cost(n, m, diagonal, rank)[0]


def laplace_evaluation_cost(prior, n: int) -> float:
    """Flops of one Laplace-collapsed evaluation (non-Gaussian likelihood) at ``n`` sites: about
    LAPLACE_NEWTON_STEPS Newton steps, each a Cholesky in the smaller of the latent and field spaces
    (k = min(n, m): k³/3) and the product SᵀWS or K = SSᵀ (n m k), with the field's basis built once."""
    m = prior.latent_dim
    k = min(n, m)
    return LAPLACE_NEWTON_STEPS * (k**3 / 3.0 + n * m * k)


def collapsed_path(prior, n: int, evaluations: float | None = None) -> str:
    """How a collapsed likelihood at ``n`` sites evaluates this prior's covariance, by the cost model
    (:func:`choose_path` with the collapsed form imposed): 'reduced' (a site covariance), 'gram',
    'dense' or 'woodbury'. Without ``evaluations`` the one-off costs (building the site covariance
    or ΦᵀΦ) are left out, as for a long fit."""
    return choose_path(prior, n, evaluations, collapsed=True)


def collapses(prior, n: int) -> bool:
    """Whether the collapsed form pays at ``n`` sites (:func:`~pinnprob.inference.collapsed.collapse_pays`,
    as for a long fit: :func:`choose_path`)."""
    return choose_path(prior, n) != "latent"


def gram_for(features, path: str, progress_bar: bool = False):
    """ΦᵀΦ when the path decided (:func:`choose_path`) is 'gram', else None."""
    return gram(features, progress_bar) if path == "gram" else None


def path_inputs(prior, generator, Xu, theta_bounds, path: str, progress_bar: bool = False):
    """(features, ΦᵀΦ or None, site covariance or None) of the sites ``Xu`` (unit box) for the path
    decided (:func:`choose_path`): the trunk as ``prior``'s product features (1-D tables for a
    separable trunk) on the paths that only multiply by it (``PRODUCT_FEATURE_PATHS``), dense on the
    others; then :func:`gram_for` and :func:`site_covariance_for` (``generator``: the one the model
    evaluates, ``theta_bounds`` its box)."""
    features = (prior.generator.product_features(Xu) if path in PRODUCT_FEATURE_PATHS
                else prior.generator.features(Xu))
    return (features, gram_for(features, path, progress_bar),
            site_covariance_for(generator, features, theta_bounds, path))


def site_covariance_for(generator, features, theta_bounds, path: str):
    """The :class:`~pinnprob.inference.site_covariance.SiteCovariance` of ``generator`` (the one the
    model evaluates) at the sites of the dense ``features``, over ``theta_bounds``, when the path
    decided (:func:`choose_path`) is 'reduced' and its error bound is ≤ ``SITE_COVARIANCE_TOL``; else
    None (then the likelihood forms the covariance from the modes: exact, slower)."""
    if path != "reduced":
        return None
    sc = SiteCovariance.build(generator, features, theta_bounds, tol=SITE_COVARIANCE_TOL)
    return sc if sc.error <= SITE_COVARIANCE_TOL else None


_UNSET = object()


@dataclass(frozen=True)
class ModelSpec:
    """What :func:`build_model` builds the model from.

    ``prior`` the (truncated) generative prior; ``features`` its trunk at the data sites (unit box;
    dense for the collapsed form, else dense or separable); ``cmap`` the coordinate map; ``y_info``
    (mean, sd) of y, which scale the intercept and β priors; ``Z`` the covariates (n, p) or None;
    ``likelihood`` "gaussian", "poisson" or "bernoulli"; ``params`` the SPDE's parameters
    (:class:`ModelParams`, user units); ``sigma_prior``, ``noise_prior`` NumPyro distributions;
    ``collapsed`` the field integrated out (exactly for a Gaussian likelihood, by a Laplace
    approximation otherwise: :class:`~pinnprob.inference.laplace_collapsed.LaplaceCollapsed`);
    ``jitter`` added to the field's covariance; ``generator`` the generator the model evaluates
    (default: the prior's; :func:`model_generator`); ``tail`` the truncated modes' variance
    (:func:`truncation_tail`) or None; ``gram`` ΦᵀΦ and ``site_covariance`` for the collapsed
    likelihood, or None for none (default: :func:`gram_for` and :func:`site_covariance_for` build
    them when the path :func:`choose_path` picks for a long fit uses them; ``fit`` passes its own).
    """

    prior: Any
    features: Any
    cmap: CoordinateMap
    y_info: tuple
    Z: Any
    likelihood: str
    params: ModelParams
    sigma_prior: Any
    noise_prior: Any
    collapsed: bool
    jitter: float
    generator: Any = None
    tail: Any = None
    gram: Any = _UNSET
    site_covariance: Any = _UNSET


def build_model(spec: ModelSpec):
    """The NumPyro model ``model(y=None, arrays=...)`` of :class:`ModelSpec` ``spec``, wrapped with
    :func:`~pinnprob.inference.latent_field` (a latent field site is sampled through its latent z).

    Its large arrays (the generator's tables, the trunk at the sites, ΦᵀΦ, the site covariance) are
    the default of its ``arrays`` argument, also at ``model.arrays``: a sampler that traces the
    model's arguments (NUTS with ``jit_model_args``, :func:`~pinnprob.inference.runners.run_nuts`)
    passes them, so that they are compiled as inputs, not as literals in every compiled function
    (65 MB of program text for a ν-free table at 4 357 distinct eigenvalues)."""
    prior, features, Z, likelihood, params = spec.prior, spec.features, spec.Z, spec.likelihood, spec.params
    sigma_prior, noise_prior = spec.sigma_prior, spec.noise_prior
    collapsed, jitter, tail = spec.collapsed, spec.jitter, spec.tail
    gen = prior.generator if spec.generator is None else spec.generator
    # ΦᵀΦ and the site covariance, once, outside the model (``fit`` passes the ones it also uses to
    # recover the field); by default as for a long fit (choose_path without an evaluation count)
    # (a Laplace-collapsed non-Gaussian likelihood uses neither: path "laplace")
    path = ("laplace" if likelihood != "gaussian" and collapsed else
            choose_path(prior, features.shape[0], collapsed=collapsed)
            if spec.gram is _UNSET or spec.site_covariance is _UNSET else None)
    G = gram_for(features, path) if spec.gram is _UNSET else spec.gram
    SC = (site_covariance_for(gen, features, params.theta_bounds(), path)
          if spec.site_covariance is _UNSET else spec.site_covariance)
    ymean, ysd = spec.y_info
    p = 0 if Z is None else Z.shape[1]
    zmean = None if Z is None else jnp.asarray(Z.mean(0))
    zsd = None if Z is None else jnp.asarray(Z.std(0))
    Zc = None if Z is None else jnp.asarray(Z) - zmean
    gauss = likelihood == "gaussian"
    arrays, static = eqx.partition((gen, features, G, SC), eqx.is_array)

    def model(y=None, arrays=arrays):
        gen, features, G, SC = eqx.combine(arrays, static)
        values, sigma = params.sample(sigma_prior)
        theta = params.theta(values)
        icpt = numpyro.sample("intercept_centered", dist.Normal(ymean if gauss else 0.0, 2.0 * ysd if gauss else 3.0))
        eta = icpt * jnp.ones(features.shape[0])
        if p:
            scale = (2.0 * ysd if gauss else 1.0) / zsd
            beta = numpyro.sample("beta", dist.Normal(jnp.zeros(p), scale).to_event(1))
            eta = eta + Zc @ beta
            numpyro.deterministic("intercept", icpt - jnp.dot(zmean, beta))
        else:
            numpyro.deterministic("intercept", icpt)
        field = GenerativeField(gen, features, theta, sigma, jitter=jitter)
        if gauss:
            noise = numpyro.sample("noise", noise_prior)
            scale = obs_scale(noise, sigma, theta, tail)
            if collapsed:
                numpyro.sample("y", CollapsedGaussian(field, eta, scale, gram=G, site_covariance=SC), obs=y)
                return
            f = numpyro.sample("field", field)  # its latent part; the site part goes with the noise
            scale = jnp.sqrt(scale**2 + field.site_variance())
            numpyro.sample("y", dist.Normal(eta + f, scale).to_event(1), obs=y)
        elif collapsed:  # the field integrated out by a Laplace approximation (method="laplace")
            numpyro.sample("y", LaplaceCollapsed(field, eta, likelihood), obs=y)
        else:
            f = numpyro.sample("field", field)
            numpyro.sample("y", OBSERVATIONS[likelihood](eta + f).to_event(1), obs=y)

    wrapped = latent_field(model)
    wrapped.arrays = arrays
    return wrapped
