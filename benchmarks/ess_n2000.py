"""ESS per second of the range at n = 2 000, every method measured in one run (issue 13's Must show:
≥ 100× exact-GP NUTS, measured, and ≥ 3× NumPyro HSGP at matching accuracy).

    python benchmarks/ess_n2000.py [--n 2000] [--exact-warmup 150 --exact-samples 150]

Data, priors and models: the inference benchmark's (``inference_vs_exact``: uniform sites on the unit
square, an exact Matérn draw with range 0.3, ν = 1.5 fixed, σ = 1, noise 0.3; range ~ U(0.15, 1),
σ ~ HalfNormal(2), noise ~ HalfNormal(1)). Methods, one chain each, one after the other:

* exact GP: NumPyro NUTS on the dense Cholesky (``exact_model``), stepped by ``run_nuts`` so that
  compilation is timed apart; ``--exact-warmup`` + ``--exact-samples`` (a 300 + 600 run would take
  about 2 h here);
* NumPyro HSGP (m = 65 per dimension, c = 2, eigenfunctions precomputed), 300 + 600, the same loop;
* pinnprob ``fit(method="nuts")`` (fit's choice of form), 300 + 600;
* pinnprob ``fit(method="laplace")``, 1 000 draws, with axial integration (independent draws from
  split normals, ESS = the distinct draws) and with fit's choice at this size, importance-weighted
  proposals (ESS: the weights' Kish ESS, capped at the distinct draws); its seconds are fit's
  sampling clock (compilation, mode, Hessian and proposals or axial points included), 100 field
  draws timed apart.

The exact GP's own posterior of the range is also computed without NUTS's Monte Carlo error
(``--reference``, a separate run appended to the JSON): pinnprob's Laplace runner on the *exact*
model (dense Cholesky), 4 000 multivariate-t proposals weighted by the exact posterior, so its mean
and sd carry only the importance error (≈ 1/√(importance ESS) sd). Accuracy columns are against it;
its time is shown too (the exact GP integrated the INLA way), as a peer at this size. ``--reference-axial``
adds the exact GP by axial integration, which tells the axial integration's error from the prior's.

ESS/s = bulk ESS (Laplace: as above) / seconds of warm-up + sampling (compile apart) for the NUTS
runs, and / the whole sampling clock for Laplace (its compile included: it is a one-off cost there
too). Accuracy: each method's posterior mean and sd of the range against the exact GP's. Writes
docs/results/ess_n2000.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import distances  # benchmarks/ is sys.path[0]
from inference_vs_exact import (PRIOR_TEXT, TRUE, ess_bulk, exact_model, hsgp_model, make_data, priors, run_nuts,
                                run_pinnprob)

import pinnprob

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "exact GP, importance-weighted Laplace (accuracy reference)"
EXACT_AXIAL = "exact GP, axial Laplace"


def laplace_ess(info: dict, draws) -> float:
    """Effective draws of a Laplace fit: Kish's ESS of the importance weights, or the draws themselves
    (axial: independent draws from the split normals), capped at the distinct draws."""
    return min(info.get("importance_ess", draws.size), len(np.unique(draws)))


def laplace(X, y, draws: int, seed: int, integration: str | None) -> dict:
    P = priors()
    t = time.perf_counter()
    idata = pinnprob.fit(X, y, nu=TRUE["nu"], range_prior=P["range"], sigma_prior=P["sigma"], noise_prior=P["noise"],
                         method="laplace", num_samples=draws, field_draws=100, seed=seed, progress_bar=False,
                         integration=integration)
    wall = time.perf_counter() - t
    meta = json.loads(idata.attrs["pinnprob"])
    r = idata.posterior["range"].values.reshape(-1)
    L = meta["laplace"]
    ess = laplace_ess(L, r)
    return {"samples": {"range": r}, "sampling_s": meta["sampling_seconds"], "fit_wall_s": wall, "ess": ess,
            "laplace": L, "path": meta["collapsed_path"]}


def exact_reference(X, y, draws: int, seed: int, integration: str = "importance") -> dict:
    """The exact GP's posterior by pinnprob's Laplace runner on exact_model: importance-weighted (the
    accuracy reference) or axial (to tell the axial integration's error from the prior's)."""
    import jax
    from pinnprob.inference.runners import run_laplace

    model = exact_model(distances(X), y)
    t = time.perf_counter()
    samples, _, info = run_laplace(model, jax.numpy.asarray(y, jax.numpy.float32), jax.random.key(seed + 7), draws, 1,
                                   False, integration=integration)
    secs = time.perf_counter() - t
    r = np.asarray(samples["range"]).reshape(-1)
    ess = laplace_ess(info, r)
    return {"samples": {"range": r}, "sampling_s": secs, "ess": ess, "laplace": info}


def summary(name: str, r: dict) -> dict:
    s = np.asarray(r["samples"]["range"], np.float64)
    if "ess" in r:  # Laplace
        ess, secs, setup = r["ess"], r["sampling_s"], 0.0
    elif "run_s" in r:  # run_nuts: compile apart
        ess, secs, setup = ess_bulk(s), r["run_s"], r["setup_s"]
    else:  # fit(method="nuts"): fit's clock, compile included
        ess, secs, setup = ess_bulk(s), r["sampling_s"], 0.0
    return {"method": name, "mean": float(s.mean()), "sd": float(s.std()), "ess": float(ess), "seconds": float(secs),
            "setup_s": float(setup), "ess_per_s": float(ess / secs), "draws": int(s.size)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exact-warmup", type=int, default=150)
    ap.add_argument("--exact-samples", type=int, default=150)
    ap.add_argument("--render", action="store_true")
    ap.add_argument("--reference", action="store_true",
                    help="only add the exact GP's importance-weighted posterior to the existing JSON")
    ap.add_argument("--reference-axial", action="store_true",
                    help="only add the exact GP's posterior by axial integration to the existing JSON")
    args = ap.parse_args(argv)
    out = ROOT / "docs" / "results" / "ess_n2000.json"
    if args.render:
        write(json.loads(out.read_text()), out.with_suffix(".md"))
        return 0
    X, y = make_data(args.n, args.seed)
    if args.reference or args.reference_axial:
        name, integration = (REFERENCE, "importance") if args.reference else (EXACT_AXIAL, "axial")
        res = json.loads(out.read_text())
        res["rows"] = [r for r in res["rows"] if r["method"] != name]
        r = exact_reference(X, y, 1000, args.seed, integration)
        res["rows"].append(summary(name, r) | {k: v for k, v in r.items() if k != "samples"})
        print(json.dumps(res["rows"][-1], default=float), flush=True)
        out.write_text(json.dumps(res, indent=1, default=float))
        write(res, out.with_suffix(".md"))
        return 0
    res = {"n": args.n, "seed": args.seed, "rows": []}

    def save(name, r):
        res["rows"].append(summary(name, r) | {k: v for k, v in r.items() if k not in ("samples",)})
        print(json.dumps(res["rows"][-1]), flush=True)
        out.write_text(json.dumps(res, indent=1, default=float))

    save("pinnprob laplace, axial", laplace(X, y, 1000, args.seed, "axial"))
    save("pinnprob laplace, importance (fit's choice)", laplace(X, y, 1000, args.seed, None))
    save("pinnprob NUTS (fit's choice)", run_pinnprob(pinnprob.pretrained("matern2d"), X, y, TRUE["nu"], 300, 600,
                                                      args.seed))
    model, _ = hsgp_model(X, y, m=65, c=2.0, precompute=True)
    save("NumPyro HSGP (m = 65, c = 2)", run_nuts(model, y, 300, 600, args.seed))
    save("exact GP", run_nuts(exact_model(distances(X), y), y, args.exact_warmup, args.exact_samples, args.seed))
    write(res, out.with_suffix(".md"))
    return 0


def write(res: dict, path: Path) -> None:
    rows = {r["method"]: r for r in res["rows"]}
    ex = rows.get("exact GP")
    hs = rows.get("NumPyro HSGP (m = 65, c = 2)")
    ref = rows.get(REFERENCE, ex)  # accuracy: the exact GP without NUTS's Monte Carlo error where run
    ref_name = "exact, IS" if REFERENCE in rows else "exact"
    lines = [
        f"# ESS per second of the range at n = {res['n']}: every method measured, one run",
        "",
        f"Generated by `python benchmarks/ess_n2000.py` (2-core CPU, float32, one method after another on a quiet "
        f"machine). Data: the inference benchmark's n = {res['n']} sites (exact Matérn draw, range 0.3, ν = 1.5 "
        f"fixed, σ = 1, noise 0.3); priors: {PRIOR_TEXT}. One chain each. NUTS runs: bulk ESS over the seconds of "
        "warm-up + sampling, compilation apart (pinnprob's `fit(method=\"nuts\")`: fit's own clock, compilation "
        "included). Laplace: the importance weights' effective sample size (capped at the distinct draws) over "
        "fit's whole sampling clock (compilation, mode, Hessian and proposals).",
        "",
        f"| method | draws | E[range] (sd) | Δmean / sd({ref_name}) | sd ratio | ESS | seconds | compile s | ESS/s | "
        "× exact GP | × HSGP |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        dm = f"{(r['mean'] - ref['mean']) / ref['sd']:+.2f}" if ref else "—"
        sr = f"{r['sd'] / ref['sd']:.2f}" if ref else "—"
        xe = f"{r['ess_per_s'] / ex['ess_per_s']:.0f}×" if ex else "—"
        xh = f"{r['ess_per_s'] / hs['ess_per_s']:.1f}×" if hs else "—"
        lines.append(f"| {r['method']} | {r['draws']} | {r['mean']:.4f} ({r['sd']:.4f}) | {dm} | {sr} | {r['ess']:.0f} | "
                     f"{r['seconds']:.1f} | {r['setup_s']:.1f} | **{r['ess_per_s']:.3g}** | {xe} | {xh} |")
    lines += ["", res.get("notes", "")]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
