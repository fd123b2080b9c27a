"""The space-time prior: a trained generator of fields on (x, t) with its configuration, validation,
sampling, exact covariance, NumPyro distribution and I/O (those of :class:`~pinnprob.prior.GenerativePrior`).

Sites are in the unit box (the torus the SPDE lives on), times in the prior's time unit (that of its
``time_range`` and velocities). Observations are site-time pairs: stations that report at different
times are rows (x_i, t_i) with no grid, so missing values need nothing special.
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from pinnprob._validation import check_sigma, check_sites, is_traced
from pinnprob.generators.fourier_ou import FourierOUGenerator
from pinnprob.prior import GenerativePrior, prior_type

__all__ = ["SpaceTimePrior", "PairLagIndex", "check_times", "check_pairs"]


def check_times(T, n: int | None = None, name: str = "T", increasing: bool = False) -> jax.Array:
    """Times as a new 1-D float array: finite, of length ``n`` when given, strictly increasing when
    ``increasing``; one ValueError otherwise. The caller's array is not modified."""
    if is_traced(T):
        return T
    try:
        t = np.array(T, dtype=np.float64, copy=True).reshape(-1) if np.ndim(T) <= 1 else None
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a 1-D numeric array of times: {e}") from None
    if t is None:
        raise ValueError(f"{name} must be 1-D (one time per row), got shape {np.shape(T)}")
    if n is not None and t.shape[0] != n:
        raise ValueError(f"{name} must give one time per site: {n} sites, {t.shape[0]} times")
    bad = ~np.isfinite(t)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} NaN or infinite time(s) (first: row {int(np.argmax(bad))})")
    if increasing and t.size > 1 and not np.all(np.diff(t) > 0):
        i = int(np.argmax(np.diff(t) <= 0))
        raise ValueError(f"{name} must be strictly increasing (row {i + 1}: {t[i + 1]:g} after {t[i]:g})")
    return jnp.asarray(t, dtype=jnp.result_type(float))


def check_pairs(X, T, dim: int) -> tuple[jax.Array, jax.Array]:
    """Site-time pairs (X (n, dim) in the unit box, T (n,)), checked: no pair twice (the field would be
    observed twice at one point, a singular covariance)."""
    X = check_sites(X, dim)
    T = check_times(T, X.shape[0])
    if not (is_traced(X) or is_traced(T)):
        keys = np.concatenate([np.asarray(X), np.asarray(T)[:, None]], 1)
        _, idx, counts = np.unique(keys, axis=0, return_index=True, return_counts=True)
        if np.any(counts > 1):
            row = int(idx[np.argmax(counts > 1)])
            raise ValueError(f"site-time pair at row {row} ({keys[row].tolist()}) appears {int(counts.max())} times; "
                             "each (site, time) may appear once (average repeated measurements first)")
    return X, T


@dataclass(frozen=True)
class PairLagIndex:
    """Where each entry of the covariance between site-time pairs (X_i, T_i) and (Y_j, S_j) lies in the
    table of a stationary law over the distinct site separations and time lags: C[i, j] =
    table[pair[i, j], lag[i, j]] with table (P, L) = C(H_a, lags_l). Stations observed on common days
    give few of both (12 stations × 365 days: 144 separations, 729 lags, for 1.9·10⁷ entries).

    ``H`` (P, d) the separations of the distinct sites of X from those of Y, ``lags`` (L,) the distinct
    T_i − S_j; ``pair`` and ``lag`` (n, p) int32. Built in NumPy from concrete arrays."""

    H: np.ndarray
    lags: np.ndarray
    pair: np.ndarray
    lag: np.ndarray

    @classmethod
    def build(cls, X, T, Y=None, S=None) -> "PairLagIndex":
        X, T = np.asarray(X, np.float64), np.asarray(T, np.float64)
        Y = X if Y is None else np.asarray(Y, np.float64)
        S = T if S is None else np.asarray(S, np.float64)
        xs, ix = np.unique(X, axis=0, return_inverse=True)
        ys, iy = np.unique(Y, axis=0, return_inverse=True)
        tx, jx = np.unique(T, return_inverse=True)
        ty, jy = np.unique(S, return_inverse=True)
        ix, iy, jx, jy = (a.reshape(-1) for a in (ix, iy, jx, jy))
        H = (xs[:, None, :] - ys[None, :, :]).reshape(-1, X.shape[1])
        # lags equal up to rounding (0.3·7 − 0.3·2 against 0.3·5) are one lag: keys rounded to 10⁻¹⁰ of the
        # largest time, the table evaluated at the first lag of each key (an error of that order, harmless)
        D = tx[:, None] - ty[None, :]
        tol = 1e-10 * max(float(np.max(np.abs(D))), 1e-300)
        _, first, inv = np.unique(np.round(D / tol), return_index=True, return_inverse=True)
        lags = D.reshape(-1)[first]
        inv = inv.reshape(tx.shape[0], ty.shape[0])
        pair = (ix[:, None] * ys.shape[0] + iy[None, :]).astype(np.int32)
        return cls(H, lags, pair, inv[jx[:, None], jy[None, :]].astype(np.int32))

    @property
    def table_size(self) -> int:
        return self.H.shape[0] * self.lags.shape[0]

    @property
    def pays(self) -> bool:
        """Whether the table is smaller than the matrix it fills (else compute the entries directly)."""
        return 2 * self.table_size < self.pair.size


