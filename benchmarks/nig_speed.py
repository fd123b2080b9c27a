"""The cost of NUTS with the NIG prior: a gradient and ESS per second at n = 500 and 2 000 sites (issue 12,
Must show 3).

    python benchmarks/nig_speed.py [--sizes 500,2000] [--reps 20] [--warmup 300] [--samples 300] [--out docs/results]

Two models with range, μ, η, σ and the noise under priors and y Gaussian given the field, the field
sampled through its latent (``pinnprob.inference.latent_field``; 18 432 standard normals):

* "in the model": ``prior.distribution(X, ...)`` built inside the model, as the README shows: the
  trunk's 1-D tables of the n sites and the amplitude network over all 7 324 modes are evaluated in
  every gradient;
* "hoisted": what ``fit`` evaluates — the sites' tables computed once, and the generator's
  ``for_inference`` (the amplitudes read from a Hermite table in log range).

The gradient of the potential (NumPyro's ``initialize_model``) is jitted; compile time apart from run
time (median of ``--reps`` blocked calls). Then ``pinnprob.fit(X, y, prior="nig2d")`` (NUTS, one chain,
``--warmup`` + ``--samples``) on data from the generator (range 0.3, μ 0.5, η 10, σ 1, noise 0.2):
its sampling seconds (warm-up and NUTS's compilation included), leapfrog steps per draw, and ESS and
ESS/s per parameter. Writes nig_speed.md and .json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer.util import initialize_model

import pinnprob
from pinnprob.inference import latent_field
from pinnprob.inference.distribution import GenerativeField

ROOT = Path(__file__).resolve().parents[1]
TRUTH = {"range": 0.3, "mu": 0.5, "eta": 10.0, "sigma": 1.0, "noise": 0.2}
NAMES = ("range", "mu", "eta", "sigma", "noise")


def parameters():
    r = numpyro.sample("range", dist.Uniform(0.2, 0.5))
    mu = numpyro.sample("mu", dist.Uniform(-1.0, 1.0))
    eta = numpyro.sample("eta", dist.LogUniform(4.0, 100.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    noise = numpyro.sample("noise", dist.HalfNormal(1.0))
    return r, mu, eta, sigma, noise


def model_in(prior, X):
    """The README's model: the distribution built inside the model."""
    @latent_field
    def model(y=None):
        r, mu, eta, sigma, noise = parameters()
        f = numpyro.sample("field", prior.distribution(X, range=r, mu=mu, eta=eta, sigma=sigma))
        numpyro.sample("y", dist.Normal(f, noise).to_event(1), obs=y)

    return model


def model_hoisted(prior, X):
    """The same model with the sites' tables and the amplitude table computed once, outside it."""
    space = prior.param_range
    gen = prior.generator.for_inference(space.natural_box)
    feats = gen.product_features(jnp.asarray(X))

    @latent_field
    def model(y=None):
        r, mu, eta, sigma, noise = parameters()
        f = numpyro.sample("field", GenerativeField(gen, feats, space.theta(range=r, mu=mu, eta=eta), sigma))
        numpyro.sample("y", dist.Normal(f, noise).to_event(1), obs=y)

    return model


