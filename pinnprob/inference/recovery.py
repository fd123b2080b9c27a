"""The field a collapsed fit integrated out, recovered afterwards: for each posterior draw of θ (all,
or some evenly spaced), one exact draw of the latent z | y under the model's own generator (for a
Poisson or Bernoulli likelihood integrated out by a Laplace approximation, one draw from that
Gaussian approximation), and the field at the data sites from it; and the draw's conditional mean
E[z | y, θ, …] (the approximation's mode), from which ``predict`` forms its mean without the draws'
Monte Carlo noise.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from pinnprob.inference.collapsed import (conditional_latent, data_moments, gram_reference, moments_perturbation,
                                         pcg_tolerance, perturbation, perturbed_solve)
from pinnprob.inference.distribution import GenerativeField
from pinnprob.inference.laplace_collapsed import approximate_conditional_latent
from pinnprob.inference.model import obs_scale

__all__ = ["recover_field", "recover_field_approximately"]

# On the Gram path with at least this many modes, the field draws share one Cholesky factor of the
# posterior precision (at the draws' mean) and are drawn by perturbation, in batches, by conjugate
# gradients preconditioned with it (collapsed.perturbed_latent): each draw then costs O(k m²) in
# matrix products shared by the batch (its right-hand side from the data's moments and a factor of G,
# collapsed.data_moments), plus O(n m) for its field at the sites, not its own m³/3 factorisation (at
# 10⁵ sites and 8 269 modes, 100 draws by their own factors took ~300 s). Below it the factorisations
# are cheap.
REFERENCE_MIN_MODES = 1000
# a batch's draws form their fields (Φz, from the 1-D tables: a sites × the longest table temporary
# each; the right-hand sides Φᵀv too where G has no factor) a chunk at a time, of at most BATCH_NUMBERS numbers (2²⁷ float64s,
# 1 GB); a batch, whose conjugate-gradient steps read G and the reference factor once for all its
# draws, has at most BATCH_MAX draws (100 draws at 10⁵ sites and 8 269 modes: 32.1 s in batches of
# 12 whole draws, 24.5 s in 4 batches of 25 with chunks of 12; docs/results/satellite.md)
BATCH_NUMBERS = 2**27
BATCH_MAX = 32


# module-level and jitted on every argument (the generator's tables are not compiled in as constants),
# so that fits of the same shapes (cross-validation folds) reuse one compilation
@eqx.filter_jit
def _one_draw(gen, sc, G, tail, feats, y, zc, jitter, k, theta, sig, icpt, beta, noise):
    field = GenerativeField(gen, feats, theta, sig, jitter=jitter)
    eta = icpt + (0.0 if zc is None else zc @ beta)
    z, zbar = conditional_latent(k, field, y - eta, obs_scale(noise, sig, theta, tail), gram=G, site_covariance=sc,
                                 with_mean=True)
    return field.from_latent(z), z, zbar


@eqx.filter_jit
def _batch_draws(gen, G, tail, feats, y, zc, jitter, reference, moments, chunk, k, theta, sig, icpt, beta, noise):
    """_one_draw for a batch of draws (leading axis of k … noise) by perturbation: (fields, latents,
    latents' conditional means, relative residuals, the larger of each draw's two solves). The
    right-hand sides come from the data's ``moments`` (O(m²) each,
    :func:`~pinnprob.inference.collapsed.moments_perturbation`) or, where G had no factor (None), from
    products with the trunk (O(n m) and a sites × table temporary each) ``chunk`` draws at a time; the
    fields are formed ``chunk`` draws at a time, the solves all at once (their steps read G and the
    reference factor once for the whole batch)."""
    def field_of(theta, sig):
        return GenerativeField(gen, feats, theta, sig, jitter=jitter)

    def rhs(a):  # (the draw's right-hand side, the mean's: diag(d)Φᵀresid/s)
        k, theta, sig, icpt, beta, noise = a
        s = obs_scale(noise, sig, theta, tail)
        field = field_of(theta, sig)
        if moments is not None:
            return jnp.stack(moments_perturbation(k, field, moments, icpt, beta, s, with_mean=True))
        eta = icpt + (0.0 if zc is None else zc @ beta)
        return jnp.stack(perturbation(k, field, y - eta, s, with_mean=True))

    def solve(b, theta, sig, noise):  # b (2, m): both against the same P
        return jax.vmap(lambda v: perturbed_solve(field_of(theta, sig), v, obs_scale(noise, sig, theta, tail), G,
                                                  reference))(b)

    args = (k, theta, sig, icpt, beta, noise)
    b = jax.vmap(rhs)(args) if moments is not None else jax.lax.map(rhs, args, batch_size=chunk)
    z, res = jax.vmap(solve, (0, 0, 0, None if noise is None else 0))(b, theta, sig, noise)
    f = jax.lax.map(lambda a: field_of(a[1], a[2]).from_latent(a[0]), (z[:, 0], theta, sig), batch_size=chunk)
    return f, z[:, 0], z[:, 1], jnp.max(res, 1)


@eqx.filter_jit
def _reference(gen, G, tail, feats, jitter, theta, sig, noise):
    """The Gram path's posterior precision of z at (θ, σ, noise), factorised
    (:func:`~pinnprob.inference.collapsed.gram_reference`)."""
    field = GenerativeField(gen, feats, theta, sig, jitter=jitter)
    return gram_reference(field, G, obs_scale(noise, sig, theta, tail))


def _draw_arguments(params, samples, key, field_draws):
    """[(c, s, (key, θ, σ, intercept_centered, β, noise or None))] for the posterior draws to recover
    (all, or ``field_draws`` evenly spaced per chain), ``params`` mapping the draws to θ."""
    C, S = samples["sigma"].shape[:2]
    idx = np.arange(S) if field_draws is None else np.linspace(0, S - 1, min(field_draws, S)).astype(int)
    todo = []
    for c in range(C):
        thetas = params.theta_from_draws({n: samples[n][c] for n in params.priors}, S)
        for s in idx:
            beta = samples["beta"][c, s] if "beta" in samples else jnp.zeros(0)
            noise = samples["noise"][c, s] if "noise" in samples else None
            todo.append((c, s, (jax.random.fold_in(key, c * S + s), thetas[s], samples["sigma"][c, s],
                                samples["intercept_centered"][c, s], beta, noise)))
    return todo


def _draws(shape, todo, progress_bar, desc, one, batch=None, batch_size=1):
    """Fields (C, S, n), latents (C, S, m) and the latents' conditional means (C, S, m) (``shape`` =
    (C, S, n, m)) for the draws ``todo`` (:func:`_draw_arguments`), ``one(key, theta, sigma,
    intercept_centered, beta, noise)`` giving each draw's (field, latent, mean); NaN where not drawn.
    With ``batch`` (the same arguments, each with a leading axis of ``batch_size``, giving also each
    draw's relative residual), in batches, and the draws whose residual is above 10× its tolerance
    (:func:`~pinnprob.inference.collapsed.pcg_tolerance`) redrawn by ``one``. Returns (fields,
    latents, means, info), info saying how many draws were made, the batch size (0: none) and how
    many were redrawn."""
    from tqdm.auto import tqdm

    C, S, n, m = shape
    fields, latents, means = np.full((C, S, n), np.nan), np.full((C, S, m), np.nan), np.full((C, S, m), np.nan)
    bar = tqdm(total=len(todo), disable=not progress_bar, desc=desc)
    redo = todo
    if batch is not None:
        redo = []
        for start in range(0, len(todo), batch_size):
            part = todo[start:start + batch_size]
            part = part + [part[-1]] * (batch_size - len(part))  # one compiled shape: pad with the last draw
            args = [None if a[0] is None else jnp.stack(a) for a in zip(*(t[2] for t in part), strict=True)]
            f, z, zbar, res = (np.asarray(v) for v in batch(*args))
            for i, (c, s, a) in enumerate(todo[start:start + batch_size]):
                if res[i] <= 10 * pcg_tolerance(z.dtype):
                    fields[c, s], latents[c, s], means[c, s] = f[i], z[i], zbar[i]
                    bar.update(1)
                else:
                    redo.append((c, s, a))
    for c, s, a in redo:
        fields[c, s], latents[c, s], means[c, s] = (np.asarray(v) for v in one(*a))
        bar.update(1)
    bar.close()
    info = {"draws": len(todo), "batch_size": batch_size if batch is not None else 0,
            "redrawn": len(redo) if batch is not None else 0}
    return fields, latents, means, info  # full (chain, draw) shape, NaN where a draw was not recovered


def recover_field(gen, G, features, params, samples, y, Z, tail, key, field_draws, jitter, site_covariance=None,
                  progress_bar: bool = False):
    """Field (and latent) at the data sites for the posterior draws (all, or ``field_draws`` evenly
    spaced), by an exact draw of z | y under the model's own generator ``gen``, Gram matrix ``G`` and
    site covariance (:func:`~pinnprob.inference.collapsed.conditional_latent`; on the Gram path with
    ``REFERENCE_MIN_MODES`` modes or more, by perturbation in batches that share one reference factor
    and the data's moments: :func:`~pinnprob.inference.collapsed.perturbed_latent`,
    :func:`~pinnprob.inference.collapsed.data_moments`); ``params``
    (:class:`~pinnprob.inference.model.ModelParams`) maps the draws to θ. Returns (fields (C, S, n),
    latents (C, S, m), their conditional means E[z | y, θ, …] (C, S, m), info) as ``_draws``."""
    zc = None if Z is None else jnp.asarray(Z - Z.mean(0))

    def one(k, theta, sig, icpt, beta, noise):
        return _one_draw(gen, site_covariance, G, tail, features, y, zc, jitter, k, theta, sig, icpt, beta, noise)

    todo = _draw_arguments(params, samples, key, field_draws)
    batch, size = None, 1
    if G is not None and gen.latent_dim >= REFERENCE_MIN_MODES:
        _, theta, sig, _, _, noise = zip(*(t[2] for t in todo), strict=True)  # the reference: the draws' mean
        reference = _reference(gen, G, tail, features, jitter, jnp.mean(jnp.stack(theta), 0), jnp.mean(jnp.stack(sig)),
                               None if noise[0] is None else jnp.mean(jnp.stack(noise)))
        moments = data_moments(features, G, y, zc)
        longest = max(getattr(features, "grid", (1,)))  # separable: Φᵀv forms sites × a table's width
        chunk = int(max(1, BATCH_NUMBERS // (features.shape[0] * longest)))
        batches = math.ceil(len(todo) / BATCH_MAX)
        size = math.ceil(len(todo) / batches)  # the fewest batches, as even as can be

        def batch(*a):
            return _batch_draws(gen, G, tail, features, y, zc, jitter, reference, moments, min(chunk, size), *a)

    shape = samples["sigma"].shape[:2] + (features.shape[0], gen.latent_dim)
    return _draws(shape, todo, progress_bar, "field draws", one, batch, size)


@eqx.filter_jit
def _one_approximate_draw(gen, feats, y, zc, jitter, family, k, theta, sig, icpt, beta):
    field = GenerativeField(gen, feats, theta, sig, jitter=jitter)
    eta = icpt + (0.0 if zc is None else zc @ beta)
    z, mode = approximate_conditional_latent(k, field, eta * jnp.ones(feats.shape[0]), y, family, with_mean=True)
    return field.from_latent(z), z, mode


def recover_field_approximately(gen, features, params, samples, y, Z, family, key, field_draws, jitter,
                                progress_bar: bool = False):
    """As :func:`recover_field`, for a Poisson or Bernoulli likelihood that a Laplace approximation
    integrated out (``family``): one draw per posterior draw from the Gaussian approximation of z | y
    (:func:`~pinnprob.inference.laplace_collapsed.approximate_conditional_latent`), not the exact
    conditional; the means are its modes."""
    zc = None if Z is None else jnp.asarray(Z - Z.mean(0))
    shape = samples["sigma"].shape[:2] + (features.shape[0], gen.latent_dim)
    return _draws(shape, _draw_arguments(params, samples, key, field_draws), progress_bar,
                  "field draws (Gaussian approximation)",
                  lambda k, theta, sig, icpt, beta, noise: _one_approximate_draw(gen, features, y, zc, jitter, family,
                                                                                 k, theta, sig, icpt, beta))
