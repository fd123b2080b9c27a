# %% [markdown]
# # Your own NumPyro model with a generative field prior, sampled by NumPyro and by BlackJAX
#
# The shipped prior gives `prior.distribution(X, range=, nu=, sigma=)`, a NumPyro distribution over
# the field at the sites. `latent_field(model)` rewrites every such site `f` into a standard-normal
# latent `f_latent` and a deterministic `f` (the non-centred form NUTS likes). Runs as a script or
# opens as a notebook (jupytext percent format).

# %%
import os

import arviz as az
import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS
from numpyro.infer.util import initialize_model

import pinnprob
from pinnprob import truth
from pinnprob.inference import latent_field, pc_priors, to_arviz

SMALL = os.environ.get("PINNPROB_EXAMPLE_SMALL") == "1"
n, warm, draws = (30, 20, 10) if SMALL else (150, 500, 500)

# %% [markdown]
# Synthetic data in the unit square's central part (a buffer keeps the Neumann boundary away).

# %%
rng = np.random.default_rng(1)
X = rng.uniform(0.25, 0.75, (n, 2))
C = truth.box_covariance(X, X, pinnprob.Box.unit(2), range=0.3, sigma=1.0, nu=1.5)
y = np.linalg.cholesky(C + 1e-9 * np.eye(n)) @ rng.standard_normal(n) + 0.2 * rng.standard_normal(n)

# %% [markdown]
# The model: PC priors for (range, σ), fixed ν = 1.5, Gaussian noise. A prior truncated to ranges
# ≥ 0.2 keeps few modes, so the example is quick.

# %%
min_range = 0.4 if SMALL else 0.2
prior = pinnprob.pretrained("matern2d").truncate(min_range, nu=1.5)
range_prior, sigma_prior = pc_priors(range0=0.2, p_range=0.05, sigma0=2.0, p_sigma=0.05)
range_prior = pinnprob.inference.truncate_to_range(range_prior, min_range, 1.0, "range")  # warns: mass cut


def model(y=None):
    rho = numpyro.sample("range", range_prior)
    sigma = numpyro.sample("sigma", sigma_prior)
    noise = numpyro.sample("noise", dist.HalfNormal(1.0))
    f = numpyro.sample("f", prior.distribution(X, range=rho, nu=1.5, sigma=sigma))
    numpyro.sample("y", dist.Normal(f, noise), obs=y)


reparam_model = latent_field(model)

# %% [markdown]
# NumPyro's NUTS.

# %%
mcmc = MCMC(NUTS(reparam_model), num_warmup=warm, num_samples=draws, progress_bar=not SMALL)
mcmc.run(jax.random.key(0), y=jnp.asarray(y))
idata_numpyro = az.from_numpyro(mcmc)
print(az.summary(idata_numpyro, var_names=["range", "sigma", "noise"]))

# %% [markdown]
# The same model with BlackJAX's NUTS and window adaptation, on NumPyro's log density.

# %%
info = initialize_model(jax.random.key(1), reparam_model, model_kwargs={"y": jnp.asarray(y)})
logdensity = lambda z: -info.potential_fn(z)  # noqa: E731
(state, params), _ = blackjax.window_adaptation(blackjax.nuts, logdensity).run(
    jax.random.key(2), info.param_info.z, num_steps=warm)
step = jax.jit(blackjax.nuts(logdensity, **params).step)


def one(state, key):
    state, _ = step(key, state)
    return state, state.position


_, positions = jax.lax.scan(one, state, jax.random.split(jax.random.key(3), draws))
samples = jax.vmap(info.postprocess_fn)(positions)
# to_arviz builds the ArviZ object of the installed ArviZ: InferenceData (0.x) or DataTree (≥ 1.0)
idata_blackjax = to_arviz({"posterior": {k: np.asarray(v)[None] for k, v in samples.items()}})
print(az.summary(idata_blackjax, var_names=["range", "sigma", "noise"]))
