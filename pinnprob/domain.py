"""Rectangular domains D = Π [0, L_i] with boundary conditions."""

from __future__ import annotations

import equinox as eqx

__all__ = ["Box", "BOUNDARY_CONDITIONS"]

BOUNDARY_CONDITIONS = ("neumann", "dirichlet", "periodic")


class Box(eqx.Module):
    """The box Π_i [0, L_i] ⊂ R^d with one boundary condition on all faces.

    ``bc`` is ``"neumann"`` (zero normal derivative), ``"dirichlet"`` (zero value)
    or ``"periodic"`` (period L_i along each axis).
    """

    lengths: tuple[float, ...] = eqx.field(static=True)
    bc: str = eqx.field(static=True, default="neumann")

    def __check_init__(self):
        if len(self.lengths) not in (1, 2, 3):
            raise ValueError(f"Box supports d = 1, 2 or 3, got lengths={self.lengths}")
        if any(not (L > 0) for L in self.lengths):
            raise ValueError(f"Box side lengths must be positive, got {self.lengths}")
        if self.bc not in BOUNDARY_CONDITIONS:
            raise ValueError(f"bc must be one of {BOUNDARY_CONDITIONS}, got {self.bc!r}")

    @property
    def dim(self) -> int:
        return len(self.lengths)

    @classmethod
    def unit(cls, dim: int = 2, bc: str = "neumann") -> "Box":
        """The unit box [0, 1]^dim."""
        return cls(tuple(1.0 for _ in range(dim)), bc)
