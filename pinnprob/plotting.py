"""Plots: field samples, the covariance of generated fields against the exact truth, prediction maps
and posterior diagnostics (through ArviZ). Pure functions: each returns a matplotlib figure and
writes nothing."""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["POSTERIOR_VARS", "plot_covariance", "plot_fields", "plot_pair", "plot_prediction_map", "plot_trace"]

POSTERIOR_VARS = ("range", "sigma", "nu", "noise", "intercept", "beta")


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        try:
            matplotlib.use("Agg")
        except Exception:  # pragma: no cover - an interactive backend already in use
            pass
    import matplotlib.pyplot as plt

    return plt


def plot_fields(prior, key, settings, *, grid: int = 128, num: int = 3, sigma: float = 1.0):
    """A figure of ``num`` fields on a grid × grid image for each (range, ν) in ``settings``."""
    plt = _plt()
    g = (np.arange(grid) + 0.5) / grid
    X = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    fig, axes = plt.subplots(len(settings), num, figsize=(3 * num, 3 * len(settings)), squeeze=False)
    for i, (r, n) in enumerate(settings):
        U = np.asarray(prior.sample(jax.random.fold_in(key, i), X, range=r, nu=n, sigma=sigma, num_samples=num))
        for j in range(num):
            ax = axes[i, j]
            ax.imshow(U[j].reshape(grid, grid).T, origin="lower", extent=(0, 1, 0, 1), cmap="RdBu_r",
                      vmin=-3 * sigma, vmax=3 * sigma)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(f"range={r:g}, ν={n:g}")
    fig.suptitle("Fields drawn from the generative prior")
    fig.tight_layout()
    return fig


def plot_covariance(prior, key, settings, *, num_samples: int = 4000, num_sites: int = 400, sigma: float = 1.0):
    """Empirical covariance of generated fields against distance, beside the exact box covariance
    and the Matérn covariance on R^d, for sites in the central part [0.25, 0.75]² of the square."""
    from pinnprob import truth

    plt = _plt()
    rng = np.random.default_rng(0)
    X = rng.uniform(0.25, 0.75, (num_sites, 2))
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    iu = np.triu_indices(num_sites)
    fig, axes = plt.subplots(1, len(settings), figsize=(4 * len(settings), 3.5), squeeze=False)
    for i, (r, n) in enumerate(settings):
        U = np.asarray(prior.sample(jax.random.fold_in(key, i), X, range=r, nu=n, sigma=sigma,
                                    num_samples=num_samples), np.float64)
        Ce = U.T @ U / num_samples
        Cb = truth.box_covariance(X, X, prior.config.domain, range=r, sigma=sigma, nu=n)
        bins = np.linspace(0, min(0.5, 2.5 * r), 26)
        idx = np.digitize(D[iu], bins)
        mids, emp, box = [], [], []
        for b in range(1, len(bins)):
            m = idx == b
            if m.sum() > 5:
                mids.append(D[iu][m].mean())
                emp.append(Ce[iu][m].mean())
                box.append(Cb[iu][m].mean())
        h = np.linspace(0, bins[-1], 200)
        ax = axes[0, i]
        ax.plot(h, truth.matern_covariance(h, range=r, sigma=sigma, nu=n), "k-", lw=1, label="Matérn on R²")
        ax.plot(mids, box, "C0--", label="exact on the box")
        ax.plot(mids, emp, "C3o", ms=3, label=f"prior ({num_samples} fields)")
        ax.set_title(f"range={r:g}, ν={n:g}")
        ax.set_xlabel("distance")
        if i == 0:
            ax.set_ylabel("covariance")
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_prediction_map(sites, values, *, data_sites=None, grid_shape=None, title=None, label=None,
                        cmap="viridis", xlabel="x", ylabel="y", ax=None):
    """A map of ``values`` (n,) at ``sites`` (n, 2), with the data sites (k, 2) overlaid as dots.

    With ``grid_shape=(nx, ny)`` the sites are a regular grid in ``np.meshgrid(gx, gy, indexing="ij")``
    order (x varies slowest) and the map is an image; otherwise the values are drawn as coloured
    points. NaN values are left blank (e.g. a mask far from the data). Returns the figure."""
    plt = _plt()
    sites = np.asarray(sites, np.float64)
    values = np.asarray(values, np.float64)
    if sites.ndim != 2 or sites.shape[1] != 2 or values.shape != (sites.shape[0],):
        raise ValueError(f"sites must be (n, 2) and values (n,), got {sites.shape} and {values.shape}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.6, 4.8))
    else:
        fig = ax.figure
    if grid_shape is not None:
        nx, ny = grid_shape
        if nx * ny != sites.shape[0]:
            raise ValueError(f"grid_shape {grid_shape} does not match {sites.shape[0]} sites")
        gx = sites.reshape(nx, ny, 2)[:, 0, 0]
        gy = sites.reshape(nx, ny, 2)[0, :, 1]
        im = ax.pcolormesh(gx, gy, values.reshape(nx, ny).T, shading="nearest", cmap=cmap)
    else:
        im = ax.scatter(sites[:, 0], sites[:, 1], c=values, s=28, cmap=cmap, edgecolors="none")
    if data_sites is not None:
        d = np.asarray(data_sites, np.float64)
        ax.plot(d[:, 0], d[:, 1], "o", ms=2.5, mfc="white", mec="black", mew=0.5, label="data sites")
    fig.colorbar(im, ax=ax, label=label)
    ax.set_aspect("equal")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def _present(idata, var_names):
    from pinnprob.inference.arviz_data import group

    names = POSTERIOR_VARS if var_names is None else var_names
    post = group(idata, "posterior")
    return [v for v in names if v in post]


def _figure(plotted):
    """The matplotlib figure of an ArviZ plot: axes (ArviZ 0.x) or a PlotCollection (ArviZ ≥ 1.0)."""
    viz = getattr(plotted, "viz", None)
    if viz is not None:
        return viz["figure"].item()
    return np.asarray(plotted).ravel()[0].figure


def plot_trace(idata, var_names=None):
    """ArviZ trace plot (density and trace per chain) of the model parameters present in ``idata``
    (InferenceData or DataTree; default: range, sigma, nu, noise, intercept, beta). Returns the figure."""
    import arviz as az

    from pinnprob.inference.arviz_data import arviz_major, as_installed

    _plt()
    idata = as_installed(idata)
    names = _present(idata, var_names)
    if arviz_major() >= 1:
        fig = _figure(az.plot_trace_dist(idata, var_names=names, compact=True, backend="matplotlib"))
    else:
        fig = _figure(az.plot_trace(idata, var_names=names, compact=True))
    fig.tight_layout()
    return fig


def plot_pair(idata, var_names=None):
    """ArviZ pair plot (scatter of every pair, marginals on the diagonal) of the covariance parameters
    present in ``idata`` (default: range, sigma, nu, noise); divergent transitions are marked when the
    sampler recorded them. Returns the figure."""
    import arviz as az

    from pinnprob.inference.arviz_data import arviz_major, as_installed, group, has_group

    _plt()
    idata = as_installed(idata)
    names = _present(idata, ("range", "sigma", "nu", "noise") if var_names is None else var_names)
    div = has_group(idata, "sample_stats") and "diverging" in group(idata, "sample_stats")
    if arviz_major() >= 1:
        return _figure(az.plot_pair(idata, var_names=names, marginal=True, backend="matplotlib",
                                    visuals={"divergence": div}))
    axes = az.plot_pair(idata, var_names=names, kind="scatter", marginals=True, divergences=div,
                        scatter_kwargs={"alpha": 0.4, "s": 6})
    return _figure(axes)