def time_gradient(model, y, reps):
    info = initialize_model(jax.random.key(0), model, model_kwargs={"y": y})
    grad = jax.jit(jax.grad(info.potential_fn))
    p0 = info.param_info.z
    t0 = time.perf_counter()
    jax.block_until_ready(grad(p0))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(grad(p0))
        times.append(time.perf_counter() - t0)
    dim = sum(int(np.size(v)) for v in jax.tree_util.tree_leaves(p0))
    return dim, compile_s, 1e3 * float(np.median(times))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="500,2000")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results"))
    ap.add_argument("--render", action="store_true", help="only rewrite the page from nig_speed.json")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.render:
        write(json.loads((out / "nig_speed.json").read_text()), out / "nig_speed.md")
        return 0
    prior = pinnprob.pretrained("nig2d")
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        rng = np.random.default_rng(n)
        X = rng.uniform(0.1, 0.9, (n, 2))
        f = np.asarray(prior.distribution(X, range=TRUTH["range"], mu=TRUTH["mu"], eta=TRUTH["eta"]).sample(
            jax.random.key(n)))
        y = 2.0 + TRUTH["sigma"] * f + TRUTH["noise"] * rng.standard_normal(n)
        row = {"n": n}
        for name, build in (("in_model", model_in), ("hoisted", model_hoisted)):
            dim, c, g = time_gradient(build(prior, X), y - 2.0, args.reps)
            row.update({"unconstrained_dim": dim, f"{name}_compile_s": c, f"{name}_gradient_ms": g})
            print(json.dumps({"n": n, "model": name, "compile_s": c, "gradient_ms": g}), flush=True)
        idata = pinnprob.fit(X, y, prior=prior, num_warmup=args.warmup, num_samples=args.samples, seed=0,
                             progress_bar=False)
        sec = json.loads(idata.attrs["pinnprob"])["sampling_seconds"]
        ess = {k: float(az.ess(np.asarray(idata.posterior[k]))) for k in NAMES}
        row.update({"nuts_seconds": sec, "steps_per_draw": float(np.mean(idata.sample_stats["n_steps"])),
                    "divergences": int(np.sum(idata.sample_stats["diverging"])), "ess": ess,
                    "ess_per_s": {k: v / sec for k, v in ess.items()},
                    "posterior": {k: [float(np.mean(idata.posterior[k])), float(np.std(idata.posterior[k]))]
                                  for k in NAMES}})
        print(json.dumps(row), flush=True)
        rows.append(row)
        res = {"rows": rows, "device": jax.devices()[0].device_kind, "warmup": args.warmup, "samples": args.samples,
               "reps": args.reps, "sizes": args.sizes}
        (out / "nig_speed.json").write_text(json.dumps(res, indent=1))
        write(res, out / "nig_speed.md")
    return 0


def write(res: dict, path: Path) -> None:
    rows = res["rows"]
    lines = ["# The NIG prior: cost of NUTS", "",
             f"Generated by `python benchmarks/nig_speed.py --sizes {res['sizes']} --reps {res['reps']} --warmup "
             f"{res['warmup']} --samples {res['samples']}` on {res['device']}. A model with the `nig2d` field sampled "
             "through its latent (18 432 standard normals: two per cell of the 96² grid) and the five parameters "
             "(range, μ, η, σ, noise).", "",
             "## One gradient of the potential", "",
             "Compile time apart; run time the median of blocked calls. *In the model*: `prior.distribution(X, ...)` "
             "built inside the model (the README's form: the sites' 1-D trunk tables and the amplitude network "
             "over all 7 324 modes in every gradient). *Hoisted*: what `fit` evaluates, the tables computed once "
             "and the amplitudes read from a Hermite table in log range (`generator.for_inference`, within 1e-5 "
             "of the network in log amplitude).", "",
             "| n | dimension | in the model: compile (s) | gradient (ms) | hoisted: compile (s) | gradient (ms) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['n']} | {r['unconstrained_dim']} | {r['in_model_compile_s']:.1f} | {r['in_model_gradient_ms']:.2f} | "
              f"{r['hoisted_compile_s']:.1f} | {r['hoisted_gradient_ms']:.2f} |" for r in rows]
    lines += ["", "## NUTS in `fit`", "",
              f"`pinnprob.fit(X, y, prior=\"nig2d\")`, default priors, one chain, {res['warmup']} + {res['samples']} "
              "draws, on a field from the generator (range 0.3, μ 0.5, η 10, σ 1, y = 2 + σu + 0.2ε). Seconds: "
              "warm-up, sampling and NUTS's compilation together (the clock stopped on the draws).", "",
              "| n | seconds | leapfrog steps per draw | divergences | " + " | ".join(f"ESS/s {k}" for k in NAMES)
              + " |", "|---|---|---|---|" + "---|" * len(NAMES)]
    lines += [f"| {r['n']} | {r['nuts_seconds']:.0f} | {r['steps_per_draw']:.0f} | {r['divergences']} | "
              + " | ".join(f"{r['ess_per_s'][k]:.3f} ({r['ess'][k]:.0f})" for k in NAMES) + " |" for r in rows]
    lines += ["", "ESS in parentheses (of the draws kept). Posterior mean ± sd:", "",
              "| n | " + " | ".join(NAMES) + " |", "|---|" + "---|" * len(NAMES)]
    lines += [f"| {r['n']} | " + " | ".join(f"{r['posterior'][k][0]:.3g} ± {r['posterior'][k][1]:.2g}" for k in NAMES)
              + " |" for r in rows]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