class TableCovariance(eqx.Module):
    """θ ↦ the generator's covariance between site-time pairs, gathered from its (separation × lag) table
    (:class:`PairLagIndex`): an Equinox module, so jitted functions that take it compile once per shape."""

    gen: FourierOUGenerator
    H: Array
    lags: Array
    pair: Array
    lag: Array

    def __call__(self, theta):
        return self.gen.covariance_table(self.H, self.lags, theta)[self.pair, self.lag]


class PairwiseCovariance(eqx.Module):
    """θ ↦ the generator's covariance between (X, T) and (Y, S), entry by entry."""

    gen: FourierOUGenerator
    X: Array
    T: Array
    Y: Array
    S: Array

    def __call__(self, theta):
        return self.gen.covariance(self.X, self.T, self.Y, self.S, theta)


def stationary_covariance(gen, X, T, Y=None, S=None):
    """``cov(theta) -> (n, p)``: the generator's covariance between the concrete site-time pairs (X, T)
    and (Y, S) as a function of θ, through the pair-lag table when it pays (:class:`TableCovariance`),
    else entry by entry (:class:`PairwiseCovariance`). The index is built once here, so a model or a
    loop over posterior draws only evaluates the table."""
    idx = PairLagIndex.build(X, T, Y, S)
    if idx.pays:
        return TableCovariance(gen, jnp.asarray(idx.H), jnp.asarray(idx.lags), jnp.asarray(idx.pair),
                               jnp.asarray(idx.lag))
    X, T = jnp.asarray(X), jnp.asarray(T)
    Y, S = (X, T) if Y is None else (jnp.asarray(Y), jnp.asarray(S))
    return PairwiseCovariance(gen, X, T, Y, S)


class SpaceTimePrior(GenerativePrior):
    """A trained prior for a space-time SPDE (:class:`~pinnprob.spde.advection_diffusion.AdvectionDiffusion`):
    ``sample(key, X, times, ...)``, ``covariance(X, T, ...)`` and ``distribution(X, T, ...)``, with the
    SPDE's parameters by name (``range=``, ``time_range=``, ``velocity_x1=``, ``alpha=``, ...) and σ."""

    data_kind = "space-time"

    @property
    def latent_dim(self) -> int:
        """Real latent variables per time: two per half-lattice mode and one for the zero mode."""
        return 2 * self.generator.num_modes + 1

    def sample(self, key: PRNGKeyArray, X, times, *, sigma=1.0, num_samples: int = 1,
               **params) -> Float[Array, "num_samples T n"]:
        """Fields at sites X (n, d) and strictly increasing times (T,), shape (num_samples, T, n): exact
        draws of the generator's law (each mode stepped exactly between the times)."""
        X = check_sites(X, self.dim)
        times = check_times(times, increasing=True, name="times")
        check_sigma(sigma)
        if not (isinstance(num_samples, (int, np.integer)) and num_samples >= 1):
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        theta = self.theta(X, **params)
        return float(sigma) * _sample(self.generator, key, X, times, theta, int(num_samples))

    def covariance(self, X, T, Y=None, S=None, *, sigma=1.0, **params) -> Float[Array, "n p"]:
        """The generator's exact covariance between the site-time pairs (X, T) and (Y, S) (default: the
        same), σ² C, shape (n, p)."""
        X = check_sites(X, self.dim)
        T = check_times(T, X.shape[0])
        Y = X if Y is None else check_sites(Y, self.dim, "Y")
        S = T if S is None else check_times(S, Y.shape[0], "S")
        check_sigma(sigma)
        theta = self.theta(X, **params)
        if any(is_traced(a) for a in (X, T, Y, S)):
            return jnp.asarray(sigma) ** 2 * _covariance(self.generator, X, T, Y, S, theta)
        return jnp.asarray(sigma) ** 2 * _evaluate(stationary_covariance(self.generator, X, T, Y, S), theta)

    def distribution(self, X, T, *, sigma=1.0, jitter: float = 1e-5, validate_args: bool | None = None,
                     **params):
        """The field at the site-time pairs (X (n, d), T (n,)) as a NumPyro ``MultivariateNormal`` (event
        shape (n,)), its covariance the generator's exact one (plus ``jitter`` σ² on the diagonal). The
        parameters and σ may be traced (sampled in a model)."""
        import numpyro.distributions as dist

        X, T = check_pairs(X, T, self.dim)
        check_sigma(sigma)
        theta = self.theta(X, **params)
        if is_traced(X) or is_traced(T):
            C = _covariance(self.generator, X, T, X, T, theta)
        else:
            C = _evaluate(stationary_covariance(self.generator, X, T), theta)
        C = jnp.asarray(sigma) ** 2 * (C + jitter * jnp.eye(C.shape[0], dtype=C.dtype))
        return dist.MultivariateNormal(jnp.zeros(C.shape[0], C.dtype), covariance_matrix=C,
                                       validate_args=validate_args)


