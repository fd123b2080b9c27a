"""Speed of inference with the 1-D advection–diffusion prior against the exact GP (issue 11, Must show 3).

One run. Data: 10 stations × T times (spacing ¼) from the exact sampler, plus noise, for T in --times
(default 25, 50, 100, 200, 500: 250 … 5 000 site-times). For each size:

* the time of one log-density gradient (after compilation, which is reported apart), for the prior with
  a dense Cholesky over the pair-lag table, for the prior with the Kalman filter over the times
  (`pinnprob.inference.kalman`), and for the exact GP (dense Cholesky of the exact torus covariance);
* for the sizes up to --nuts-max, NUTS (one chain, --warmup + --samples) on the same model as
  advection_diffusion_posterior.py, for the prior (with the solver `fit` would choose) and for the exact
  GP: ESS of the velocity, wall time, ESS/s, and the ESS per gradient evaluation. Beyond --nuts-max
  the ESS/s is extrapolated as (ESS per gradient at the largest NUTS size) / (gradient time): marked so.
  With --warm-start both chains start as `fit`'s warm start does (mode, Hessian, its inverse as NUTS's
  dense mass matrix, NumPyro's default target acceptance 0.8): tried to make a chain at 5 000
  site-times affordable, it was not (in float32; the page's last section, written by hand from
  advection_diffusion_speed_warm.json, says why).

    python benchmarks/advection_diffusion_speed.py
    python benchmarks/advection_diffusion_speed.py --times 100 200 500 --nuts-max 5000 --warmup 100 \
        --samples 100 --warm-start --name advection_diffusion_speed_warm
    # the mode and Hessian in float64 (what made 5 000 work); one core per model, rows merged, then the page:
    taskset -c 0 python benchmarks/advection_diffusion_speed.py --times 100 200 500 --nuts-max 5000 --warmup 100 \
        --samples 60 --warm-start --start-x64 --nuts-models prior --name NAME_P    # and exact on core 1
    python benchmarks/advection_diffusion_speed.py --render-only --merge SMALL.json P.json:5000 E.json:5000 \
        --name advection_diffusion_speed_warm64 --warm-start --start-x64 --warmup 100 --samples 60

Writes docs/results/advection_diffusion_speed.md (and .json).
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
from advection_diffusion_posterior import ALPHA, TRUE, exact_covariance_fn  # noqa: E402
from numpyro.diagnostics import effective_sample_size  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402

import pinnprob  # noqa: E402
from pinnprob import truth  # noqa: E402
from pinnprob.inference.spacetime import likelihood_law  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results"


def model_for(law_fn):
    """The benchmark's model with ``law_fn(r, tr, v, σ, noise)`` the data's Gaussian."""
    def model(y=None):
        r = numpyro.sample("range", dist.LogUniform(0.12, 0.42))
        tr = numpyro.sample("time_range", dist.LogUniform(0.6, 3.3))
        v = numpyro.sample("velocity_x1", dist.Uniform(-0.35, 0.35))
        s = numpyro.sample("sigma", dist.HalfNormal(2.0))
        nz = numpyro.sample("noise", dist.HalfNormal(1.0))
        numpyro.sample("y", law_fn(r, tr, v, s, nz), obs=y)
    return model


def size_data(prior, Xs, T, rng):
    """(y (n,), laws, fit's solver) for the stations ``Xs`` (S, 1) at T times (spacing ¼): one draw of
    the exact sampler (seed 1) plus noise from ``rng``, sites × times flattened time-major; ``laws``
    by name ("dense", "kalman": the prior's solvers; "exact": the dense exact GP), each
    ``law(range, time_range, velocity, σ, noise)`` the data's Gaussian."""
    times = np.arange(T) * 0.25
    u = truth.advection_diffusion_sample(1, Xs, times, lengths=(1.0,), range=TRUE["range"],
                                         time_range=TRUE["time_range"], velocity=[TRUE["velocity_x1"]],
                                         alpha=ALPHA)[0]
    y = jnp.asarray((u + TRUE["noise"] * rng.standard_normal(u.shape)).reshape(-1))
    X, Tt = np.tile(Xs, (T, 1)), np.repeat(times, Xs.shape[0])
    n = len(Tt)
    theta = lambda r, tr, v: prior.param_range.theta(range=r, time_range=tr, velocity_x1=v, alpha=ALPHA)  # noqa: E731
    laws = {}
    for how in ("dense", "kalman"):
        law, _ = likelihood_law(prior.generator, X, Tt, 1e-5, how)
        laws[how] = (lambda law: lambda r, tr, v, s, nz: law(jnp.zeros(n), theta(r, tr, v), s, nz))(law)
    _, auto = likelihood_law(prior.generator, X, Tt, 1e-5, "auto")
    ex = exact_covariance_fn(X, Tt)
    laws["exact"] = lambda r, tr, v, s, nz: dist.MultivariateNormal(
        jnp.zeros(n), covariance_matrix=s**2 * (ex(r, tr, v) + 1e-5 * jnp.eye(n)) + nz**2 * jnp.eye(n))
    return y, laws, auto


def grad_time(model, y, reps=3):
    """(compile s, s per gradient) of the model's potential at the true values (unconstrained space)."""
    from numpyro.infer.util import initialize_model

    info = initialize_model(jax.random.key(0), model, model_kwargs={"y": y}, dynamic_args=False)
    f = jax.jit(jax.value_and_grad(info.potential_fn))
    z = info.param_info.z
    t0 = time.perf_counter()
    jax.block_until_ready(f(z))
    comp = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(reps):
        jax.block_until_ready(f(z))
    return comp, (time.perf_counter() - t0) / reps


def nuts(model, y, warmup, samples, seed=0, warm_start=False, start_x64=False, progress=False):
    """One NUTS chain: NumPyro's own start and adaptation, or (``warm_start``) fit's warm start — the
    chain started at a draw from the Laplace approximation at the posterior mode, with its covariance
    as the dense mass matrix that warm-up keeps (`pinnprob.inference.runners.run_nuts`); the mode and
    Hessian's seconds are reported apart (``warm_start_seconds``) and included in the wall figure.
    ``start_x64``: the mode and Hessian in float64 (``jax.enable_x64``), the chain in float32 from there."""
    from pinnprob.inference.runners import LaplaceStart, laplace_start, run_nuts

    key = jax.random.key(seed)
    t0 = time.perf_counter()
    start = None
    if warm_start:
        with jax.enable_x64(start_x64):
            start = laplace_start(model, y, key, hessian_scale=1.0)
        dtype = jnp.result_type(float)  # the chain's: the start's values cast to it
        start = LaplaceStart({k: np.asarray(v, dtype) for k, v in start.z.items()}, np.asarray(start.hessian), start.info)
    t_start = time.perf_counter() - t0
    t0 = time.perf_counter()
    if warm_start:
        draws, stats = run_nuts(model, y, jax.random.fold_in(key, 2), warmup, samples, 1, progress, start=start)
        v, steps = np.asarray(draws["velocity_x1"])[0], stats["n_steps"]
    else:
        mcmc = MCMC(NUTS(model, target_accept_prob=0.85), num_warmup=warmup, num_samples=samples,
                    progress_bar=progress)
        mcmc.run(key, y=y, extra_fields=("num_steps",))
        v, steps = np.asarray(mcmc.get_samples()["velocity_x1"]), mcmc.get_extra_fields()["num_steps"]
    secs = time.perf_counter() - t0  # np.asarray above waited for the draws
    res = {"ess": float(effective_sample_size(v[None])), "seconds": secs + t_start,
           "leapfrog_kept": int(np.sum(steps)),  # leapfrog steps of the kept draws
           "mean": float(v.mean()), "sd": float(v.std())}
    if warm_start:
        res.update(warm_start_seconds=t_start, divergences=int(np.sum(stats["diverging"])),
                   start_dtype="float64" if start_x64 else "float32", mode_search=start.info,
                   hessian_eigenvalues=np.linalg.eigvalsh(0.5 * (start.hessian + start.hessian.T)).tolist())
    return res


def merge_rows(runs: list[list[dict]]) -> list[dict]:
    """The rows by size of several runs on the same data (e.g. processes run with --nuts-models prior and
    exact, one core each), sorted by n: each chain with the gradients its own process timed (the prior's
    chain with the dense and Kalman gradients, the exact GP's with its gradient); the gradients timed
    alongside the other chain kept as ``grad_*_other``. Sizes without both chains are left out; a chain
    found in two runs is refused."""
    by_n: dict[int, dict] = {}
    own = {"prior": ("dense", "kalman"), "exact": ("exact",)}
    for rows in runs:
        for r in rows:
            m = by_n.setdefault(r["n"], {"n": r["n"], "times": r["times"], "auto": r["auto"]})
            for model, solvers in own.items():
                if f"nuts_{model}" not in r:
                    continue
                if f"nuts_{model}" in m:
                    raise ValueError(f"two {model} chains at n = {r['n']}")
                m[f"nuts_{model}"] = r[f"nuts_{model}"]
                for k in solvers:
                    m[f"compile_{k}"], m[f"grad_{k}"] = r[f"compile_{k}"], r[f"grad_{k}"]
                for k in set(("dense", "kalman", "exact")) - set(solvers):
                    m[f"grad_{k}_other"] = r[f"grad_{k}"]
    return [m for _, m in sorted(by_n.items()) if "nuts_prior" in m and "nuts_exact" in m]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=10)
    ap.add_argument("--times", type=int, nargs="+", default=[25, 50, 100, 200, 500])
    ap.add_argument("--nuts-max", type=int, default=1000, help="largest n run with NUTS")
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--solver", choices=("auto", "dense", "kalman"), default="auto",
                    help="the prior's solver for NUTS (auto: what fit chooses, by its CPU cost model)")
    ap.add_argument("--out", default=str(OUT), help="folder for the page and its JSON")
    ap.add_argument("--name", default="advection_diffusion_speed", help="file name of the page and JSON")
    ap.add_argument("--nuts-models", nargs="+", choices=("prior", "exact"), default=["prior", "exact"],
                    help="which chains to run (one process each, e.g. pinned to a core apiece by taskset, halves "
                         "the wall time of a large size; their gradients are timed in every process)")
    ap.add_argument("--warm-start", action="store_true",
                    help="start every chain as fit's warm start does (mode, Hessian, its inverse as the mass matrix)")
    ap.add_argument("--start-x64", action="store_true",
                    help="with --warm-start: find the mode and Hessian in float64 (the chains stay in float32)")
    ap.add_argument("--progress", action="store_true", help="NumPyro's progress bar for every chain (on stderr)")
    ap.add_argument("--note", default="", help="what else the machine ran, for the page's first line")
    ap.add_argument("--resume", action="store_true",
                    help="keep the sizes already in the JSON (a run cut short) and run the rest")
    ap.add_argument("--render-only", action="store_true",
                    help="write the page from the JSON (--out, --name) without running anything")
    ap.add_argument("--merge", nargs="+", metavar="JSON[:N,...]", default=None,
                    help="with --render-only: first write --name's JSON from these runs' rows (merge_rows), "
                         "of the sizes N (site-times) given after a colon, else all")
    args = ap.parse_args(argv)
    if args.merge:
        if not args.render_only:
            ap.error("--merge needs --render-only")
        Path(args.out).mkdir(parents=True, exist_ok=True)
        runs = []
        for spec in args.merge:
            path, _, sizes = spec.partition(":")
            run = json.loads(Path(path).read_text())
            keep = {int(v) for v in sizes.split(",")} if sizes else {r["n"] for r in run["rows"]}
            runs.append(dict(run, rows=[r for r in run["rows"] if r["n"] in keep]))
        (Path(args.out) / f"{args.name}.json").write_text(json.dumps(
            {"args": runs[0]["args"], "where": runs[0]["where"], "merged_from": args.merge,
             "rows": merge_rows([r["rows"] for r in runs])}, indent=1))
    where = f"{jax.default_backend()} ({', '.join(str(d) for d in jax.devices())}, jax {jax.__version__})"
    print("devices:", where, flush=True)
    prior = pinnprob.pretrained("advection-diffusion-1d")
    rng = np.random.default_rng(0)
    Xs = np.sort(rng.uniform(size=args.sites))[:, None]
    rows = []
    saved = Path(args.out) / f"{args.name}.json"
    if (args.resume or args.render_only) and saved.exists():
        rows = json.loads(saved.read_text())["rows"]
        print("resumed: n =", [r["n"] for r in rows], flush=True)
    for T in [] if args.render_only else args.times:
        if any(r["times"] == T for r in rows):
            rng.standard_normal(T * args.sites)  # the noise that size drew: later sizes get the same data as in one go
            continue
        y, laws, auto = size_data(prior, Xs, T, rng)
        n = y.shape[0]
        row = {"n": n, "times": T, "auto": auto if args.solver == "auto" else args.solver}
        for k, law in laws.items():
            row[f"compile_{k}"], row[f"grad_{k}"] = grad_time(model_for(law), y)
        print(n, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
        if n <= args.nuts_max:
            for k in [row["auto"]] * ("prior" in args.nuts_models) + ["exact"] * ("exact" in args.nuts_models):
                res = nuts(model_for(laws[k]), y, args.warmup, args.samples, warm_start=args.warm_start,
                           start_x64=args.start_x64, progress=args.progress)
                row[f"nuts_{'prior' if k != 'exact' else 'exact'}"] = res
                print("  nuts", k, res, flush=True)
        rows.append(row)
        Path(args.out).mkdir(parents=True, exist_ok=True)  # as it goes: a run cut short keeps its sizes
        (Path(args.out) / f"{args.name}.json").write_text(json.dumps({"args": vars(args), "where": where,
                                                                       "rows": rows}, indent=1))
    # ESS per leapfrog step (one gradient each) at the largest NUTS size, to extrapolate beyond it
    # (none with --nuts-max 0: a gradient-only run, the ESS/s cells then say so)
    last = ([r for r in rows if "nuts_prior" in r and "nuts_exact" in r] or [None])[-1]
    per_step = None if last is None else {k: last[f"nuts_{k}"]["ess"] / last[f"nuts_{k}"]["leapfrog_kept"]
                                          for k in ("prior", "exact")}
    lines = ["# Speed: the 1-D advection–diffusion prior against the exact GP", "",
             "Generated by `python benchmarks/advection_diffusion_speed.py` "
             + (f"(rows merged from {len(args.merge)} runs on the same data{'; ' + args.note if args.note else ''}). "
                if args.merge else
                f"(one run on {os.cpu_count()} CPU cores{'; ' + args.note if args.note else ''}). "
                if jax.default_backend() == "cpu" else f"(one run on {where}). ")
             + 
             f"Data: {args.sites} stations × T times", "(spacing ¼) from the exact sampler; the model and priors of "
             "advection_diffusion_posterior.md (α = 1.5 fixed).", "",
             "*Gradient*: one evaluation of the log density and its gradient, after compilation (compile times in the JSON).",
             ("The prior's solver is the one `fit` chooses (`solver=\"auto\"`). " if args.solver == "auto" else
              f"The prior's solver is `{args.solver}` (set by --solver). ") + "NUTS: one chain, "
             f"{args.warmup} + {args.samples} iterations"
             + (", both models warm-started as `fit` does (the posterior mode and Hessian, the chain started at a draw "
                "from the Laplace approximation with its covariance as the dense mass matrix; the mode's seconds "
                "count in the wall figure" + ("; mode and Hessian found in float64, chains in float32" if args.start_x64
                                             else "") + ")" if args.warm_start else "")
             + ". *ESS/s (run)*: ESS of the velocity / (leapfrog steps of the",
             "kept draws × gradient time) — the sampling phase's cost without compilation or warm-up; *wall*: ESS / the whole",
             "run's wall time, compilation and warm-up included. Beyond the largest NUTS size the run figure is extrapolated",
             "from its ESS per leapfrog step.", "",
             "| n | gradient: prior dense | prior Kalman | exact GP (dense) | fit's solver | ESS/s prior (run / wall) | "
             "ESS/s exact (run / wall) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        g = {"prior": r["grad_" + r["auto"]], "exact": r["grad_exact"]}
        cells = []
        for k in ("prior", "exact"):
            if f"nuts_{k}" in r:
                nu = r[f"nuts_{k}"]
                cells.append(f"{nu['ess'] / (nu['leapfrog_kept'] * g[k]):.3g} / {nu['ess'] / nu['seconds']:.3g}")
            elif per_step is not None:
                cells.append(f"≈ {per_step[k] / g[k]:.3f} (extrapolated)")
            else:
                cells.append("not run")
        lines.append(f"| {r['n']} | {r['grad_dense']:.3f} s | {r['grad_kalman']:.3f} s | {r['grad_exact']:.3f} s | "
                     f"{r['auto']} | {cells[0]} | {cells[1]} |")
    if last is not None:
        lines += ["", f"ESS per leapfrog step at n = {last['n']}: prior {per_step['prior']:.3g}, "
                      f"exact {per_step['exact']:.3g}."]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    if not args.render_only:
        (out / f"{args.name}.json").write_text(json.dumps({"args": vars(args), "where": where, "rows": rows}, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
