"""Simulation-based calibration of the NIG prior in NumPyro with NUTS (issue 12, Must show 2).

    python benchmarks/nig_sbc.py [--replicates 100] [--warmup 200] [--samples 200] [--thin 2] [--out docs/results]
    python benchmarks/nig_sbc.py --resume --seed 1 --replicates N   # add N replicates to an interrupted run

Talts et al. (2018): when the posterior is computed right, the rank of the true value among L
posterior draws is uniform on {0, …, L}.

* Sites: 40 observed + 2 held-out, uniform on [0.1, 0.9]² (seed 1), the prior's own box.
* Prior: fit's defaults on the unit square for the SPDE's parameters (range PC with
  P(range < 0.1) = 0.05 truncated to the box [0.2, 0.5], μ uniform on [−1, 1], η log-uniform on
  [4, 100]), σ ~ HalfNormal(1), noise ~ HalfNormal(0.5) (data-independent, as SBC needs).
* Replicates: θ, σ, noise from the prior; f ~ ``prior.distribution(X, **params, sigma=σ)`` at the 42
  sites (the generator's own sampler); y = f[:40] + noise · ε.
* Posterior: the model a user writes — the field ``GenerativeField`` at the 42 sites sampled through
  its latent (``pinnprob.inference.latent_field``: 18 432 standard normals), with the generator
  ``fit`` evaluates (``for_inference``: the amplitudes read from a table in log range) — NumPyro's
  NUTS, one chain, ``--warmup`` + ``--samples`` draws thinned by ``--thin`` (L = samples/thin ranks);
  compiled once for all replicates (``jit_model_args``).
* Ranks: χ² test of uniformity over 10 bins (``scipy.stats.chisquare``), for the five parameters and
  the field at the two held-out sites.

Writes docs/results/nig_sbc.md and .json after every replicate (``--render`` rewrites the page).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import scipy.stats as st
from numpyro.infer import MCMC, NUTS

import pinnprob
from pinnprob.inference import latent_field
from pinnprob.inference.distribution import GenerativeField
from pinnprob.inference.fit import model_param_priors

ROOT = Path(__file__).resolve().parents[1]
N_OBS, N_HELD = 40, 2


def sbc_priors(space) -> dict:
    d = model_param_priors(space, 1.0, 1.0)
    d["sigma"], d["noise"] = dist.HalfNormal(1.0), dist.HalfNormal(0.5)
    return d


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--thin", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results"))
    ap.add_argument("--render", action="store_true", help="only rewrite the page from nig_sbc.json")
    ap.add_argument("--resume", action="store_true",
                    help="add --replicates more (from --seed, which should differ) to the replicates in nig_sbc.json")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.render:
        write(json.loads((out / "nig_sbc.json").read_text()), out / "nig_sbc.md")
        return 0
    prior = pinnprob.pretrained("nig2d")
    space = prior.param_range
    names = list(space.names)
    X = np.random.default_rng(1).uniform(0.1, 0.9, (N_OBS + N_HELD, 2))
    priors = sbc_priors(space)
    gen = prior.generator.for_inference(space.natural_box)  # what fit evaluates
    feats = gen.product_features(jnp.asarray(X))

    def model(y=None):
        v = {k: numpyro.sample(k, priors[k]) for k in names + ["sigma", "noise"]}
        theta = space.theta(**{k: v[k] for k in names})
        f = numpyro.sample("field", GenerativeField(gen, feats, theta, v["sigma"]))
        numpyro.sample("y", dist.Normal(f[:N_OBS], v["noise"]).to_event(1), obs=y)

    mcmc = MCMC(NUTS(latent_field(model)), num_warmup=args.warmup, num_samples=args.samples, progress_bar=False,
                jit_model_args=True)
    keys = names + ["sigma", "noise", "f_held_0", "f_held_1"]
    res = {"meta": {"replicates": 0, "warmup": args.warmup, "samples": args.samples, "thin": args.thin,
                    "n_obs": N_OBS, "seed": args.seed, "fingerprint": prior.fingerprint,
                    "latent_dim": gen.latent_dim}, "ranks": {k: [] for k in keys}, "truth": [], "seconds": [],
           "mean_steps": [], "divergences": [], "min_ess": []}
    if args.resume:  # an interrupted run: its replicates stay, new ones come from another seed
        old = json.loads((out / "nig_sbc.json").read_text())
        if args.seed in old["meta"].get("seeds", [old["meta"]["seed"]]):
            raise SystemExit(f"--seed {args.seed} was used already: resume with another seed")
        if (old["meta"]["warmup"], old["meta"]["samples"], old["meta"]["thin"]) != (args.warmup, args.samples, args.thin):
            raise SystemExit("--warmup, --samples and --thin must be those of the run resumed")
        res = old
        res["meta"]["seeds"] = old["meta"].get("seeds", [old["meta"]["seed"]]) + [args.seed]
    done = res["meta"]["replicates"]
    rng = np.random.default_rng(args.seed)
    key = jax.random.key(args.seed)
    for r in range(args.replicates):
        key, k_th, k_f, k_run = jax.random.split(key, 4)
        tk = jax.random.split(k_th, len(priors))
        truth = {k: float(priors[k].sample(kk)) for k, kk in zip(priors, tk)}
        f = np.asarray(prior.distribution(X, sigma=truth["sigma"], **{k: truth[k] for k in names}).sample(k_f))
        y = f[:N_OBS] + truth["noise"] * rng.standard_normal(N_OBS)
        t0 = time.perf_counter()
        mcmc.run(k_run, y=jnp.asarray(y), extra_fields=("num_steps", "diverging"))
        draws = mcmc.get_samples()
        jax.block_until_ready(draws)
        res["seconds"].append(time.perf_counter() - t0)
        ex = mcmc.get_extra_fields()
        res["mean_steps"].append(float(np.mean(ex["num_steps"])))
        res["divergences"].append(int(np.sum(ex["diverging"])))
        thin = {k: np.asarray(draws[k])[:: args.thin] for k in names + ["sigma", "noise"]}
        fd = np.asarray(draws["field"])[:: args.thin]
        thin["f_held_0"], thin["f_held_1"] = fd[:, N_OBS], fd[:, N_OBS + 1]
        tv = dict(truth, f_held_0=float(f[N_OBS]), f_held_1=float(f[N_OBS + 1]))
        for k in keys:
            res["ranks"][k].append(int(np.sum(thin[k] < tv[k])))
        res["min_ess"].append(float(min(numpyro.diagnostics.effective_sample_size(np.asarray(draws[k])[None])
                                        for k in names + ["sigma", "noise"])))
        res["truth"].append(tv)
        res["meta"]["replicates"] = done + r + 1
        print(f"replicate {done + r}: {res['seconds'][-1]:.0f} s, {res['mean_steps'][-1]:.0f} steps/draw, "
              f"min ESS {res['min_ess'][-1]:.0f}, ranks {[res['ranks'][k][-1] for k in keys]}", flush=True)
        (out / "nig_sbc.json").write_text(json.dumps(res))
        write(res, out / "nig_sbc.md")
    return 0


def write(res: dict, path: Path) -> None:
    m = res["meta"]
    R, L = m["replicates"], m["samples"] // m["thin"]
    sec = np.asarray(res["seconds"])
    seeds = m.get("seeds", [m["seed"]])
    how = f"`python benchmarks/nig_sbc.py --warmup {m['warmup']} --samples {m['samples']} --thin {m['thin']}`"
    how += (f" with seed {seeds[0]}" if len(seeds) == 1 else
            f", an interrupted run (seed {seeds[0]}) resumed with `--resume --seed` {', '.join(map(str, seeds[1:]))}")
    lines = ["# The NIG prior: simulation-based calibration with NUTS", "",
             f"Generated by {how}. {R} replicates: parameters from the prior (fit's defaults on the "
             f"unit square, σ ~ HalfNormal(1), noise ~ HalfNormal(0.5)), a field from the `nig2d` generator at "
             f"{m['n_obs']} + 2 sites, y at the {m['n_obs']}; the posterior by NumPyro's NUTS on the latent "
             f"({m['latent_dim']} standard normals + 5 parameters), one chain, {m['warmup']} + {m['samples']} "
             f"draws, thinned to L = {L}. Ranks of the truth among the L draws, χ² over 10 bins.", "",
             f"Per replicate: {np.median(sec):.0f} s median (compilation once, in the first), "
             f"{np.median(res['mean_steps']):.0f} leapfrog steps per draw (median), "
             f"{int(np.sum(res['divergences']))} divergent transitions in all, min-over-parameters ESS "
             f"{np.median(res['min_ess']):.0f} median (of {m['samples']} draws).", "",
             "| quantity | χ² | p-value | mean rank / L (uniform: 0.5) |", "|---|---|---|---|"]
    for k, rk in res["ranks"].items():
        rk = np.asarray(rk)
        counts = np.histogram(rk, bins=10, range=(0, L + 1))[0]
        chi = st.chisquare(counts)
        lines.append(f"| {k} | {chi.statistic:.1f} | {chi.pvalue:.3f} | {rk.mean() / L:.3f} |")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
