"""Plots: field samples and the covariance of generated fields against the exact truth."""

from __future__ import annotations


import jax
import numpy as np

__all__ = ["plot_fields", "plot_covariance"]


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
