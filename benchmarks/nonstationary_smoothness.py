"""Is the non-stationary prior's likelihood smooth in its parameters? (what NUTS needs)

    python benchmarks/nonstationary_smoothness.py [--x64] [--points 61] [--out docs/results]

The generator's collapsed log-likelihood log N(y | μ, σ²(ΨΨᵀ + diag δ) + s² I) on the posterior
benchmark's data (n = 400 sites on [0.1, 0.9]², ``nonstationary_posterior.py``'s seed), along each
SPDE parameter through a point near the posterior mode, over ±3 posterior sd (``--points`` values; σ,
the noise and μ held). For a smooth function the second differences on this grid are nearly constant;
a jump of size J in the function shows as second differences of ±J wherever the grid steps over it.
Reported per parameter: the spread of the log-likelihood over the line, the median second difference
and the largest deviation from it. Writes OUT/nonstationary_smoothness[_x64].json and a line per
parameter to stdout (docs/results/nonstationary.md quotes them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax

ROOT = Path(__file__).resolve().parents[1]
# near the posterior mode (nonstationary_posterior.md) and its posterior sd there
CENTRE = {"range": 0.145, "range_trend_x1": 0.28, "range_trend_x2": -0.32, "angle": 0.60, "ratio": 2.04}
SD = {"range": 0.018, "range_trend_x1": 0.24, "range_trend_x2": 0.23, "angle": 0.07, "ratio": 0.19}
SIGMA, NOISE = 1.02, 0.188


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--x64", action="store_true", help="in float64 (default: float32, fit's default)")
    ap.add_argument("--points", type=int, default=61)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results"))
    args = ap.parse_args(argv)
    jax.config.update("jax_enable_x64", args.x64)
    import equinox as eqx
    import jax.numpy as jnp
    import numpy as np
    from nonstationary_ess import data  # benchmarks/ is sys.path[0]

    import pinnprob
    from pinnprob.inference.collapsed import CollapsedGaussian
    from pinnprob.inference.distribution import GenerativeField

    prior = pinnprob.pretrained("matern2d-nonstationary")
    space, gen = prior.param_range, prior.generator
    X, y = data(400, 0, 300)
    yj = jnp.asarray(y)
    feats = gen.features(jnp.asarray(X))
    mu = jnp.asarray(float(y.mean()))

    @eqx.filter_jit
    def loglik(theta):
        field = GenerativeField(gen, feats, theta, jnp.asarray(SIGMA))
        return CollapsedGaussian(field, jnp.full(len(y), mu), jnp.asarray(NOISE)).log_prob(yj)

    res = {"dtype": "float64" if args.x64 else "float32", "n": len(y), "centre": CENTRE, "sd": SD,
           "sigma": SIGMA, "noise": NOISE, "points": args.points, "params": {}}
    for k in CENTRE:
        vals = np.linspace(CENTRE[k] - 3 * SD[k], CENTRE[k] + 3 * SD[k], args.points)
        ll = np.array([float(loglik(space.theta(**{**CENTRE, k: float(v)}))) for v in vals])
        d2 = np.diff(ll, 2)
        med = float(np.median(d2))
        res["params"][k] = {"step": float(vals[1] - vals[0]), "spread": float(ll.max() - ll.min()),
                            "d2_median": med, "d2_max_deviation": float(np.abs(d2 - med).max()),
                            "loglik": ll.tolist()}
        print(f"{k:>15}: spread {ll.max() - ll.min():7.3f}, second differences: median {med:+.4f}, "
              f"largest deviation {np.abs(d2 - med).max():.4f}", flush=True)
    out = Path(args.out) / f"nonstationary_smoothness{'_x64' if args.x64 else ''}.json"
    out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
