"""Checks on user input: one clear error before any work starts; the user's arrays are never modified."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["check_sites", "check_sigma", "scalar_or_none", "is_traced"]


def is_traced(x) -> bool:
    """True for JAX tracers (values unknown until run time: inside jit, grad or a NumPyro model)."""
    return isinstance(x, jax.core.Tracer)


def check_sites(X, dim: int, name: str = "X", lengths=None) -> jax.Array:
    """Validate sites in the box Π [0, L_i] (``lengths``; default the unit box): shape (n, dim), finite,
    inside it. Returns a new JAX array."""
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
    upper = np.ones(dim) if lengths is None else np.asarray(lengths, np.float64)
    outside = (arr < 0.0) | (arr > upper)
    if outside.any():
        i = int(np.argwhere(outside)[0][0])
        box = f"the unit box [0, 1]^{dim}" if lengths is None else \
            "the box " + " × ".join(f"[0, {v:g}]" for v in upper)
        raise ValueError(
            f"{name} has {int(outside.any(axis=1).sum())} site(s) outside {box} "
            f"(first: row {i} = {arr[i].tolist()}); map coordinates to {'the unit box' if lengths is None else 'it'} first"
        )
    return jnp.asarray(arr, dtype=jnp.result_type(float))


def scalar_or_none(value, name: str) -> float | None:
    """A finite float from a scalar, None for a traced value; ValueError naming ``name`` otherwise."""
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


def check_sigma(sigma) -> None:
    """σ: a finite scalar > 0 (or traced)."""
    s = scalar_or_none(sigma, "sigma")
    if s is not None and s <= 0:
        raise ValueError(f"sigma must be > 0, got {s}")
