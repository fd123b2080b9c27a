"""The samplers a fit runs on its model: NumPyro's NUTS, BlackJAX's NUTS (window adaptation, one chain
after another) and SVI (a mean-field normal guide, then draws from it). Each returns
``(samples, stats)``: the draws of every sample and deterministic site shaped (chain, draw, ...), and
the per-draw sampler statistics (``diverging``; BlackJAX also ``n_steps``; SVI ``elbo_loss``, per step).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro
from numpyro.infer import MCMC, NUTS, SVI, Predictive, Trace_ELBO
from numpyro.infer.autoguide import AutoNormal

__all__ = ["run_nuts", "run_blackjax", "run_svi"]


def run_nuts(model, y, key, num_warmup, num_samples, num_chains, progress_bar):
    """NumPyro's NUTS, ``num_chains`` chains run one after another."""
    mcmc = MCMC(NUTS(model), num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                chain_method="sequential", progress_bar=progress_bar)
    mcmc.run(key, y=y)
    samples = mcmc.get_samples(group_by_chain=True)
    extra = mcmc.get_extra_fields(group_by_chain=True)
    stats = {"diverging": extra["diverging"]}
    return samples, stats


def _blackjax_chain(model, y, key, num_warmup, num_samples, progress_bar):
    """One BlackJAX NUTS chain: draws shaped (draw, ...) and stats (draw,)."""
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


def run_blackjax(model, y, key, num_warmup, num_samples, num_chains, progress_bar):
    """BlackJAX's NUTS with window adaptation, ``num_chains`` chains (keys split from ``key``) run one
    after another and stacked."""
    runs = [_blackjax_chain(model, y, k, num_warmup, num_samples, progress_bar)
            for k in jax.random.split(key, num_chains)]
    samples = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *[r[0] for r in runs])
    stats = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *[r[1] for r in runs])
    return samples, stats


def run_svi(model, y, key, num_samples, num_chains, svi_steps, progress_bar):
    """SVI with an ``AutoNormal`` guide (Adam, step 0.01, ``svi_steps`` steps), then
    ``num_chains × num_samples`` draws of every site from the fitted guide, shaped as chains."""
    guide = AutoNormal(model)
    svi = SVI(model, guide, numpyro.optim.Adam(0.01), Trace_ELBO())
    res = svi.run(key, svi_steps, y=y, progress_bar=progress_bar)
    tr = numpyro.handlers.trace(numpyro.handlers.seed(model, 0)).get_trace(y=y)
    sites = [k for k, v in tr.items() if v["type"] in ("sample", "deterministic") and k != "y"]
    draws = Predictive(model, guide=guide, params=res.params, num_samples=num_samples * num_chains,
                       return_sites=sites)(jax.random.fold_in(key, 1), y=y)
    samples = {k: v.reshape((num_chains, num_samples) + v.shape[1:]) for k, v in draws.items()}
    stats = {"elbo_loss": res.losses}
    return samples, stats
