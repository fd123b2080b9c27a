"""Simulation-based calibration (Talts et al. 2018) of NUTS on the 1-D advection–diffusion prior (issue 11).

Model, on the unit circle, α fixed at 1.5, the shipped prior's claimed box as priors:

    range ~ LogUniform(0.12, 0.42),  time_range ~ LogUniform(0.6, 3.3),  velocity_x1 ~ Uniform(−0.35, 0.35),
    sigma ~ HalfNormal(1),  noise ~ HalfNormal(0.5),
    y ~ N(0, σ² C(θ) + noise² I),   C the prior's covariance at --sites stations × --times times (spacing ¼).

For each replicate (θ, y) is drawn from this model's prior predictive (NumPyro ``Predictive``), then NUTS
(``--warmup`` + ``--samples``, one ``MCMC`` object reused with ``jit_model_args``, so it compiles once);
the rank of each true parameter among L = 99 thinned draws. Uniform ranks (χ² over 10 bins) say the
sampler and the model's code are calibrated together: a wrong gradient, a bad transform or a covariance
that is not positive definite shows as a ⋃- or ⋂-shaped histogram.

    python benchmarks/advection_diffusion_sbc.py [--replicates 100]
    python benchmarks/advection_diffusion_sbc.py --first 0 --count 50 --part /tmp/sbc_0.json   (one process per part:
    python benchmarks/advection_diffusion_sbc.py --merge /tmp/sbc_*.json                        XLA's compiled code
                                                                                             grows per run; one process
                                                                                             ran out after ~70)

Writes docs/results/advection_diffusion_sbc.md (and .json, and a figure).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.diagnostics import effective_sample_size  # noqa: E402
from numpyro.infer import MCMC, NUTS, Predictive  # noqa: E402
from scipy import stats  # noqa: E402

import pinnprob  # noqa: E402
from pinnprob.spacetime_prior import stationary_covariance  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ALPHA = 1.5
NAMES = ("range", "time_range", "velocity_x1", "sigma", "noise")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicates", type=int, default=100)
    ap.add_argument("--sites", type=int, default=8)
    ap.add_argument("--times", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--samples", type=int, default=396)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results"))
    ap.add_argument("--first", type=int, default=0, help="first replicate of this part")
    ap.add_argument("--count", type=int, default=None, help="replicates in this part (default: all)")
    ap.add_argument("--part", default=None, help="write this part's raw results here (JSON) and stop")
    ap.add_argument("--merge", nargs="+", default=None, help="parts to merge into the report")
    args = ap.parse_args(argv)
    if args.merge:
        parts = [json.loads(Path(f).read_text()) for f in args.merge]
        ranks = {k: sum((p["ranks"][k] for p in parts), []) for k in NAMES}
        ess, secs, div = (sum((p[k] for p in parts), []) for k in ("ess", "secs", "div"))
        args = argparse.Namespace(**{**parts[0]["args"], "replicates": len(secs), "out": args.out})
        return report(args, parts[0]["n"], ranks, ess, secs, div)
    prior = pinnprob.pretrained("advection-diffusion-1d")
    rng = np.random.default_rng(args.seed)
    sites = np.sort(rng.uniform(0.2, 0.8, args.sites))
    X = np.tile(sites, args.times)[:, None]
    T = np.repeat(np.arange(args.times) * 0.25, args.sites)
    cov = stationary_covariance(prior.generator, X, T)
    n = X.shape[0]

    def model(y=None):
        r = numpyro.sample("range", dist.LogUniform(0.12, 0.42))
        tr = numpyro.sample("time_range", dist.LogUniform(0.6, 3.3))
        v = numpyro.sample("velocity_x1", dist.Uniform(-0.35, 0.35))
        s = numpyro.sample("sigma", dist.HalfNormal(1.0))
        nz = numpyro.sample("noise", dist.HalfNormal(0.5))
        C = cov(prior.param_range.theta(range=r, time_range=tr, velocity_x1=v, alpha=ALPHA))
        K = s**2 * (C + 1e-5 * jnp.eye(n)) + nz**2 * jnp.eye(n)
        numpyro.sample("y", dist.MultivariateNormal(jnp.zeros(n), covariance_matrix=K), obs=y)

    key = jax.random.key(args.seed)
    k_data, k_mcmc = jax.random.split(key)
    sim = {k: np.asarray(v) for k, v in Predictive(model, num_samples=args.replicates)(k_data).items()}
    mcmc = MCMC(NUTS(model, target_accept_prob=0.85), num_warmup=args.warmup, num_samples=args.samples,
                num_chains=1, jit_model_args=True, progress_bar=False)
    L = 99
    thin = np.linspace(0, args.samples - 1, L).astype(int)
    ranks = {k: [] for k in NAMES}
    ess, secs, div = [], [], []
    count = args.replicates - args.first if args.count is None else args.count
    for i in range(args.first, args.first + count):
        t0 = time.perf_counter()
        mcmc.run(jax.random.fold_in(k_mcmc, i), y=jnp.asarray(sim["y"][i]))
        smp = {k: np.asarray(v) for k, v in mcmc.get_samples().items()}
        secs.append(time.perf_counter() - t0)
        div.append(int(np.sum(mcmc.get_extra_fields()["diverging"])))
        for k in NAMES:
            ranks[k].append(int(np.sum(smp[k][thin] < sim[k][i])))
        ess.append(min(float(effective_sample_size(smp[k][None])) for k in NAMES))
        print(f"rep {i}: {secs[-1]:.1f} s, min ESS {ess[-1]:.0f}, divergences {div[-1]}", flush=True)
    if args.part:
        Path(args.part).write_text(json.dumps({"args": vars(args), "n": n, "ranks": ranks, "ess": ess, "secs": secs,
                                               "div": div}))
        return 0
    return report(args, n, ranks, ess, secs, div)


def report(args, n, ranks, ess, secs, div) -> int:
    L = 99

    def chi2(rk):
        counts = np.histogram(rk, bins=10, range=(0, L + 1))[0]
        return float(stats.chisquare(counts).pvalue), counts.tolist()

    res = {"args": vars(args), "n": n, "L": L, "ranks": {k: dict(zip(("p", "counts"), chi2(v))) for k, v in ranks.items()},
           "raw_ranks": ranks, "ess_min": {"min": float(np.min(ess)), "median": float(np.median(ess))},
           "seconds": {"first": secs[0], "median": float(np.median(secs)), "total": float(np.sum(secs))},
           "divergences": int(np.sum(div))}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "advection_diffusion_sbc.json").write_text(json.dumps(res, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(NAMES), figsize=(3 * len(NAMES), 2.6), sharey=True)
    for ax, k in zip(axes, NAMES):
        ax.hist(ranks[k], bins=10, range=(0, L + 1), color="C0", edgecolor="white")
        ax.axhline(args.replicates / 10, color="k", lw=0.8)
        lo, hi = stats.binom.ppf([0.005, 0.995], args.replicates, 0.1)
        ax.axhspan(lo, hi, color="0.85", zorder=0)
        ax.set_title(f"{k}  (p = {res['ranks'][k]['p']:.2f})", fontsize=9)
        ax.set_xlabel("rank")
    fig.tight_layout()
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    fig.savefig(figdir / "advection_diffusion_sbc.png", dpi=110)
    rows = [f"| {k} | {res['ranks'][k]['p']:.3f} | {' '.join(map(str, res['ranks'][k]['counts']))} |" for k in NAMES]
    lines = ["# SBC of the 1-D advection–diffusion prior", "",
             f"Generated by `python benchmarks/advection_diffusion_sbc.py --replicates {args.replicates}`. "
             f"{args.replicates} replicates of {args.sites} stations × {args.times} times (n = {n}) drawn from the model's",
             "prior predictive (the shipped prior's covariance; α = 1.5 fixed; priors: the claimed box for range, time range",
             "and velocity, σ ~ HalfNormal(1), noise ~ HalfNormal(0.5)); NUTS "
             f"{args.warmup} warm-up + {args.samples} draws per replicate, ranks among {L} thinned draws.", "",
             "| parameter | χ² p (10 bins) | rank counts |", "|---|---|---|", *rows, "",
             f"Smallest ESS over the parameters per replicate: min {res['ess_min']['min']:.0f}, median "
             f"{res['ess_min']['median']:.0f}; divergent transitions in all: {res['divergences']}. Time per replicate: "
             f"median {res['seconds']['median']:.1f} s (first, with compilation, {res['seconds']['first']:.1f} s).", "",
             "![rank histograms](figures/advection_diffusion_sbc.png)", "",
             "Grey band: the 99 % range of one bin's count under uniform ranks."]
    (out / "advection_diffusion_sbc.md").write_text("\n".join(lines) + "\n")
    for k in NAMES:
        print(f"{k:>12}: p = {res['ranks'][k]['p']:.3f} {res['ranks'][k]['counts']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
