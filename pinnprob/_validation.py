"""Checks on user input: one clear error before any work starts; the user's arrays are never modified."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from pinnprob.params import ParamRange

__all__ = ["check_sites", "check_params", "is_traced"]


def is_traced(x) -> bool:
    """True for JAX tracers (values unknown until run time: inside jit, grad or a NumPyro model)."""
    return isinstance(x, jax.core.Tracer)


def check_sites(X, dim: int, name: str = "X") -> jax.Array:
    """Validate sites in the unit box: shape (n, dim), finite, inside [0, 1]^dim. Returns a new JAX array."""
    if is_traced(X):
        if X.ndim != 2 or X.shape[1] != dim:
            raise ValueError(f"{name} must have shape (n, {dim}), got {tuple(X.shape)}")
        return X
    try:
        arr = np.array(X, dtype=np.float64, copy=True)  # a copy: the caller's data are never touched
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a numeric array of shape (n, {dim}): {e}") from None
    if arr.ndim != 2 or arr.shape[1] != dim or arr.shape[0] < 1:
        raise ValueError(f"{name} must have shape (n, {dim}) with n ≥ 1, got {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{name} has {int(bad.any(axis=1).sum())} row(s) with NaN or inf (first: row {i})")
    outside = (arr < 0.0) | (arr > 1.0)
    if outside.any():
        i = int(np.argwhere(outside)[0][0])
        raise ValueError(
            f"{name} has {int(outside.any(axis=1).sum())} site(s) outside the unit box [0, 1]^{dim} "
            f"(first: row {i} = {arr[i].tolist()}); map coordinates to the unit box first"
        )
    return jnp.asarray(arr, dtype=jnp.result_type(float))


def _scalar(value, name: str) -> float | None:
    if is_traced(value):
        return None
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if a.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {a.shape}")
    v = float(a)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def check_params(param_range: ParamRange, rho, nu, sigma) -> None:
    """Validate (range ρ, ν, σ): finite scalars, σ > 0, (ρ, ν) inside the prior's range."""
    r, n, s = _scalar(rho, "range"), _scalar(nu, "nu"), _scalar(sigma, "sigma")
    if s is not None and s <= 0:
        raise ValueError(f"sigma must be > 0, got {s}")
    if r is not None and r <= 0:
        raise ValueError(f"range must be > 0, got {r}")
    if n is not None and n <= 0:
        raise ValueError(f"nu must be > 0, got {n}")
    if r is not None and not (param_range.range[0] * (1 - 1e-6) <= r <= param_range.range[1] * (1 + 1e-6)):
        raise ValueError(
            f"range = {r:g} is outside this prior's range [{param_range.range[0]:g}, {param_range.range[1]:g}] "
            f"(unit-box units); rescale your coordinates or train a prior for it with pinnprob.train"
        )
    if n is not None and not (param_range.nu[0] - 1e-9 <= n <= param_range.nu[1] + 1e-9):
        raise ValueError(
            f"nu = {n:g} is outside this prior's range [{param_range.nu[0]:g}, {param_range.nu[1]:g}]; "
            f"train a prior for it with pinnprob.train"
        )
