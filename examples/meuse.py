# %% [markdown]
# # Zinc in the Meuse flood plain: a posterior map from 155 soil samples
#
# Model log zinc with the distance to the river as a covariate and a Matérn field whose prior is the
# shipped generative prior, with `pinnprob.fit` (NUTS, smoothness ν free); report the posterior of
# range, σ, ν and noise; map the prediction and its uncertainty. The data come from scikit-gstat
# (`pip install "pinnprob[meuse]"`). Runs as a script or opens as a notebook (jupytext percent
# format). `PINNPROB_EXAMPLE_SMALL=1` shrinks it for the tests. The cross-validation against exact
# Gaussian-process kriging is `benchmarks/meuse.py` (docs/case_studies/meuse.md).

# %%
import os
import warnings

import arviz as az
import numpy as np

import pinnprob
from pinnprob.datasets import meuse

SMALL = os.environ.get("PINNPROB_EXAMPLE_SMALL") == "1"
warmup, draws, grid = (10, 10, 20) if SMALL else (500, 500, 120)

df = meuse()  # a fresh pandas DataFrame: x, y (metres, Dutch RD), zinc (ppm), dist (normalised), ...
if SMALL:
    df = df.iloc[::4]  # a smoke test on 39 of the 155 sites
X = df[["x", "y"]].to_numpy(float) / 1000.0  # km
y = np.log(df["zinc"].to_numpy(float))
z = np.sqrt(df["dist"].to_numpy(float))  # √dist: log zinc falls off about linearly in it
print(f"{len(y)} sites over {np.ptp(X[:, 0]):.1f} × {np.ptp(X[:, 1]):.1f} km; log zinc {y.min():.2f} .. {y.max():.2f}")

# %% [markdown]
# ## Fit
#
# Default priors (PC priors for range and σ scaled to the data, ν uniform over the prior's range,
# half-normal noise). The field is integrated out while sampling and recovered afterwards.

# %%
idata = pinnprob.fit(X, y, covariates=z, num_warmup=warmup, num_samples=draws, seed=0, progress_bar=not SMALL)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # one chain: no R-hat
    print(az.summary(idata, var_names=["range", "sigma", "nu", "noise", "intercept", "beta"]))

# %% [markdown]
# Posterior diagnostics with ArviZ.

# %%
from pinnprob.plotting import plot_pair, plot_prediction_map, plot_trace

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    plot_trace(idata).savefig("meuse_trace.png", dpi=80)
    plot_pair(idata).savefig("meuse_pair.png", dpi=80)

# %% [markdown]
# ## Prediction map
#
# A grid over the samples' bounding box. `dist` is known only at the samples (scikit-gstat ships no
# `meuse.grid`), so on the grid √dist is taken from the **nearest sample** — an approximation that
# makes the covariate's part of the map blocky — and cells farther than 250 m from every sample are
# left blank. `predict` returns the posterior of the noise-free signal intercept + β√dist + field.

# %%
lo, hi = X.min(0), X.max(0)
gx = np.linspace(lo[0], hi[0], grid)
gy = np.linspace(lo[1], hi[1], int(grid * (hi[1] - lo[1]) / (hi[0] - lo[0])))
G = np.stack(np.meshgrid(gx, gy, indexing="ij"), -1).reshape(-1, 2)
d2 = ((G[:, None, :] - X[None, :, :]) ** 2).sum(-1)
nearest = d2.argmin(1)
far = np.sqrt(d2.min(1)) > 0.25
pred = pinnprob.predict(idata, G, covariates=z[nearest], seed=0)
for stat, cmap in (("mean", "viridis"), ("sd", "magma")):
    fig = plot_prediction_map(G, np.where(far, np.nan, pred[stat]), data_sites=X, grid_shape=(len(gx), len(gy)),
                              title=f"posterior {stat} of log zinc", label=f"log zinc ({stat})", cmap=cmap,
                              xlabel="x (km)", ylabel="y (km)")
    fig.savefig(f"meuse_map_{stat}.png", dpi=100)
print(f"posterior sd on the map: {np.nanmin(np.where(far, np.nan, pred['sd'])):.2f} .. "
      f"{np.nanmax(np.where(far, np.nan, pred['sd'])):.2f}")
