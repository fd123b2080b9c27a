"""The field a collapsed fit integrated out, recovered afterwards: for each posterior draw of θ (all,
or some evenly spaced), one exact draw of the latent z | y under the model's own generator, and the
field at the data sites from it.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from pinnprob.inference.collapsed import conditional_latent
from pinnprob.inference.distribution import GenerativeField
from pinnprob.inference.model import obs_scale

__all__ = ["recover_field"]


# module-level and jitted on every argument (the generator's tables are not compiled in as constants),
# so that fits of the same shapes (cross-validation folds) reuse one compilation
@eqx.filter_jit
def _one_draw(gen, sc, G, tail, feats, y, zc, jitter, k, theta, sig, icpt, beta, noise):
    field = GenerativeField(gen, feats, theta, sig, jitter=jitter)
    eta = icpt + (0.0 if zc is None else zc @ beta)
    z = conditional_latent(k, field, y - eta, obs_scale(noise, sig, theta, tail), gram=G, site_covariance=sc)
    return field.from_latent(z), z


def recover_field(gen, G, features, params, samples, y, Z, tail, key, field_draws, jitter, site_covariance=None):
    """Field (and latent) at the data sites for the posterior draws (all, or ``field_draws`` evenly
    spaced), by an exact draw of z | y under the model's own generator ``gen``, Gram matrix ``G`` and
    site covariance (:func:`~pinnprob.inference.collapsed.conditional_latent`);
    ``params`` (:class:`~pinnprob.inference.model.ModelParams`) maps the draws to θ."""
    C, S = samples["sigma"].shape[:2]
    idx = np.arange(S) if field_draws is None else np.linspace(0, S - 1, min(field_draws, S)).astype(int)
    zc = None if Z is None else jnp.asarray(Z - Z.mean(0))

    fields = np.full((C, S, features.shape[0]), np.nan)
    latents = np.full((C, S, gen.latent_dim), np.nan)
    for c in range(C):
        thetas = params.theta_from_draws({n: samples[n][c] for n in params.priors}, S)
        for s in idx:
            beta = samples["beta"][c, s] if "beta" in samples else jnp.zeros(0)
            f, z = _one_draw(gen, site_covariance, G, tail, features, y, zc, jitter,
                             jax.random.fold_in(key, c * S + s), thetas[s], samples["sigma"][c, s],
                             samples["intercept_centered"][c, s], beta, samples["noise"][c, s])
            fields[c, s], latents[c, s] = np.asarray(f), np.asarray(z)
    return fields, latents  # full (chain, draw) shape, NaN where a draw was not recovered
