"""NUTS warm-started at the Laplace approximation against NumPyro's own start, on the same data, in
one run: ``fit(method="nuts", warm_start=True)`` (mode and Hessian of the collapsed model, chains
started at draws from N(mode, H⁻¹), H⁻¹ kept as a dense mass matrix, the step size adapted) against
``warm_start=False`` (uniform start in (−2, 2), windowed adaptation of a diagonal mass matrix).

    python benchmarks/warm_start.py                 # n = 300, 100 / 500 warm-up, 1 500 draws each

Data: n sites uniform on the unit square, a Matérn field (ν = 1, range 0.3, σ = 1) drawn exactly,
noise sd 0.3; both fits take ν fixed at 1 and fit's default priors. Reported: posterior mean and sd
of the range, σ and the noise, their bulk ESS (ArviZ), ESS per second of sampling, leapfrog steps a
draw, and the phases' seconds. Writes docs/results/warm_start.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=1500)
    ap.add_argument("--warm-warmup", type=int, default=100)
    ap.add_argument("--cold-warmup", type=int, default=500)
    a = ap.parse_args()

    import arviz as az
    import jax

    jax.config.update("jax_enable_x64", True)
    import pinnprob
    from _common import distances
    from pinnprob import truth

    rng = np.random.default_rng(a.seed)
    X = rng.uniform(0.0, 1.0, (a.n, 2))
    C = truth.matern_covariance(distances(X), range=0.3, sigma=1.0, nu=1.0)
    y = np.linalg.cholesky(C + 1e-9 * np.eye(a.n)) @ rng.standard_normal(a.n) + 0.3 * rng.standard_normal(a.n)
    out = {"n": a.n, "seed": a.seed, "samples": a.samples, "truth": {"range": 0.3, "sigma": 1.0, "noise": 0.3},
           "machine": f"{platform.machine()}, {jax.device_count()} {jax.default_backend()} device(s)",
           "jax": jax.__version__, "runs": {}}
    for name, warm, warmup in (("warm", True, a.warm_warmup), ("cold", False, a.cold_warmup)):
        t0 = time.perf_counter()
        idata = pinnprob.fit(X, y, nu=1.0, warm_start=warm, num_warmup=warmup, num_samples=a.samples,
                             progress_bar=False, seed=a.seed + 1, field_draws=10)
        wall = time.perf_counter() - t0
        meta = json.loads(idata.attrs["pinnprob"])
        post = idata.posterior
        sampling = meta["seconds"]["sampling"]
        r = {"warmup": warmup, "wall_s": wall, "seconds": meta["seconds"], "path": meta["collapsed_path"],
             "n_steps_mean": float(idata.sample_stats["n_steps"].values.mean()),
             "divergences": int(idata.sample_stats["diverging"].values.sum())}
        for k in ("range", "sigma", "noise"):
            ess = float(az.ess(np.asarray(post[k].values)))
            r[k] = {"mean": float(post[k].values.mean()), "sd": float(post[k].values.std()), "ess": ess,
                    "ess_per_s": ess / sampling}
        out["runs"][name] = r
        print(name, json.dumps(r), flush=True)
    w, c = out["runs"]["warm"], out["runs"]["cold"]
    for k in ("range", "sigma", "noise"):
        print(f"{k}: warm {w[k]['mean']:.3f} ± {w[k]['sd']:.3f} (ESS/s {w[k]['ess_per_s']:.2f}), cold "
              f"{c[k]['mean']:.3f} ± {c[k]['sd']:.3f} (ESS/s {c[k]['ess_per_s']:.2f}); mean difference "
              f"{(w[k]['mean'] - c[k]['mean']) / c[k]['sd']:+.2f} sd, ESS/s ratio "
              f"{w[k]['ess_per_s'] / c[k]['ess_per_s']:.2f}")
    print(f"leapfrog steps a draw: warm {w['n_steps_mean']:.1f}, cold {c['n_steps_mean']:.1f}")
    (ROOT / "docs" / "results" / "warm_start.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
