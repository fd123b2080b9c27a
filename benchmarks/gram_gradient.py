"""The Gram-path log density's gradient, written out, against JAX's reverse mode through the Cholesky
factor (issue 13, Deliver 1), and the diagonal of the inverse it needs, block column by block column,
against the triangular inverses it was taken from before (by halves; by a solve with the identity).
Also the dense Gaussian log density of the site-covariance and dense paths
(``pinnprob.inference.linalg.gaussian_logpdf``, its gradient in the values and the covariance written
out) against reverse mode, at n sites: C = BBᵀ + I (B n × n/2 Gaussian), one right-hand side.

For m modes: G = AᵀA·1000 + I (A m × m Gaussian / √m), amplitudes d = exp(−U(0, 5)), one right-hand side,
float64. Times after compilation, blocked on the result, mean of 2 calls, in one process:

    python benchmarks/gram_gradient.py [--modes 1000 3000 8269] [--sites 500 2000]

Writes docs/results/gram_gradient.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.scipy.linalg import solve_triangular  # noqa: E402

from pinnprob.inference.collapsed import woodbury_terms  # noqa: E402
from pinnprob.inference.linalg import cholesky, gaussian_logpdf, inverse_diagonal  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "results"


def reverse_mode(c, rr, d, eps, G):
    """The same terms, differentiated by JAX through the factor (the code before the change)."""
    cap = d[:, None] * G * d[None, :] + eps * jnp.eye(d.shape[0])
    L = jnp.linalg.cholesky(cap)
    u = solve_triangular(L, (d * c).T, lower=True)
    return -0.5 * ((rr - jnp.sum(u**2, 0)) / eps + 2 * jnp.sum(jnp.log(jnp.diagonal(L))))


def dense_reverse_mode(v, C):
    """log N(v | 0, C) differentiated by JAX through the factor (the code before 2026-12-06)."""
    L = jnp.linalg.cholesky(C)
    w = solve_triangular(L, v, lower=True)
    return -0.5 * (jnp.sum(w**2) + 2 * jnp.sum(jnp.log(jnp.diagonal(L))) + v.shape[0] * np.log(2 * np.pi))


def inverse_by_halves(L, base: int = 256):
    """L⁻¹ by halves, [[A, 0], [B, C]]⁻¹ = [[A⁻¹, 0], [−C⁻¹BA⁻¹, C⁻¹]] (2m³/3 flops: the products ignore
    the factors' zeros): what the written-out gradient used until 2026-12-06."""
    n = L.shape[0]
    if n <= base:
        return solve_triangular(L, jnp.eye(n, dtype=L.dtype), lower=True)
    h = n // 2
    Ai, Ci = inverse_by_halves(L[:h, :h], base), inverse_by_halves(L[h:, h:], base)
    return jnp.block([[Ai, jnp.zeros((h, n - h), L.dtype)], [-Ci @ (L[h:, :h] @ Ai), Ci]])


def timed(f, *args, reps=2) -> float:
    jax.block_until_ready(f(*args))
    t0 = time.perf_counter()
    for _ in range(reps):
        jax.block_until_ready(f(*args))
    return (time.perf_counter() - t0) / reps


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", type=int, nargs="+", default=[1000, 3000, 8269])
    ap.add_argument("--sites", type=int, nargs="+", default=[500, 2000])
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    rows = []
    for m in args.modes:
        rng = np.random.default_rng(0)
        A = rng.standard_normal((m, m)) / np.sqrt(m)
        G = jnp.asarray(A.T @ A * 1000 + np.eye(m))
        a = (jnp.asarray(rng.standard_normal((1, m))), jnp.asarray([5000.0]),
             jnp.asarray(np.exp(-rng.uniform(0, 5, m))), 0.1, G)
        row = {"m": m}
        for name, f in (("written_out", woodbury_terms), ("reverse_mode", reverse_mode)):
            row[f"{name}_value"] = timed(jax.jit(lambda *x, f=f: f(*x).sum()), *a)
            vg = jax.value_and_grad(lambda *x, f=f: f(*x).sum(), (0, 2, 3))
            row[f"{name}_value_grad"] = timed(jax.jit(vg), *a)
        L = jnp.linalg.cholesky(a[2][:, None] * G * a[2][None, :] + 0.1 * jnp.eye(m))
        row["cholesky"] = timed(jax.jit(cholesky), G)  # as the Gram path factorises: no symmetrisation
        row["inverse_diagonal"] = timed(jax.jit(inverse_diagonal), L)
        row["inverse_by_halves"] = timed(jax.jit(inverse_by_halves), L)
        diag = jnp.sum(jax.jit(inverse_by_halves)(L) ** 2, 0)
        row["diagonal_max_rel_diff"] = float(jnp.max(jnp.abs(jax.jit(inverse_diagonal)(L) - diag) / diag))
        eye_solve = jax.jit(lambda L: solve_triangular(L, jnp.eye(L.shape[0]), lower=True))
        row["solve_with_identity"] = timed(eye_solve, L)
        print(row, flush=True)
        rows.append(row)
    dense = []
    for n in args.sites:
        rng = np.random.default_rng(1)
        B = rng.standard_normal((n, n // 2))
        C, v = jnp.asarray(B @ B.T + np.eye(n)), jnp.asarray(rng.standard_normal(n))
        row = {"n": n}
        for name, f in (("written_out", gaussian_logpdf), ("reverse_mode", dense_reverse_mode)):
            row[f"{name}_value_grad"] = timed(jax.jit(jax.value_and_grad(f, (0, 1))), v, C)
        ours, theirs = (jax.jit(jax.grad(f, 1))(v, C) for f in (gaussian_logpdf, dense_reverse_mode))
        row["grad_max_rel_diff"] = float(jnp.max(jnp.abs(ours - theirs)) / jnp.max(jnp.abs(theirs)))
        print(row, flush=True)
        dense.append(row)
    lines = ["# The Gram-path gradient, written out, against reverse mode", "",
             "Generated by `python benchmarks/gram_gradient.py` (float64, this 2-core CPU, one process; seconds "
             "after compilation). *written out*: `pinnprob.inference.collapsed.woodbury_terms`, whose gradient "
             "needs diag(cap⁻¹) (`pinnprob.inference.linalg.inverse_diagonal`: block column by block column of L⁻¹, m³/3 flops in "
             "matrix products); *reverse mode*: the same terms differentiated by JAX through the Cholesky "
             "factor (the code before 2026-12-05). The last two columns are the triangular inverses diag(cap⁻¹) "
             "was taken from before: by halves (until 2026-12-06; 2m³/3 flops) and by a solve with the "
             "identity (m³). *max rel. diff*: the diagonal by blocks against the one by halves.", "",
             "| m | value | value + gradient, written out | value + gradient, reverse mode | speed-up | "
             "Cholesky | diag(cap⁻¹) by blocks | max rel. diff | L⁻¹ by halves | L⁻¹ by a solve with I |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        speed_up = r["reverse_mode_value_grad"] / r["written_out_value_grad"]
        lines.append(f"| {r['m']} | {r['written_out_value']:.3f} | {r['written_out_value_grad']:.3f} | "
                     f"{r['reverse_mode_value_grad']:.3f} | {speed_up:.1f}× | "
                     f"{r['cholesky']:.3f} | {r['inverse_diagonal']:.3f} | {r['diagonal_max_rel_diff']:.1e} | "
                     f"{r['inverse_by_halves']:.3f} | {r['solve_with_identity']:.3f} |")
    lines += ["", "The dense Gaussian log density (the site-covariance and dense paths; "
              "`pinnprob.inference.linalg.gaussian_logpdf`), value + gradient in the values and C, seconds; "
              "*max rel. diff*: the gradient in C against reverse mode's, relative to its largest entry.", "",
              "| n | written out | reverse mode | speed-up | max rel. diff |", "|---|---|---|---|---|"]
    for r in dense:
        lines.append(f"| {r['n']} | {r['written_out_value_grad']:.3f} | {r['reverse_mode_value_grad']:.3f} | "
                     f"{r['reverse_mode_value_grad'] / r['written_out_value_grad']:.1f}× | {r['grad_max_rel_diff']:.1e} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gram_gradient.md").write_text("\n".join(lines) + "\n")
    (out / "gram_gradient.json").write_text(json.dumps({"rows": rows, "dense": dense}, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
