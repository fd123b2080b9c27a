"""Named parameter spaces: the axes an SPDE is amortised over, their training box and normalisation.

A :class:`ParameterSpace` is a tuple of :class:`Axis` (name, bounds, log or linear). Networks see a
parameter point as θ, the vector of *natural coordinates* (log of the value on a log axis, the value
itself on a linear one), mapped affinely to [−1, 1]^p by :meth:`ParameterSpace.normalize`. Users
speak in values by name (``range=0.2, nu=1.5``); :meth:`ParameterSpace.theta` turns them into θ,
differentiably, so that the values may be traced inside a NumPyro model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

__all__ = ["Axis", "ParameterSpace", "ParamRange", "matern_space"]


@dataclass(frozen=True)
class Axis:
    """One parameter: its name, closed bounds [lo, hi] in the user's terms, and whether networks see
    its log (``log=True``, bounds > 0). ``length_power`` is the power of length in its unit (range: 1,
    a slope of log range per unit length: −1, angles and ratios: 0), used to map user units to the
    unit box; ``time_power`` the same for time (a temporal range: 1, a velocity: −1). ``doc`` says what
    it is, in a few words."""

    name: str
    lo: float
    hi: float
    log: bool = False
    length_power: int = 0
    doc: str = ""
    time_power: int = 0

    def __post_init__(self):
        lo, hi = float(self.lo), float(self.hi)
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"axis {self.name!r}: bounds must be finite with lo ≤ hi, got [{lo}, {hi}]")
        if self.log and lo <= 0:
            raise ValueError(f"axis {self.name!r} is logarithmic: its bounds must be > 0, got [{lo}, {hi}]")

    @property
    def natural_bounds(self) -> tuple[float, float]:
        """The bounds in natural coordinates (log for a log axis)."""
        return (math.log(self.lo), math.log(self.hi)) if self.log else (self.lo, self.hi)

    def contains(self, value: float, rtol: float = 1e-6) -> bool:
        tol = rtol * max(abs(self.lo), abs(self.hi), 1e-12)
        return self.lo - tol <= value <= self.hi + tol

    def __str__(self) -> str:
        return f"{self.name} ∈ [{self.lo:g}, {self.hi:g}]"


@dataclass(frozen=True)
class ParameterSpace:
    """The parameters of an SPDE, by name, with the box a prior is trained over (and claims).

    Hashable and immutable (a static field of Equinox modules). ``space.bounds("range")`` or
    ``space.range`` give an axis's (lo, hi)."""

    axes: tuple[Axis, ...]

    def __post_init__(self):
        object.__setattr__(self, "axes", tuple(self.axes))
        names = [a.name for a in self.axes]
        if len(set(names)) != len(names):
            raise ValueError(f"parameter names must be distinct, got {names}")
        if not self.axes:
            raise ValueError("a parameter space needs at least one axis")

    # -- description ----------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)

    @property
    def dim(self) -> int:
        return len(self.axes)

    def axis(self, name: str) -> Axis:
        for a in self.axes:
            if a.name == name:
                return a
        raise KeyError(f"no parameter {name!r}; this space has {list(self.names)}")

    def bounds(self, name: str) -> tuple[float, float]:
        a = self.axis(name)
        return (a.lo, a.hi)

    def __getattr__(self, name: str):
        # ``space.range`` → the bounds of the axis named "range" (dataclass fields are found first)
        if name.startswith("_") or name == "axes":
            raise AttributeError(name)
        try:
            return self.bounds(name)
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no axis or attribute {name!r}") from None

    def replace(self, name: str, lo: float | None = None, hi: float | None = None) -> "ParameterSpace":
        """The same space with the bounds of one axis changed."""
        a = self.axis(name)
        new = Axis(a.name, a.lo if lo is None else lo, a.hi if hi is None else hi, a.log, a.length_power, a.doc,
                   a.time_power)
        return ParameterSpace(tuple(new if b.name == name else b for b in self.axes))

    # -- coordinates ----------------------------------------------------------------------------
    def theta(self, **values) -> Float[Array, "*b p"]:
        """Values by name → θ, natural coordinates stacked on the last axis (broadcast; traceable)."""
        self._check_names(values)
        cols = [jnp.log(jnp.asarray(values[a.name])) if a.log else jnp.asarray(values[a.name]) for a in self.axes]
        return jnp.stack(jnp.broadcast_arrays(*cols), axis=-1)

    def values(self, theta: Float[Array, "*b p"]) -> dict:
        """θ → values by name (exp on log axes)."""
        theta = jnp.asarray(theta)
        return {a.name: jnp.exp(theta[..., i]) if a.log else theta[..., i] for i, a in enumerate(self.axes)}

    @property
    def natural_box(self) -> np.ndarray:
        """(p, 2): each axis's (lo, hi) in natural coordinates (log on log axes)."""
        return np.array([a.natural_bounds for a in self.axes], np.float64)

    def normalize(self, theta: Float[Array, "*b p"]) -> Float[Array, "*b p"]:
        """θ → [−1, 1]^p (affine per axis; a degenerate axis maps to −1)."""
        lo, hi = self.natural_box.T
        width = np.maximum(hi - lo, 1e-12)
        return 2.0 * (jnp.asarray(theta) - lo) / width - 1.0

    def from_unit(self, u: Float[Array, "*b p"]) -> Float[Array, "*b p"]:
        """[0, 1]^p → θ (affine in natural coordinates)."""
        lo, hi = self.natural_box.T
        return lo + jnp.asarray(u) * (hi - lo)

    def sample(self, key: PRNGKeyArray, num: int) -> Float[Array, "num p"]:
        """θ uniform over the box in natural coordinates (one key per axis), shape (num, p)."""
        keys = jax.random.split(key, self.dim)
        cols = [jax.random.uniform(k, (num,), minval=a.natural_bounds[0], maxval=a.natural_bounds[1])
                for k, a in zip(keys, self.axes)]
        return jnp.stack(cols, axis=-1)

    def latin_hypercube(self, num: int, seed: int = 0, corners: bool = True) -> np.ndarray:
        """A Latin hypercube of ``num`` points in natural coordinates, with the 2^p corners first
        (``corners``), shape (num + 2^p, p) or (num, p); deterministic given ``seed``."""
        rng = np.random.default_rng(seed)
        u = (np.stack([rng.permutation(num) for _ in range(self.dim)], -1) + rng.uniform(size=(num, self.dim))) / num
        if corners:
            c = np.array(np.meshgrid(*[[0.0, 1.0]] * self.dim, indexing="ij")).reshape(self.dim, -1).T
            u = np.concatenate([c, u])
        return np.asarray(self.from_unit(u), np.float64)

    # -- validation -----------------------------------------------------------------------------
    def _check_names(self, values: dict) -> None:
        missing = [n for n in self.names if n not in values]
        unknown = [n for n in values if n not in self.names]
        if missing or unknown:
            parts = ([f"missing {missing}"] if missing else []) + ([f"unknown {unknown}"] if unknown else [])
            raise ValueError(f"parameters {', '.join(parts)}; this prior takes {list(self.names)}")

    def contains(self, *args, rtol: float = 1e-6, **values) -> bool:
        """Whether the values (by name; or positionally, in axis order) lie in the box."""
        if args:
            values = dict(zip(self.names, args))
        return all(a.contains(float(values[a.name]), rtol) for a in self.axes if a.name in values)

    def check(self, **values) -> None:
        """One ValueError naming the first parameter that is missing, unknown, not a finite scalar, ≤ 0 on
        a log axis, or outside the box. Traced values (inside jit or a model) are not checked."""
        from pinnprob._validation import scalar_or_none

        self._check_names(values)
        for a in self.axes:
            v = scalar_or_none(values[a.name], a.name)
            if v is None:
                continue
            if a.log and v <= 0:
                raise ValueError(f"{a.name} must be > 0, got {v:g}")
            if not a.contains(v):
                raise ValueError(f"{a.name} = {v:g} is outside this prior's training box [{a.lo:g}, {a.hi:g}]"
                                 f"{' (unit-box units)' if a.length_power else ''}; "
                                 "rescale your coordinates or train a prior for it with pinnprob.train")

    # -- I/O ------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"axes": [{"name": a.name, "lo": a.lo, "hi": a.hi, "log": a.log, "length_power": a.length_power,
                          "doc": a.doc, **({"time_power": a.time_power} if a.time_power else {})}
                         for a in self.axes]}

    @classmethod
    def from_dict(cls, d: dict) -> "ParameterSpace":
        return cls(tuple(Axis(**a) for a in d["axes"]))

    def __str__(self) -> str:
        return ", ".join(str(a) for a in self.axes)


def matern_space(range=(0.05, 1.0), nu=(0.5, 2.5)) -> ParameterSpace:
    """The stationary Matérn's space: practical range (log axis, unit-box units) and smoothness ν."""
    return ParameterSpace((
        Axis("range", *range, log=True, length_power=1, doc="practical range √(8ν)/κ"),
        Axis("nu", *nu, doc="smoothness ν"),
    ))


def ParamRange(range, nu) -> ParameterSpace:  # noqa: N802  (kept for the 0.x API)
    """The stationary Matérn's parameter space from (range_min, range_max), (nu_min, nu_max):
    :func:`matern_space` under its former name."""
    return matern_space(tuple(range), tuple(nu))
