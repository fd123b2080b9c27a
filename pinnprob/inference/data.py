"""The data a fit starts from: the checks on X, y, covariates, likelihood and method, and the map from
the user's coordinates to the box the prior lives on (the data's bounding box, centred, with a buffer
on each side: a rectangle for priors that move to any box, else the square around it)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CoordinateMap", "check_bounds", "check_inputs", "LIKELIHOODS", "METHODS"]

LIKELIHOODS = ("gaussian", "poisson", "bernoulli")
METHODS = ("nuts", "blackjax", "svi", "laplace")


@dataclass(frozen=True)
class CoordinateMap:
    """unit = (x − origin) / scale, into the box Π [0, L_i] (``lengths``; None: the unit square):
    the data's bounding box, centred, with a buffer of ``buffer`` × its longest side on each side,
    scaled so that its longest side is 1. A square box (:meth:`from_data` with ``rectangle=False``)
    takes the longest side on every axis."""

    origin: tuple
    scale: float
    lengths: tuple | None = None

    # a rectangle's shortest side, as a fraction of its longest (sites on a line with no buffer)
    MIN_SIDE = 0.05

    @classmethod
    def for_fit(cls, X: np.ndarray, buffer: float, bounds=None, rectangle: bool = False) -> "CoordinateMap":
        """The map a fit uses: ``bounds`` (checked by :func:`check_bounds`) when given, else the data's
        bounding box with ``buffer``; that box itself when ``rectangle``, else the square around it."""
        if bounds is None:
            return cls.from_data(X, buffer, rectangle)
        return cls.from_bounds(*check_bounds(bounds, X), rectangle)

    @classmethod
    def from_data(cls, X: np.ndarray, buffer: float, rectangle: bool = False) -> "CoordinateMap":
        """The data's bounding box with ``buffer`` × its longest side on each side (:meth:`from_bounds`)."""
        lo, hi = X.min(0), X.max(0)
        pad = buffer * float(np.max(hi - lo))
        return cls.from_bounds(lo - pad, hi + pad, rectangle)

    @classmethod
    def from_bounds(cls, lo: np.ndarray, hi: np.ndarray, rectangle: bool = False) -> "CoordinateMap":
        """The box [lo, hi] (``rectangle``; a side under ``MIN_SIDE`` of the longest is widened to it,
        about its centre) or the square around it, centred; scale its longest side."""
        lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        L = float(np.max(hi - lo))
        centre = 0.5 * (lo + hi)
        if not rectangle:
            return cls(tuple(float(c - L / 2) for c in centre), L)
        sides = np.maximum(hi - lo, cls.MIN_SIDE * L)
        origin = centre - sides / 2
        # [lo, hi] inside the box in unit coordinates, rounding included
        upper = np.maximum(sides / L, (hi - origin) / L)
        return cls(tuple(float(c) for c in origin), L, tuple(float(v) for v in upper))

    @classmethod
    def from_dict(cls, d: dict) -> "CoordinateMap":
        """From :func:`dataclasses.asdict` of one (as a fit stores it; fits stored before ``lengths``
        map to the unit square)."""
        lengths = d.get("lengths")
        return cls(tuple(d["origin"]), float(d["scale"]), None if lengths is None else tuple(lengths))

    @property
    def upper(self) -> np.ndarray:
        """The box's upper corner in unit coordinates (its side lengths), (d,)."""
        return np.ones(len(self.origin)) if self.lengths is None else np.asarray(self.lengths)

    def to_unit(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, np.float64) - np.asarray(self.origin)) / self.scale

    def outside(self, U: np.ndarray) -> np.ndarray:
        """Which rows of unit coordinates U (n, d) lie outside the box, (n,) bool."""
        return ((U < 0) | (U > self.upper)).any(1)


