"""A spectral generator whose branch is read from a table: the same law, cheaper inside MCMC.

Inside NUTS the spectral generator's cost per gradient is dominated by its branch network,
evaluated once per mode (m × a 64-wide MLP), not by the O(n m) product with the trunk. The
branch depends on θ only; when it varies with two of θ's axes at most (the Matérn's (log range, ν);
for the NIG prior's amplitudes, the log range alone) it can be tabulated once per fit:

    log a(θ, λ_k) ≈ cubic Hermite in θ₁ (values and exact derivatives from autodiff,
                     error O(h⁴)) ⊗ cubic Lagrange in θ₂ through the 4 nearest rows (error O(h₂⁴);
                     linear with fewer than 4 rows; exact when θ₂ is fixed).

:meth:`TabulatedGenerator.max_error` measures the interpolation error against the network.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from pinnprob.generators.base import AbstractDiagonalGenerator
from pinnprob.generators.spectral import SpectralGenerator

__all__ = ["TabulatedGenerator"]


@eqx.filter_jit
def _tabulate(base, lam, tail, lr, nus):
    """(log a, ∂ log a / ∂ θ₁) at every node (ν row, range node), each (V, R, U); module-level and jitted
    on its arguments, so that tables of the same shapes reuse one compilation."""
    def node(l, n):
        return jax.jvp(lambda x: base.log_amplitudes(jnp.concatenate([jnp.stack([x, n]), tail]), lam), (l,),
                       (jnp.ones_like(l),))

    return jax.lax.map(lambda n: jax.lax.map(lambda l: node(l, n), lr), nus)


FIXED_RANGE_HALF_WIDTH = 0.25  # in log range (with the 49 nodes fit uses, about 0.01 apart)

# With more distinct eigenvalues than this, the network is evaluated on this many nodes evenly spaced
# in u = log(1 + λ) and the table's columns are interpolated from them (cubic Lagrange through the 4
# nearest nodes, O(h⁴) with h ≈ 0.006 for the shipped trunk): on a square many modes share an
# eigenvalue (the shipped 12 985 have 4 357 distinct ones), on a rectangle almost none do (7 151 of
# 7 151 on Meuse's 0.86 box), and the table's cost and shape would follow them (setup 1.5 → 4 s a fold
# in the Meuse cross-validation, a compilation per fold; docs/case_studies/meuse_laplace.md)
LAMBDA_NODES = 2048


def _lagrange4(x):
    """Weights (4, …) of cubic Lagrange interpolation through nodes 0, 1, 2, 3 at positions x."""
    return jnp.stack([-(x - 1) * (x - 2) * (x - 3) / 6, x * (x - 2) * (x - 3) / 2,
                      -x * (x - 1) * (x - 3) / 2, x * (x - 1) * (x - 2) / 6])


@eqx.filter_jit
def _to_eigenvalues(f, df, u0, h, u):
    """The (V, R, K) tables on the nodes u0 + h·j, j < K, interpolated to the points u (U,) along
    their last axis, cubic Lagrange through the 4 nearest nodes (one-sided at the ends)."""
    K = f.shape[-1]
    t = (u - u0) / h
    j = jnp.clip(jnp.floor(t).astype(jnp.int32) - 1, 0, K - 4)
    x = jnp.clip(t, 0.0, K - 1.0) - j
    w = _lagrange4(x)  # (4, U)

    def at(a):
        return sum(w[q] * a[..., j + q] for q in range(4))

    return at(f), at(df)


class TabulatedGenerator(AbstractDiagonalGenerator):
    """``base`` with its branch log a(θ) tabulated on a grid of θ = (θ₁, θ₂) in natural coordinates
    (for the Matérn, log range and ν; see module notes).

    θ₁ outside the grid is clamped to it, so build the grid over the support of the prior of θ₁.
    ``nu_bounds=(v, v)`` makes a 1-D table for a fixed θ₂. When θ has more than two axes, ``rest``
    gives the others (natural coordinates) at which the table is built; it is then exact only for a
    base whose amplitudes do not depend on them (the NIG prior's noise axes)."""

    base: SpectralGenerator
    table: Float[Array, "V R U"]  # per distinct eigenvalue: a mode's amplitude depends on θ and λ only
    dtable: Float[Array, "V R U"]
    inverse: Int[Array, " m"]  # mode k's column in the table
    log_range0: float = eqx.field(static=True)
    h_range: float = eqx.field(static=True)
    nu0: float = eqx.field(static=True)
    h_nu: float = eqx.field(static=True)
    rest: tuple[float, ...] = eqx.field(static=True)

    def __init__(self, base: SpectralGenerator, log_range_bounds, nu_bounds, num_range: int = 33,
                 num_nu: int | None = None, rest=()):
        lo, hi = float(log_range_bounds[0]), float(log_range_bounds[1])
        nlo, nhi = float(nu_bounds[0]), float(nu_bounds[1])
        if hi == lo:  # a fixed range (a model's bounds of zero width): a narrow table around it, read at
            # its middle, where cubic Hermite between nodes ~0.01 apart in log range is exact to far below
            # the table's own ~1e-5; so a fit with the range fixed needs no case of its own
            lo, hi = lo - FIXED_RANGE_HALF_WIDTH, hi + FIXED_RANGE_HALF_WIDTH
        if not (hi > lo and nhi >= nlo and num_range >= 2):
            raise ValueError(f"bad table bounds: log range {log_range_bounds}, nu {nu_bounds}")
        rest = tuple(float(v) for v in rest)
        if base.space.dim < 2 or len(rest) != base.space.dim - 2:
            raise ValueError(f"a table runs over θ's first two axes and holds the other {base.space.dim - 2} at "
                             f"`rest`; got {len(rest)} values for a {base.space.dim}-D θ")
        if num_nu is None:  # ν rows 0.1 apart (at least 4): cubic in ν within ~3e-4 in log amplitude for
            # the shipped prior, at its rough end (ν ≈ 0.55); 0.05 apart it is 2e-5, and the table costs 1.6 × more
            num_nu = max(math.ceil((nhi - nlo) / 0.1 - 1e-9) + 1, 4)
        V = 1 if nhi == nlo else max(int(num_nu), 2)
        lr = jnp.linspace(lo, hi, num_range)
        nus = jnp.linspace(nlo, nhi, V)

        tail = jnp.asarray(rest, jnp.result_type(float))
        # on a square many modes share an eigenvalue (k₁² + k₂² = k₂² + k₁², and sums of two squares
        # repeat): the 12 985 modes of the shipped trunk have 4 357 distinct ones
        lam, inverse = np.unique(np.asarray(base.basis.eigenvalues), return_inverse=True)
        dtype = base.basis.eigenvalues.dtype
        if lam.size <= LAMBDA_NODES:
            f, df = _tabulate(base, jnp.asarray(lam, dtype), tail, lr, nus)
        else:  # on LAMBDA_NODES nodes in log(1 + λ), then at the eigenvalues (fixed shape: one compilation)
            u = np.log1p(lam)
            nodes = np.linspace(u[0], u[-1], LAMBDA_NODES)
            f, df = _tabulate(base, jnp.asarray(np.expm1(nodes), dtype), tail, lr, nus)
            # the nodes' start and step as arrays, not compiled-in constants: one compilation per U
            f, df = _to_eigenvalues(f, df, jnp.asarray(nodes[0], dtype), jnp.asarray(nodes[1] - nodes[0], dtype),
                                    jnp.asarray(u, dtype))
        self.base, self.table, self.dtable = base, f, df
        self.inverse = jnp.asarray(inverse.ravel(), jnp.int32)
        self.log_range0, self.h_range = lo, (hi - lo) / (num_range - 1)
        self.nu0, self.h_nu = nlo, (nhi - nlo) / (V - 1) if V > 1 else 1.0
        self.rest = rest

    @property
    def space(self):
        return self.base.space

    @property
    def basis(self):
        return self.base.basis

    def with_basis(self, basis):
        """Re-tabulated on another truncation of the eigenbasis."""
        V = self.table.shape[0]
        return TabulatedGenerator(
            self.base.with_basis(basis), (self.log_range0, self.log_range0 + self.h_range * (self.table.shape[1] - 1)),
            (self.nu0, self.nu0 + (self.h_nu * (V - 1) if V > 1 else 0.0)), self.table.shape[1], V, self.rest)

    @property
    def spde(self):
        return self.base.spde

    @property
    def latent_dim(self) -> int:
        return self.base.latent_dim

    def tail_variance(self, theta):
        return self.base.tail_variance(theta)

    def log_amplitudes(self, theta, eigenvalues=None) -> Float[Array, " m"]:
        """log a(θ) for every mode, interpolated from the table, shape (m,) (the trunk's modes only)."""
        if eigenvalues is not None:
            raise ValueError("a tabulated generator holds its trunk's modes only")
        log_range, nu = theta[0], theta[1]
        V, R, U = self.table.shape
        t = (log_range - self.log_range0) / self.h_range
        i = jnp.clip(jnp.floor(t), 0, R - 2).astype(jnp.int32)
        u = jnp.clip(t - i, 0.0, 1.0)
        u2, u3 = u * u, u * u * u
        # cubic Hermite in log range between range nodes i and i + 1: weights of f_i, f_{i+1}, h f'_i, h f'_{i+1}
        wf = jnp.stack([2 * u3 - 3 * u2 + 1, -2 * u3 + 3 * u2])
        wd = self.h_range * jnp.stack([u3 - 2 * u2 + u, u3 - u2])
        if V == 1:
            k, wnu, rows = jnp.zeros((), jnp.int32), jnp.ones(1, self.table.dtype), 1
        else:
            s = (nu - self.nu0) / self.h_nu
            if V < 4:  # linear between the two ν rows around ν
                k = jnp.clip(jnp.floor(s), 0, V - 2).astype(jnp.int32)
                v = jnp.clip(s - k, 0.0, 1.0)
                wnu, rows = jnp.stack([1 - v, v]), 2
            else:  # cubic Lagrange through the 4 ν rows nearest ν (one-sided at the ends)
                k = jnp.clip(jnp.floor(s).astype(jnp.int32) - 1, 0, V - 4)
                x = jnp.clip(s, 0.0, V - 1.0) - k  # position among the stencil's rows 0, 1, 2, 3
                wnu = _lagrange4(x)
                rows = 4
        # both interpolations are linear in the table: read the (rows, 2, U) block once and contract it
        start = (k, i, jnp.zeros((), jnp.int32))  # one index dtype, in float32 and float64 alike
        F = jax.lax.dynamic_slice(self.table, start, (rows, 2, U))
        D = jax.lax.dynamic_slice(self.dtable, start, (rows, 2, U))
        return (jnp.einsum("j,a,jau->u", wnu, wf, F) + jnp.einsum("j,a,jau->u", wnu, wd, D))[self.inverse]

    def max_error(self, num: int = 64, seed: int = 0) -> float:
        """Largest |log a_table − log a_net| over ``num`` random θ inside the table (a relative
        amplitude error); a check, not used in computations."""
        k1, k2 = jax.random.split(jax.random.key(seed))
        V = self.table.shape[0]
        lr = self.log_range0 + self.h_range * (self.table.shape[1] - 1) * jax.random.uniform(k1, (num,))
        nu = self.nu0 + (self.h_nu * (V - 1) if V > 1 else 0.0) * jax.random.uniform(k2, (num,))
        th = jnp.concatenate([jnp.stack([lr, nu], -1), jnp.broadcast_to(jnp.asarray(self.rest), (num, len(self.rest)))],
                             -1)
        err = jax.vmap(lambda t: jnp.max(jnp.abs(self.log_amplitudes(t) - self.base.log_amplitudes(t))))(th)
        return float(jnp.max(err))
