"""The NumPyro model a fit samples: priors on (range, σ, ν, intercept, β), the generative field at the
data sites through the generator the model evaluates (the spectral branch tabulated), and the
likelihood — Gaussian (field collapsed or latent, noise plus the truncated modes' variance), Poisson
or Bernoulli — wrapped so that the field is sampled through its latent. :class:`ModelSpec` holds
what the model is built from; :func:`build_model` builds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from pinnprob.generators.tabulated import TabulatedGenerator
from pinnprob.inference.collapsed import CollapsedGaussian, collapsed_cost, gram
from pinnprob.inference.data import CoordinateMap
from pinnprob.inference.distribution import GenerativeField
from pinnprob.inference.reparam import latent_field
from pinnprob.spde.matern import to_operator_params

__all__ = ["ModelSpec", "build_model", "model_generator", "truncation_tail", "obs_scale", "gram_for"]


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


def obs_scale(noise, sigma, range_unit, nu, tail):
    """sd of y given the field: the noise, plus the truncated modes' variance when ``tail`` is given
    (modified predictive process; :func:`truncation_tail`)."""
    return noise if tail is None else jnp.sqrt(noise**2 + sigma**2 * tail(range_unit, nu))


def gram_for(prior, features, collapsed):
    """ΦᵀΦ when the collapsed likelihood will use it (diagonal-branch generator and cheaper), else None."""
    if not collapsed or not prior.generator.diagonal_branch:
        return None
    n, m = features.shape
    return gram(features) if collapsed_cost(n, m, True)[1] == "gram" else None


_UNSET = object()


@dataclass(frozen=True)
class ModelSpec:
    """What :func:`build_model` builds the model from.

    ``prior`` the (truncated) generative prior; ``features`` its trunk at the data sites (unit box;
    dense for the collapsed form, else dense or separable); ``cmap`` the coordinate map (the range
    prior is in user units); ``y_info`` (mean, sd) of y, which scale the intercept and β priors;
    ``Z`` the covariates (n, p) or None; ``likelihood`` "gaussian", "poisson" or "bernoulli"; ``nu``
    a fixed ν or None (then ν ~ ``nu_prior``); ``range_prior``, ``sigma_prior``, ``noise_prior``,
    ``nu_prior`` NumPyro distributions; ``collapsed`` the field integrated out (Gaussian only);
    ``jitter`` added to the field's covariance; ``generator`` the generator the model evaluates
    (default: the prior's; :func:`model_generator`); ``tail`` the truncated modes' variance
    (:func:`truncation_tail`) or None; ``gram`` ΦᵀΦ for the collapsed likelihood, or None for none
    (default: :func:`gram_for` computes it when it pays).
    """

    prior: Any
    features: Any
    cmap: CoordinateMap
    y_info: tuple
    Z: Any
    likelihood: str
    nu: Any
    range_prior: Any
    sigma_prior: Any
    noise_prior: Any
    nu_prior: Any
    collapsed: bool
    jitter: float
    generator: Any = None
    tail: Any = None
    gram: Any = _UNSET


def build_model(spec: ModelSpec):
    """The NumPyro model ``model(y=None)`` of :class:`ModelSpec` ``spec``, wrapped with
    :func:`~pinnprob.inference.latent_field` (a latent field site is sampled through its latent z)."""
    prior, features, cmap, Z, likelihood, nu = spec.prior, spec.features, spec.cmap, spec.Z, spec.likelihood, spec.nu
    range_prior, sigma_prior, noise_prior, nu_prior = spec.range_prior, spec.sigma_prior, spec.noise_prior, spec.nu_prior
    collapsed, jitter, tail = spec.collapsed, spec.jitter, spec.tail
    gen = prior.generator if spec.generator is None else spec.generator
    # ΦᵀΦ, once, outside the model (``fit`` passes the one it also uses to recover the field)
    G = gram_for(prior, features, collapsed) if spec.gram is _UNSET else spec.gram
    ymean, ysd = spec.y_info
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
            scale = obs_scale(noise, sigma, range_ / cmap.scale, nu_, tail)
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