def check_bounds(bounds, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi), each (d,), from ``bounds`` (one (low, high) pair per coordinate, the user's units)
    after checking that they are finite, ordered and hold every site of X (n, d); ValueError with one
    line saying what is wrong otherwise."""
    d = X.shape[1]
    try:
        b = np.array(bounds, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"bounds must be one (low, high) pair per coordinate: {e}") from None
    if b.shape != (d, 2):
        raise ValueError(f"bounds must be one (low, high) pair per coordinate, shape ({d}, 2), got {b.shape}")
    if not np.all(np.isfinite(b)) or np.any(b[:, 0] >= b[:, 1]):
        raise ValueError(f"bounds must be finite with low < high on every axis, got {b.tolist()}")
    out = np.flatnonzero(((X < b[:, 0]) | (X > b[:, 1])).any(1))
    if out.size:
        raise ValueError(f"bounds must hold every site: {out.size} site(s) lie outside them (first: row {out[0]} = "
                         f"{X[out[0]].tolist()})")
    return b[:, 0], b[:, 1]


def check_inputs(X, y, covariates, likelihood, method, prior, priors=None, fixed=None):
    """Float64 copies (X, y, Z) of the data, Z (n, p) or None, after checking them, the likelihood, the
    method, and the names of ``priors`` and ``fixed`` (and the fixed values, in the user's units, against
    the prior's box after the coordinate map) against ``prior``; ValueError with one line saying what
    is wrong otherwise."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    try:
        X = np.array(X, dtype=np.float64, copy=True)
        y = np.array(y, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"X and y must be numeric arrays: {e}") from None
    if X.ndim != 2 or X.shape[1] != prior.dim:
        raise ValueError(f"X must have shape (n, {prior.dim}), got {X.shape}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have shape (n,) with n = {X.shape[0]} (the rows of X), got {y.shape}")
    if X.shape[0] < 3:
        raise ValueError(f"need at least 3 sites, got {X.shape[0]}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"X has {int((~np.isfinite(X)).any(1).sum())} row(s) with NaN or inf")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"y has {int((~np.isfinite(y)).sum())} NaN or inf value(s); drop those sites first")
    if np.max(X.max(0) - X.min(0)) <= 0:
        raise ValueError("the sites have no spread: all coordinates are equal")
    if likelihood == "poisson" and (np.any(y < 0) or np.any(y != np.round(y))):
        raise ValueError("the poisson likelihood needs non-negative integer counts in y")
    if likelihood == "bernoulli" and not np.all((y == 0) | (y == 1)):
        raise ValueError("the bernoulli likelihood needs y in {0, 1}")
    Z = None
    if covariates is not None:
        try:
            Z = np.array(covariates, dtype=np.float64, copy=True)
        except (TypeError, ValueError) as e:
            raise ValueError(f"covariates must be numeric: {e}") from None
        Z = Z[:, None] if Z.ndim == 1 else Z
        if Z.ndim != 2 or Z.shape[0] != X.shape[0]:
            raise ValueError(f"covariates must have shape (n,) or (n, p) with n = {X.shape[0]}, got {Z.shape}")
        if not np.all(np.isfinite(Z)):
            raise ValueError(f"covariates have {int((~np.isfinite(Z)).sum())} NaN or inf value(s)")
        if np.any(Z.std(0) == 0):
            raise ValueError("a covariate is constant; the intercept already covers it")
    space = prior.param_range
    for kind, d in (("priors", priors or {}), ("fixed", fixed or {})):
        unknown = [k for k in d if k not in space.names]
        if unknown:
            raise ValueError(f"{kind} names {unknown}, which this prior does not have; its parameters are "
                             f"{list(space.names)}")
    both = set(priors or {}) & set(fixed or {})
    if both:
        raise ValueError(f"{sorted(both)} given both a prior and a fixed value")
    for name, v in (fixed or {}).items():
        a = space.axis(name)
        if not (np.isscalar(v) and math.isfinite(float(v))):
            raise ValueError(f"{name} = {v!r} must be a finite number")
        if a.length_power == 0 and a.time_power == 0 and not a.contains(float(v)):
            raise ValueError(f"{name} = {v!r} is outside the prior's training range [{a.lo:g}, {a.hi:g}]")
    return X, y, Z