@eqx.filter_jit
def _covariance(gen, X, T, Y, S, theta):
    return gen.covariance(X, T, Y, S, theta)


@eqx.filter_jit
def _evaluate(cov, theta):
    return cov(theta)


@eqx.filter_jit
def _sample(gen, key, X, times, theta, num):
    return gen.sample(key, X, times, theta, num)


@prior_type.register(FourierOUGenerator)
def _(generator):
    return SpaceTimePrior


def _register_evaluator():
    from pinnprob.api import _evaluator
    from pinnprob.spde.advection_diffusion import AdvectionDiffusion

    @_evaluator.register(AdvectionDiffusion)
    def _(spde, config):
        return covariance_error_evaluator(spde)


def grid_sites(dim: int, num: int = 8) -> np.ndarray:
    """The num^d grid of cell centres ((i + ½)/num) of the unit torus, shape (num^d, d)."""
    g = (np.arange(num) + 0.5) / num
    return g[:, None] if dim == 1 else np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)


def covariance_error_evaluator(spde, thetas=None, num_lhs: int = 8, seed: int = 0):
    """``evaluate(gen) -> {"cov_err_max", "cov_err_median"}``: the relative Frobenius error of the generator's
    covariance on the grid of 8^d sites × 6 times (j ρ_t/4, j = 0..5) against the exact torus covariance
    (:func:`pinnprob.truth.advection_diffusion_covariance`), at ``thetas`` (natural coordinates, (k, p);
    default: a Latin hypercube of ``num_lhs``, with the box's corners first when it has at most 4 axes)."""
    from pinnprob import truth

    corners = spde.space.dim <= 4
    thetas = spde.space.latin_hypercube(num_lhs, seed=seed, corners=corners) if thetas is None else np.asarray(thetas)
    X = grid_sites(spde.dim)
    refs = []
    for th in thetas:
        kw = exact_parameters(spde, th)
        T = np.repeat(np.arange(6) * kw["time_range"] / 4, X.shape[0])
        XX = np.tile(X, (6, 1))
        refs.append((XX, T, truth.advection_diffusion_covariance(XX, T, **kw)))

    def evaluate(gen) -> dict:
        errs = []
        for th, (XX, T, C) in zip(thetas, refs):
            Xj, Tj = jnp.asarray(XX), jnp.asarray(T)
            G = np.asarray(_covariance(gen, Xj, Tj, Xj, Tj, jnp.asarray(th)), np.float64)
            errs.append(float(np.linalg.norm(G - C) / np.linalg.norm(C)))
        return {"cov_err_max": max(errs), "cov_err_median": float(np.median(errs))}

    evaluate.thetas = thetas
    return evaluate


def exact_parameters(spde, theta) -> dict:
    """θ (natural coordinates) → the keyword arguments of :func:`pinnprob.truth.advection_diffusion_covariance`."""
    v = {k: float(x) for k, x in spde.space.values(np.asarray(theta, np.float64)).items()}
    kw = dict(lengths=spde.domain.lengths, range=v["range"], time_range=v["time_range"], alpha=v["alpha"],
              velocity=[v[n] for n in spde.velocity_names])
    if spde.dim == 2:
        kw.update(angle=v["angle"], ratio=v["ratio"])
    return kw


_register_evaluator()
