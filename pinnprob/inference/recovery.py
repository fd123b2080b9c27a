"""The field a collapsed fit integrated out, recovered afterwards: for each posterior draw of θ (all,
or some evenly spaced), one exact draw of the latent z | y under the model's own generator (for a
Poisson or Bernoulli likelihood integrated out by a Laplace approximation, one draw from that
Gaussian approximation), and the field at the data sites from it.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from pinnprob.inference.collapsed import conditional_latent
from pinnprob.inference.distribution import GenerativeField
from pinnprob.inference.laplace_collapsed import approximate_conditional_latent
from pinnprob.inference.model import obs_scale

__all__ = ["recover_field", "recover_field_approximately"]


# module-level and jitted on every argument (the generator's tables are not compiled in as constants),
# so that fits of the same shapes (cross-validation folds) reuse one compilation
@eqx.filter_jit
def _one_draw(gen, sc, G, tail, feats, y, zc, jitter, k, theta, sig, icpt, beta, noise):
    field = GenerativeField(gen, feats, theta, sig, jitter=jitter)
    eta = icpt + (0.0 if zc is None else zc @ beta)
    z = conditional_latent(k, field, y - eta, obs_scale(noise, sig, theta, tail), gram=G, site_covariance=sc)
    return field.from_latent(z), z


def _draws(gen, features, params, samples, key, field_draws, progress_bar, desc, one):
    """Field and latent at the sites for the posterior draws (all, or ``field_draws`` evenly spaced),
    ``one(key, theta, sigma, intercept_centered, beta, noise)`` giving each; NaN where not drawn."""
    from tqdm.auto import tqdm

    C, S = samples["sigma"].shape[:2]
    idx = np.arange(S) if field_draws is None else np.linspace(0, S - 1, min(field_draws, S)).astype(int)
    fields = np.full((C, S, features.shape[0]), np.nan)
    latents = np.full((C, S, gen.latent_dim), np.nan)
    bar = tqdm(total=C * len(idx), disable=not progress_bar, desc=desc)
    for c in range(C):
        thetas = params.theta_from_draws({n: samples[n][c] for n in params.priors}, S)
        for s in idx:
            bar.update(1)
            beta = samples["beta"][c, s] if "beta" in samples else jnp.zeros(0)
            noise = samples["noise"][c, s] if "noise" in samples else None
            f, z = one(jax.random.fold_in(key, c * S + s), thetas[s], samples["sigma"][c, s],
                       samples["intercept_centered"][c, s], beta, noise)
            fields[c, s], latents[c, s] = np.asarray(f), np.asarray(z)
    bar.close()
    return fields, latents  # full (chain, draw) shape, NaN where a draw was not recovered


def recover_field(gen, G, features, params, samples, y, Z, tail, key, field_draws, jitter, site_covariance=None,
                  progress_bar: bool = False):
    """Field (and latent) at the data sites for the posterior draws (all, or ``field_draws`` evenly
    spaced), by an exact draw of z | y under the model's own generator ``gen``, Gram matrix ``G`` and
    site covariance (:func:`~pinnprob.inference.collapsed.conditional_latent`);
    ``params`` (:class:`~pinnprob.inference.model.ModelParams`) maps the draws to θ."""
    zc = None if Z is None else jnp.asarray(Z - Z.mean(0))
    return _draws(gen, features, params, samples, key, field_draws, progress_bar, "field draws",
                  lambda k, theta, sig, icpt, beta, noise: _one_draw(gen, site_covariance, G, tail, features, y, zc,
                                                                     jitter, k, theta, sig, icpt, beta, noise))


@eqx.filter_jit
def _one_approximate_draw(gen, feats, y, zc, jitter, family, k, theta, sig, icpt, beta):
    field = GenerativeField(gen, feats, theta, sig, jitter=jitter)
    eta = icpt + (0.0 if zc is None else zc @ beta)
    z = approximate_conditional_latent(k, field, eta * jnp.ones(feats.shape[0]), y, family)
    return field.from_latent(z), z


def recover_field_approximately(gen, features, params, samples, y, Z, family, key, field_draws, jitter,
                                progress_bar: bool = False):
    """As :func:`recover_field`, for a Poisson or Bernoulli likelihood that a Laplace approximation
    integrated out (``family``): one draw per posterior draw from the Gaussian approximation of z | y
    (:func:`~pinnprob.inference.laplace_collapsed.approximate_conditional_latent`), not the exact
    conditional."""
    zc = None if Z is None else jnp.asarray(Z - Z.mean(0))
    return _draws(gen, features, params, samples, key, field_draws, progress_bar,
                  "field draws (Gaussian approximation)",
                  lambda k, theta, sig, icpt, beta, noise: _one_approximate_draw(gen, features, y, zc, jitter, family,
                                                                                 k, theta, sig, icpt, beta))
