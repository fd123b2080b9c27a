"""NUTS warm-started at the Laplace approximation against NumPyro's own start, on the same data, in
one run: ``fit(method="nuts", warm_start=True)`` (mode and Hessian of the collapsed model, chains
started at draws from N(mode, H⁻¹), H⁻¹ kept as a dense mass matrix, the step size adapted) against
``warm_start=False`` (uniform start in (−2, 2), windowed adaptation of a diagonal mass matrix).

    python benchmarks/warm_start.py                 # n = 300, 100 / 500 warm-up, 1 500 draws each
    python benchmarks/warm_start.py --part stepsize # the warm-up a warm start needs, on a Gaussian

Data: n sites uniform on the unit square, a Matérn field (ν = 1, range 0.3, σ = 1) drawn exactly,
noise sd 0.3; both fits take ν fixed at 1 and fit's default priors. Reported: posterior mean and sd
of the range, σ and the noise, their bulk ESS (ArviZ), ESS per second of sampling, leapfrog steps a
draw, and the phases' seconds.

``--part stepsize``: NUTS warm-started (``run_nuts`` with the exact mode and Hessian) on a 3-D Gaussian
with scales 1, 100 and 0.01 and a correlation of 0.995, one chain of 400 draws, for warm-ups of 30,
100 and 200 iterations and 4 seeds: ESS and leapfrog steps a draw. The mass matrix is exact, so what
varies is the step size NumPyro adapts (below 150 warm-up iterations, on the last 10 % only).

Writes (updates) docs/results/warm_start.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def stepsize(out: dict) -> None:
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.diagnostics import effective_sample_size

    from pinnprob.inference.runners import LaplaceStart, run_nuts

    cov = np.array([[1.0, 0.995 * 100.0], [0.995 * 100.0, 100.0**2]])

    def model(y):
        numpyro.sample("z", dist.MultivariateNormal(jnp.zeros(2), jnp.asarray(cov)))
        numpyro.sample("a", dist.Normal(3.0, 0.01))

    H = np.zeros((3, 3))
    H[0, 0], H[1:, 1:] = 1e4, np.linalg.inv(cov)
    start = LaplaceStart({"z": np.zeros(2), "a": np.array(3.0)}, H)
    rows = []
    for warmup in (30, 100, 200):
        for seed in range(4):
            samples, stats = run_nuts(model, None, jax.random.key(seed), warmup, 400, 1, False, "sequential", start)
            z = np.asarray(samples["z"], np.float64)
            rows.append({"warmup": warmup, "seed": seed, "n_steps_mean": float(np.mean(stats["n_steps"])),
                         "ess": [float(effective_sample_size(z[..., i])) for i in range(2)]})
            print(json.dumps(rows[-1]), flush=True)
    out["stepsize"] = {"draws": 400, "runs": rows}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("fits", "stepsize", "all"), default="all")
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

    path = ROOT / "docs" / "results" / "warm_start.json"
    out = json.loads(path.read_text()) if path.exists() else {}
    if a.part in ("stepsize", "all"):
        stepsize(out)
        path.write_text(json.dumps(out, indent=1))
    if a.part == "stepsize":
        return

    rng = np.random.default_rng(a.seed)
    X = rng.uniform(0.0, 1.0, (a.n, 2))
    C = truth.matern_covariance(distances(X), range=0.3, sigma=1.0, nu=1.0)
    y = np.linalg.cholesky(C + 1e-9 * np.eye(a.n)) @ rng.standard_normal(a.n) + 0.3 * rng.standard_normal(a.n)
    out.update({"n": a.n, "seed": a.seed, "samples": a.samples, "truth": {"range": 0.3, "sigma": 1.0, "noise": 0.3},
                "machine": f"{platform.machine()}, {jax.device_count()} {jax.default_backend()} device(s)",
                "jax": jax.__version__, "runs": {}})
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
    path.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
