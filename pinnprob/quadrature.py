"""Quadrature rules on a box: the inner products ⟨f, g⟩ of the weak form (docs/method.md).

Every rule returns ``(points, weights)`` with ``points`` of shape (n, d) and
``weights`` of shape (n,), so that ∫_D f(x) dx ≈ Σ_i weights[i] f(points[i]).

* :func:`grid_quadrature` — tensor-product rules: composite midpoint, or
  Gauss–Legendre (optionally composite: ``panels`` equal sub-intervals per axis,
  each with its own Gauss nodes — exact for piecewise polynomials whose break
  points lie on the panel edges, e.g. :class:`~pinnprob.testfunctions.compact.BumpTestFunctions`
  from ``on_grid`` with matching panels).
* :func:`random_quadrature` — Monte Carlo: uniform points, equal weights
  volume / n (PINN style, drawn fresh each training step).

Arrays are built in float64 with NumPy and returned as JAX arrays in the
default JAX float type (float32 unless x64 is enabled).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from pinnprob.domain import Box

__all__ = ["grid_quadrature", "random_quadrature", "boundary_quadrature", "QUADRATURE_RULES"]

QUADRATURE_RULES = ("midpoint", "gauss")


def _per_axis(value: int | Sequence[int], d: int, name: str) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)):
        out = (int(value),) * d
    else:
        out = tuple(int(v) for v in value)
        if len(out) != d:
            raise ValueError(f"{name} needs {d} entries (one per axis), got {value!r}")
    if any(v < 1 for v in out):
        raise ValueError(f"{name} must be >= 1 on every axis, got {value!r}")
    return out


def _rule_1d(L: float, n: int, rule: str, panels: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of an n-point rule on [0, L] (float64)."""
    if rule == "midpoint":
        h = L / n
        return (np.arange(n) + 0.5) * h, np.full(n, h)
    # composite Gauss–Legendre: `panels` equal panels of n / panels nodes each
    if n % panels:
        raise ValueError(f"num_per_dim ({n}) must be a multiple of panels ({panels}) for rule='gauss'")
    q = n // panels
    t, w = np.polynomial.legendre.leggauss(q)  # on [-1, 1]
    h = L / panels
    left = np.arange(panels)[:, None] * h
    nodes = left + 0.5 * h * (t[None, :] + 1.0)
    weights = np.broadcast_to(0.5 * h * w[None, :], nodes.shape)
    return nodes.ravel(), weights.ravel()


def grid_quadrature(
    domain: Box,
    num_per_dim: int | Sequence[int],
    rule: str = "midpoint",
    panels: int | Sequence[int] = 1,
) -> tuple[Float[Array, "n d"], Float[Array, " n"]]:
    """Tensor-product quadrature on ``domain``: points (n, d), weights (n,), n = Π num_per_dim.

    ``rule="midpoint"``: composite midpoint rule (cell centres of a regular grid,
    weights = cell volume); error O(h²) for smooth integrands.

    ``rule="gauss"``: Gauss–Legendre on each axis (``numpy.polynomial.legendre.leggauss``),
    exact for polynomials of degree < 2·num_per_dim/panels per axis. With ``panels > 1``
    each axis is split into ``panels`` equal sub-intervals holding num_per_dim/panels
    nodes each (``num_per_dim`` must be a multiple of ``panels``); use it for piecewise
    smooth integrands whose kinks lie on the panel edges.

    ``num_per_dim`` and ``panels`` are ints or one int per axis. The weights sum to the
    box volume. Points are ordered with the last axis fastest (C order).
    """
    if rule not in QUADRATURE_RULES:
        raise ValueError(f"rule must be one of {QUADRATURE_RULES}, got {rule!r}")
    d = domain.dim
    ns = _per_axis(num_per_dim, d, "num_per_dim")
    ps = _per_axis(panels, d, "panels")
    axes = [_rule_1d(float(L), n, rule, p) for L, n, p in zip(domain.lengths, ns, ps)]
    nodes = np.meshgrid(*[a[0] for a in axes], indexing="ij")
    wts = np.meshgrid(*[a[1] for a in axes], indexing="ij")
    points = np.stack([g.ravel() for g in nodes], axis=1)
    weights = np.prod(np.stack([g.ravel() for g in wts], axis=1), axis=1)
    return jnp.asarray(points), jnp.asarray(weights)


def random_quadrature(
    key: PRNGKeyArray, domain: Box, num_points: int
) -> tuple[Float[Array, "n d"], Float[Array, " n"]]:
    """Monte Carlo rule: ``num_points`` uniform points in ``domain`` (n, d), weights volume/n (n,).

    Unbiased for ∫_D f with error O(n^{-1/2}); draw a fresh key each step (PINN style).
    Works under ``jit`` with ``num_points`` static.
    """
    if num_points < 1:
        raise ValueError(f"num_points must be >= 1, got {num_points}")
    lengths = jnp.asarray(domain.lengths, dtype=jnp.result_type(float))
    volume = math.prod(domain.lengths)
    points = jax.random.uniform(key, (num_points, domain.dim), dtype=lengths.dtype) * lengths
    weights = jnp.full((num_points,), volume / num_points, dtype=lengths.dtype)
    return points, weights


def boundary_quadrature(domain: Box, num_per_side: int, rule: str = "gauss", panels: int = 1):
    """A rule on the boundary of a 2-D box: points (b, 2), outward unit normals (b, 2), weights (b,),
    ``num_per_side`` points per side (Gauss–Legendre on ``panels`` panels, as :func:`grid_quadrature`);
    the weights on each side sum to its length."""
    if domain.dim != 2:
        raise ValueError(f"boundary_quadrature is for 2-D boxes, got d = {domain.dim}")
    L1, L2 = (float(L) for L in domain.lengths)
    pts, nrm, wts = [], [], []
    for axis, L, other in ((0, L1, L2), (1, L2, L1)):
        t, w = _rule_1d(other, num_per_side, rule, panels)
        for wall, n in ((0.0, -1.0), (L, 1.0)):
            p = np.zeros((len(t), 2))
            p[:, axis], p[:, 1 - axis] = wall, t
            nv = np.zeros((len(t), 2))
            nv[:, axis] = n
            pts.append(p)
            nrm.append(nv)
            wts.append(w)
    return jnp.asarray(np.concatenate(pts)), jnp.asarray(np.concatenate(nrm)), jnp.asarray(np.concatenate(wts))
