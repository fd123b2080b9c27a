"""The parameter range a generative prior is trained over, and its normalisation."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["ParamRange"]


class ParamRange(NamedTuple):
    """Closed ranges of practical range ρ (unit-box units) and smoothness ν.

    Networks see θ = (log ρ, ν) mapped affinely to [−1, 1]² by :meth:`normalize`.
    """

    range: tuple[float, float]
    nu: tuple[float, float]

    def normalize(self, log_range: Float[Array, "*b"], nu: Float[Array, "*b"]) -> Float[Array, "*b 2"]:
        """(log ρ, ν) → [−1, 1]² coordinates, stacked on the last axis."""
        lo, hi = math.log(self.range[0]), math.log(self.range[1])
        a = 2.0 * (jnp.asarray(log_range) - lo) / max(hi - lo, 1e-12) - 1.0
        b = 2.0 * (jnp.asarray(nu) - self.nu[0]) / max(self.nu[1] - self.nu[0], 1e-12) - 1.0
        return jnp.stack(jnp.broadcast_arrays(a, b), axis=-1)

    def contains(self, rho: float, nu: float, rtol: float = 1e-6) -> bool:
        """Whether (ρ, ν) lies in the range (with a relative tolerance for round-off)."""
        r_lo, r_hi = self.range
        n_lo, n_hi = self.nu
        return (r_lo * (1 - rtol) <= rho <= r_hi * (1 + rtol)) and (
            n_lo - rtol * abs(n_lo) <= nu <= n_hi + rtol * abs(n_hi)
        )

    def to_dict(self) -> dict:
        return {"range": list(self.range), "nu": list(self.nu)}

    @classmethod
    def from_dict(cls, d: dict) -> "ParamRange":
        return cls(tuple(map(float, d["range"])), tuple(map(float, d["nu"])))

    def __str__(self) -> str:
        return f"range ∈ [{self.range[0]:g}, {self.range[1]:g}], nu ∈ [{self.nu[0]:g}, {self.nu[1]:g}]"
