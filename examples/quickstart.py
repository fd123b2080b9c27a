# %% [markdown]
# # Quickstart: the shipped Matérn prior
#
# Draw fields from `pinnprob.pretrained("matern2d")`, and check their covariance against the
# exact solution of the SPDE on the unit square. Runs as a script or opens as a notebook
# (jupytext percent format). `PINNPROB_EXAMPLE_SMALL=1` shrinks it for the tests.

# %%
import os

import jax
import numpy as np

import pinnprob
from pinnprob import truth

SMALL = os.environ.get("PINNPROB_EXAMPLE_SMALL") == "1"
prior = pinnprob.pretrained("matern2d")
print(prior)
print("claimed parameter range:", prior.param_range)

# %% [markdown]
# Fields at random sites. `range` is the practical range in unit-square units, `sigma` the
# marginal standard deviation on R², `nu` the smoothness.

# %%
rng = np.random.default_rng(0)
X = rng.uniform(0.2, 0.8, (50 if SMALL else 200, 2))
num = 500 if SMALL else 5000
U = np.asarray(prior.sample(jax.random.key(0), X, range=0.2, nu=1.5, sigma=1.0, num_samples=num))
print("fields:", U.shape)

# %% [markdown]
# Their empirical covariance against the exact box covariance (method of images).

# %%
C = truth.box_covariance(X, X, prior.config.domain, range=0.2, sigma=1.0, nu=1.5)
Ce = U.T @ U / num
err = np.linalg.norm(Ce - C) / np.linalg.norm(C)
print(f"relative Frobenius error of the empirical covariance ({num} fields): {err:.3f}")
Cg = np.asarray(prior.covariance(X, range=0.2, nu=1.5))
print(f"relative Frobenius error of the generator's exact covariance: "
      f"{np.linalg.norm(Cg - C) / np.linalg.norm(C):.4f}")

# %% [markdown]
# Pictures: fields for three parameter settings, and covariance against distance.

# %%
from pinnprob.plotting import plot_covariance, plot_fields  # noqa: E402

fig = plot_fields(prior, jax.random.key(1), [(0.1, 1.0), (0.3, 2.0)], grid=48 if SMALL else 128, num=2)
fig.savefig("quickstart_fields.png", dpi=100)
fig = plot_covariance(prior, jax.random.key(2), [(0.2, 1.5)], num_samples=300 if SMALL else 4000,
                      num_sites=100 if SMALL else 400)
fig.savefig("quickstart_covariance.png", dpi=100)
