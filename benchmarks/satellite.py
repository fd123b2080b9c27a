"""Satellite-like gap filling at ~10⁵ sites (issue 13's first Must show): pinnprob's
``fit(method="laplace")`` against a GMRF SPDE model fitted the R-INLA way, in one run.

    python benchmarks/satellite.py --range-frac 0.1            # data, both methods, report
    python benchmarks/satellite.py --range-frac 0.1 --only gmrf  # one method (a subprocess of the above)
    python benchmarks/satellite.py --range-frac 0.1 --only pinnprob --method nuts   # NUTS (pinnprob_nuts)

Data: a 500 × 300 grid of cells of side 0.01 on [0, 5] × [0, 3]; a Matérn field (ν = 1, σ = 1, range
``range-frac`` × the width) drawn exactly on the grid by circulant embedding (Dietrich & Newsam 1997;
the embedding's negative eigenvalues, clipped, are reported); noise sd 0.3; random discs (radius
0.05-0.3) masked until 30 % of the cells are missing (clouds). Both models see the observed cells,
predict the missing ones, and are scored against the true field and the noisy values there: RMSE of
the predictive mean, CRPS and 95 % interval coverage of a normal predictive with the predictive sd
(for the noisy values, sd² + noise²).

Both models: y = intercept + u(x) + ε, u Matérn ν = 1 (α = 2), the same priors — range ~
LogUniform(0.6 ρ, 5 ρ) (ρ the true range), σ ~ PC(P(σ > 2 sd y) = 0.05), noise ~ HalfNormal(sd y),
intercept ~ N(mean y, (2 sd y)²) — and the same 0.5 extension of the rectangle on every side. With
``--range-prior pc`` both take fit's default range prior instead, PC with P(range < extent/10) = 0.05
(extent the observed cells' longest side; Fuglstad et al. 2019).

* pinnprob: the shipped ``matern2d`` prior, ν fixed at 1, ``buffer=0.1`` (the box is the rectangle
  plus 0.5 on each side, 6 × 4; before 2026-12-06 the 6 × 6 square around it), ``method="laplace"``
  (mode, Hessian, and the integration fit's cost model picks, or ``--integration``), ``field_draws``
  fields recovered and used by ``predict``. With ``--method nuts``: ``fit(method="nuts")``, which at
  this size collapses the field and warm-starts NUTS at the Laplace approximation (its covariance the
  mass matrix), ``--warmup`` iterations adapting the step size, then ``--draws`` draws.
* GMRF (written here): P1 elements on a regular triangulation of [−0.5, 5.5] × [−0.5, 3.5], lumped
  mass, Q = τ²(κ⁴C̃ + 2κ²G + GC̃⁻¹G) (Lindgren, Rue & Lindström 2011); the intercept a latent node;
  log p(y | θ) by sparse LU factorisations (SciPy's SuperLU: scikit-sparse's CHOLMOD has no wheels);
  the hyperparameters' (log range, log σ, log noise) posterior mode by Nelder–Mead, the Hessian there by
  differences, and a central composite design around it (``ccd``: 15 points, each weighted by the
  posterior over the Laplace approximation's density there); the field's conditional
  mean exactly and its variance at the missing cells from 100 exact conditional draws per design
  (perturbation sampling), mixed over the design.

Writes docs/results/satellite_<pct>.json (and .md with --report, the default when both ran).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import central_hessian  # benchmarks/ is sys.path[0]

ROOT = Path(__file__).resolve().parents[1]
NX, NY, H = 500, 300, 0.01
WIDTH, HEIGHT = NX * H, NY * H
NOISE, SIGMA, MISSING = 0.3, 1.0, 0.30
EXT = 0.5  # extension of the rectangle on each side, both models


def matern1(r, rho):
    """Matérn ν = 1 correlation (κr)K₁(κr), κ = √8/ρ."""
    import scipy.special as sc

    kr = math.sqrt(8.0) / rho * np.asarray(r, np.float64)
    out = np.ones_like(kr)
    nz = kr > 0
    out[nz] = kr[nz] * sc.k1(kr[nz])
    return out


def make_data(seed: int, rho: float) -> dict:
    """The grid, the true field, the noisy values and the cloud mask (True = missing)."""
    rng = np.random.default_rng(seed)
    Mx, My = 2048, 1024  # torus 20.48 × 10.24: the correlation at half its sides is below 1e-9
    ix = np.minimum(np.arange(Mx), Mx - np.arange(Mx)) * H
    iy = np.minimum(np.arange(My), My - np.arange(My)) * H
    lam = np.fft.fft2(matern1(np.sqrt(ix[:, None] ** 2 + iy[None, :] ** 2), rho)).real
    neg = float(-lam.min() / lam.max())
    lam = np.maximum(lam, 0.0)
    e = rng.standard_normal((Mx, My)) + 1j * rng.standard_normal((Mx, My))
    f = SIGMA * np.fft.fft2(np.sqrt(lam / (Mx * My)) * e).real[:NX, :NY]
    xs, ys = (np.arange(NX) + 0.5) * H, (np.arange(NY) + 0.5) * H
    X = np.stack(np.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)
    f = f.reshape(-1)
    y = f + NOISE * rng.standard_normal(f.shape)
    mask = np.zeros(len(X), bool)
    while mask.mean() < MISSING:
        c, r = rng.uniform([0, 0], [WIDTH, HEIGHT]), rng.uniform(0.05, 0.3)
        mask |= np.sum((X - c) ** 2, 1) < r**2
    return {"X": X, "f": f, "y": y, "missing": mask, "embedding_negative": neg}


def priors_text(rho, range_prior: str = "loguniform"):
    rng = (f"range ~ LogUniform({0.6 * rho:g}, {5 * rho:g})" if range_prior == "loguniform" else
           "range ~ PC(P(range < extent/10) = 0.05) (fit's default; extent the observed cells' longest side)")
    return rng + ", σ ~ PC(P(σ > 2 sd y) = 0.05), noise ~ HalfNormal(sd y), intercept ~ N(mean y, (2 sd y)²)"


def pc_range0(X) -> float:
    """fit's default PC range prior's ρ0: the sites' longest side / 10, P(range < ρ0) = 0.05."""
    return float(np.max(X.max(0) - X.min(0))) / 10


def scores(mean, sd, truth):
    """RMSE, mean CRPS of N(mean, sd²) and 95 % coverage against ``truth``."""
    from scipy.stats import norm

    z = (truth - mean) / sd
    crps = sd * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / math.sqrt(math.pi))
    return {"rmse": float(np.sqrt(np.mean((truth - mean) ** 2))), "crps": float(np.mean(crps)),
            "coverage95": float(np.mean(np.abs(z) <= 1.959964))}


def peak_memory_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


# ----------------------------------------------------------------------------------------------- pinnprob
def run_pinnprob(data, rho, draws: int, mode_tol: float, x64: bool, integration: str | None = None,
                 range_prior: str = "loguniform", method: str = "laplace", warmup: int = 50) -> dict:
    import jax

    # at 10⁵ sites a float32 log density is good to ~0.1 only (Woodbury's rᵀr/s² − |w|² cancels), and
    # L-BFGS stops short of the mode in its line search: float64
    jax.config.update("jax_enable_x64", x64)
    import numpyro.distributions as dist

    import pinnprob

    obs = ~data["missing"]
    X, y = data["X"][obs], data["y"][obs]
    t0 = time.perf_counter()
    # range_prior None: fit's default, PC with P(range < extent/10) = 0.05
    rp = dist.LogUniform(0.6 * rho, 5 * rho) if range_prior == "loguniform" else None
    # NUTS: fit's default at these sizes, a warm start at the Laplace approximation (pilot, mode,
    # Hessian) with its covariance as the mass matrix, then ``warmup`` iterations adapting the step size
    idata = pinnprob.fit(X, y, nu=1.0, range_prior=rp, method=method, num_warmup=warmup,
                         num_samples=draws, buffer=0.1, mode_tol=mode_tol, progress_bar=True, seed=0,
                         integration=integration)
    t_fit = time.perf_counter() - t0
    meta = json.loads(idata.attrs["pinnprob"])
    t0 = time.perf_counter()
    pred = pinnprob.predict(idata, data["X"][data["missing"]], chunk=4096)
    t_pred = time.perf_counter() - t0
    post = idata.posterior
    summ = {k: {"mean": float(post[k].values.mean()), "sd": float(post[k].values.std())}
            for k in ("range", "sigma", "noise", "intercept")}
    nuts = {}
    if method == "nuts":
        import arviz as az

        steps = np.asarray(idata.sample_stats["n_steps"].values)
        nuts = {"warmup": warmup, "warm_start": meta["warm_start"], "n_steps_mean": float(steps.mean()),
                "divergences": int(np.asarray(idata.sample_stats["diverging"].values).sum()),
                "ess": {k: float(az.ess(np.asarray(post[k].values))) for k in ("range", "sigma", "noise")}}
        nuts["ess_per_s_sampling"] = {k: v / meta["seconds"]["sampling"] for k, v in nuts["ess"].items()}
    return {"method": f"pinnprob {method}", **nuts, "dtype": "float64" if x64 else "float32", "mode_tol": mode_tol, "fit_s": t_fit, "predict_s": t_pred, "mean": pred["mean"], "sd": pred["sd"],
            "noise": summ["noise"]["mean"], "posterior": summ, "modes": int(post["field_latent"].shape[-1]),
            "path": meta["collapsed_path"], "laplace": meta.get("laplace"), "devices": jax.local_device_count(),
            "sampling_s": meta["sampling_seconds"], "phase_s": meta["seconds"],
            "field_draws": meta.get("field_draws"), "modes_cut": meta.get("modes")}


# --------------------------------------------------------------------------------------------------- GMRF
def probes(basis, X, chunk: int = 2000):
    """scikit-fem's P1 interpolation matrix at X (n, 2), in chunks (its element finder's memory grows
    with sites × elements)."""
    import scipy.sparse as sp

    return sp.vstack([basis.probes(X[s:s + chunk].T) for s in range(0, len(X), chunk)]).tocsr()


class GMRF:
    """The α = 2 SPDE on a regular P1 mesh of [−EXT, W + EXT] × [−EXT, H + EXT] with cells of side h,
    the intercept an extra latent node; sparse matrices with SciPy, assembly with scikit-fem."""

    def __init__(self, h: float, X, y, intercept_sd: float):
        import scipy.sparse as sp
        import skfem
        from skfem.helpers import dot, grad

        nx, ny = round((WIDTH + 2 * EXT) / h), round((HEIGHT + 2 * EXT) / h)
        mesh = skfem.MeshTri.init_tensor(np.linspace(-EXT, WIDTH + EXT, nx + 1), np.linspace(-EXT, HEIGHT + EXT, ny + 1))
        basis = skfem.Basis(mesh, skfem.ElementTriP1())
        self.G = skfem.BilinearForm(lambda u, v, w: dot(grad(u), grad(v))).assemble(basis).tocsc()
        self.C = np.asarray(skfem.BilinearForm(lambda u, v, w: u * v).assemble(basis).sum(1)).ravel()
        self.GCG = (self.G @ sp.diags(1 / self.C) @ self.G).tocsc()
        self.N = mesh.p.shape[1]
        A = probes(basis, X)
        self.A = sp.hstack([A, sp.csr_matrix(np.ones((len(y), 1)))]).tocsr()  # last column: the intercept
        self.AtA = (self.A.T @ self.A).tocsc()
        self.basis, self.y, self.ybar, self.ysd = basis, np.asarray(y, np.float64), float(np.mean(y)), float(np.std(y))
        self.prec_int = 1.0 / intercept_sd**2

    def parts(self, rho, sigma):
        """(κ², τ) of ν = 1 in 2-D: σ² = 1/(4π κ² τ²)."""
        k2 = 8.0 / rho**2
        return k2, 1.0 / (sigma * math.sqrt(4 * math.pi * k2))

    def Q(self, rho, sigma):
        import scipy.sparse as sp

        k2, tau = self.parts(rho, sigma)
        Qf = tau**2 * (k2**2 * sp.diags(self.C) + 2 * k2 * self.G + self.GCG)
        return sp.block_diag([Qf, sp.csc_matrix([[self.prec_int]])]).tocsc()

    def logdet_Q(self, rho, sigma):
        """log det Q = 2N log τ + 2 log det K − Σ log C̃ (Q = τ² K C̃⁻¹ K, K = κ²C̃ + G), + the intercept's."""
        import scipy.sparse as sp
        from scipy.sparse.linalg import splu

        k2, tau = self.parts(rho, sigma)
        K = (k2 * sp.diags(self.C) + self.G).tocsc()
        lu = splu(K, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
        return (2 * self.N * math.log(tau) + 2 * np.sum(np.log(np.abs(lu.U.diagonal()))) - np.sum(np.log(self.C))
                + math.log(self.prec_int))

    def conditional(self, rho, sigma, noise):
        """(log p(y | θ), the factorised P, the conditional mean of the nodes and intercept)."""
        from scipy.sparse.linalg import splu

        s2 = noise**2
        r = self.y - self.ybar  # the intercept's prior mean ȳ, taken out
        P = (self.Q(rho, sigma) + self.AtA / s2).tocsc()
        lu = splu(P, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
        b = self.A.T @ r / s2
        mu = lu.solve(b)
        n = len(r)
        quad = r @ r / s2 - b @ mu
        logdet = np.sum(np.log(np.abs(lu.U.diagonal()))) - self.logdet_Q(rho, sigma) + n * math.log(s2)
        return -0.5 * (quad + logdet + n * math.log(2 * math.pi)), lu, mu

    def log_post(self, t, lo, hi, pc_range0=None):
        """Log posterior of t = (log ρ, log σ, log noise), Jacobians included, up to a constant: the
        range log-uniform on [lo, hi], or (``pc_range0``) PC with P(ρ < ρ0) = 0.05 in 2-D."""
        rho, sigma, noise = np.exp(t)
        if not lo <= rho <= hi:
            return -np.inf
        lam = -math.log(0.05) / (2 * self.ysd)  # PC prior of σ: exponential
        lp = -lam * sigma + math.log(sigma)  # + log σ: Jacobian of log σ
        lp += -0.5 * (noise / self.ysd) ** 2 + math.log(noise)  # half-normal and its Jacobian
        if pc_range0 is not None:  # π(ρ) = λ ρ⁻² exp(−λ/ρ), λ = −log(0.05) ρ0 (Fuglstad et al. 2019), + log ρ
            lam_r = -math.log(0.05) * pc_range0
            lp += math.log(lam_r) - math.log(rho) - lam_r / rho
        # else log-uniform range: flat in log ρ
        return self.conditional(rho, sigma, noise)[0] + lp

    def draws(self, rng, rho, sigma, noise, lu, mu, num):
        """``num`` exact draws of the latent (nodes and intercept) given y and θ, by perturbation:
        x = P⁻¹(η + Aᵀ(r + s ε)/s²), η ~ N(0, Q) = τ(K C̃^{-1/2}ξ, √prec ξ'), ε ~ N(0, I)."""
        import scipy.sparse as sp

        k2, tau = self.parts(rho, sigma)
        K = (k2 * sp.diags(self.C) + self.G).tocsc()
        xi = rng.standard_normal((self.N, num))
        eta = np.vstack([tau * (K @ (xi / np.sqrt(self.C)[:, None])),
                         math.sqrt(self.prec_int) * rng.standard_normal((1, num))])
        eps = rng.standard_normal((len(self.y), num))
        rhs = eta + self.A.T @ ((self.y - self.ybar)[:, None] + noise * eps) / noise**2
        return lu.solve(rhs)


def ccd(p: int):
    """A central composite design in p ≤ 3 dimensions, standardised (the Laplace approximation is
    N(0, I)): the centre, the 2^p corners (±√3, …, ±√3) and the 2p axial points ±√3 e_i, with the
    weights (centre (8 − 2p)/9, corners 1/(9·2^p), axial 1/9) that integrate polynomials of degree
    ≤ 5 against N(0, I) exactly (moments 1, z_i² → 1, z_i⁴ → 3, z_i²z_j² → 1). R-INLA's CCD puts the
    points on one sphere and sets its weights differently; the design's role is the same.
    Returns (points (K, p), weights (K,))."""
    import itertools

    if p > 3:
        raise ValueError("this design has a positive centre weight for p ≤ 3 only")
    r = math.sqrt(3.0)
    corners = r * np.array(list(itertools.product((-1.0, 1.0), repeat=p)))
    axial = r * np.concatenate([np.eye(p), -np.eye(p)])
    pts = np.concatenate([np.zeros((1, p)), corners, axial])
    weights = np.concatenate([[(8 - 2 * p) / 9], np.full(2**p, 1 / (9 * 2**p)), np.full(2 * p, 1 / 9)])
    return pts, weights


def check_gmrf():
    """The sparse GMRF against dense linear algebra on a small problem (60 sites, 1.5 · 10² nodes): its
    log marginal likelihood and conditional mean to rounding, and its conditional draws' variance within
    4 Monte Carlo sd (√(2/4000) each). AssertionError otherwise."""
    rng = np.random.default_rng(0)
    X = rng.uniform([0, 0], [WIDTH, HEIGHT], (60, 2))
    y = rng.normal(size=60) + 2
    g = GMRF(0.5, X, y, intercept_sd=3.0)
    rho, sig, noise = 1.0, 0.8, 0.4
    lp, lu, mu = g.conditional(rho, sig, noise)
    Q, A = g.Q(rho, sig).toarray(), g.A.toarray()
    r = y - y.mean()
    Sig = A @ np.linalg.inv(Q) @ A.T + noise**2 * np.eye(60)
    ref = -0.5 * (r @ np.linalg.solve(Sig, r) + np.linalg.slogdet(Sig)[1] + 60 * math.log(2 * math.pi))
    assert abs(lp - ref) < 1e-8 * abs(ref), (lp, ref)
    P = Q + A.T @ A / noise**2
    assert np.allclose(mu, np.linalg.solve(P, A.T @ r / noise**2), atol=1e-10)
    D = g.draws(rng, rho, sig, noise, lu, mu, 4000)
    ratio = D.var(1) / np.diag(np.linalg.inv(P))
    assert np.all(np.abs(ratio - 1) < 4 * math.sqrt(2 / 4000) + 0.01), ratio.min()


def run_gmrf(data, rho, h, samples: int, range_prior: str = "loguniform") -> dict:
    import scipy.optimize

    check_gmrf()

    obs = ~data["missing"]
    X, y = data["X"][obs], data["y"][obs]
    t0 = time.perf_counter()
    g = GMRF(h, X, y, intercept_sd=2 * float(np.std(y)))
    pc0 = None if range_prior == "loguniform" else pc_range0(X)
    lo, hi = (0.6 * rho, 5 * rho) if pc0 is None else (1e-3, 1e3)
    t_setup = time.perf_counter() - t0
    evals = [0]

    def neg(t):
        evals[0] += 1
        v = g.log_post(t, lo, hi, pc0)
        return -v if np.isfinite(v) else 1e300

    # start: the range at the prior's geometric centre (PC: ρ0), σ and the noise splitting the variance
    t_start = np.log([math.sqrt(lo * hi) if pc0 is None else pc0, 0.8 * g.ysd, 0.5 * g.ysd])
    res = scipy.optimize.minimize(neg, t_start, method="Nelder-Mead",
                                  options={"xatol": 1e-3, "fatol": 1e-2, "maxfev": 400})
    mode = res.x
    # Hessian of −log π by central differences (step 0.02 in log units)
    p, f0 = 3, neg(mode)
    Hm = central_hessian(neg, mode, 0.02, f0)
    lam, V = np.linalg.eigh(Hm)
    if np.any(lam <= 0):
        raise RuntimeError(f"GMRF: Hessian not positive definite at the mode: {lam}")
    S = V / np.sqrt(lam)
    Z, wz = ccd(p)
    thetas = mode + Z @ S.T
    logp = np.array([-neg(t) for t in thetas])
    # π(θ_k | y) over the Gaussian's density at z_k, times the design's weight (self-normalised)
    logw = np.log(wz) + logp - (-f0) + 0.5 * np.sum(Z**2, 1)
    wts = np.exp(logw - logw.max())
    wts /= wts.sum()
    t_fit = time.perf_counter() - t0
    # prediction at the missing cells: per design point, the exact conditional mean and `samples` draws
    t0 = time.perf_counter()
    Xm = data["X"][data["missing"]]
    import scipy.sparse as sp

    Am = sp.hstack([probes(g.basis, Xm), sp.csr_matrix(np.ones((len(Xm), 1)))]).tocsr()
    rng = np.random.default_rng(1)
    m1 = np.zeros(len(Xm))
    m2 = np.zeros(len(Xm))
    noise2 = 0.0
    keep = wts > 1e-4
    for t, w in zip(thetas[keep], wts[keep] / wts[keep].sum()):
        rho_k, sig_k, noise_k = np.exp(t)
        _, lu, mu = g.conditional(rho_k, sig_k, noise_k)
        mean_k = Am @ mu + g.ybar
        Dk = Am @ g.draws(rng, rho_k, sig_k, noise_k, lu, mu, samples) + g.ybar
        var_k = Dk.var(1, ddof=1)
        m1 += w * mean_k
        m2 += w * (var_k + mean_k**2)
        noise2 += w * noise_k**2
    t_pred = time.perf_counter() - t0
    sd = np.sqrt(np.maximum(m2 - m1**2, 1e-12))
    post_t = (wts[:, None] * np.exp(thetas)).sum(0)
    post_sd = np.sqrt((wts[:, None] * np.exp(thetas) ** 2).sum(0) - post_t**2)
    return {"method": "GMRF (R-INLA way)", "fit_s": t_fit, "setup_s": t_setup, "predict_s": t_pred, "mean": m1,
            "sd": sd, "noise": math.sqrt(noise2), "nodes": g.N, "mesh_h": h, "evaluations": evals[0],
            "design_points": int(len(Z)), "design_used": int(keep.sum()), "samples_per_point": samples,
            "posterior": {k: {"mean": float(post_t[i]), "sd": float(post_sd[i])}
                          for i, k in enumerate(("range", "sigma", "noise"))},
            "mode": dict(zip(("range", "sigma", "noise"), np.exp(mode).tolist())), "nelder_mead_steps": int(res.nit)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--range-frac", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=("gmrf", "pinnprob"))
    ap.add_argument("--draws", type=int, default=100, help="pinnprob: posterior draws (fields recovered)")
    ap.add_argument("--method", choices=("laplace", "nuts"), default="laplace",
                    help="pinnprob: fit's method (the JSON keys a NUTS run as pinnprob_nuts)")
    ap.add_argument("--warmup", type=int, default=50, help="pinnprob NUTS: warm-up iterations")
    ap.add_argument("--mode-tol", type=float, default=0.01)
    ap.add_argument("--float32", action="store_true", help="pinnprob in float32 (default: float64)")
    ap.add_argument("--integration", choices=("axial", "importance"), default=None,
                    help="pinnprob: the Laplace integration (default: fit's choice by its cost model)")
    ap.add_argument("--label", default=None, help="store this run as <method>_<label> in the JSON")
    ap.add_argument("--gmrf-samples", type=int, default=100)
    ap.add_argument("--mesh-cells-per-range", type=float, default=10.0)
    ap.add_argument("--range-prior", choices=("loguniform", "pc"), default="loguniform",
                    help="both methods: LogUniform(0.6 ρ, 5 ρ) (ρ the true range), or fit's default PC prior")
    a = ap.parse_args()
    rho = a.range_frac * WIDTH
    tag = f"{round(100 * a.range_frac)}"
    out = ROOT / "docs" / "results" / f"satellite_{tag}.json"
    if a.only is None:
        for m in ("gmrf", "pinnprob"):
            cmd = [sys.executable, __file__, "--range-frac", str(a.range_frac), "--seed", str(a.seed), "--only", m,
                   "--draws", str(a.draws), "--mode-tol", str(a.mode_tol), "--gmrf-samples", str(a.gmrf_samples),
                   "--mesh-cells-per-range", str(a.mesh_cells_per_range), "--range-prior", a.range_prior,
                   "--method", a.method, "--warmup", str(a.warmup)] \
                + (["--float32"] if a.float32 else []) \
                + ([] if a.integration is None else ["--integration", a.integration])
            print("$", " ".join(cmd[1:]), flush=True)
            subprocess.run(cmd, check=False)
        report(out, tag)
        return
    t0 = time.perf_counter()
    data = make_data(a.seed, rho)
    t_data = time.perf_counter() - t0
    miss = data["missing"]
    if a.only == "gmrf":
        r = run_gmrf(data, rho, rho / a.mesh_cells_per_range, a.gmrf_samples, a.range_prior)
    else:
        r = run_pinnprob(data, rho, a.draws, a.mode_tol, not a.float32, a.integration, a.range_prior, a.method,
                         a.warmup)
    r["priors"] = priors_text(rho, a.range_prior)
    f_m, y_m = data["f"][miss], data["y"][miss]
    r["scores_field"] = scores(r["mean"], r["sd"], f_m)
    r["scores_noisy"] = scores(r["mean"], np.sqrt(r["sd"] ** 2 + r["noise"] ** 2), y_m)
    r["peak_memory_gb"] = peak_memory_gb()
    r["wall_s"] = r["fit_s"] + r["predict_s"]
    del r["mean"], r["sd"]
    print(json.dumps(r, indent=1), flush=True)
    res = json.loads(out.read_text()) if out.exists() else {}
    res.update({"range": rho, "range_frac": a.range_frac, "seed": a.seed, "n_obs": int((~miss).sum()),
                "n_missing": int(miss.sum()), "embedding_negative": data["embedding_negative"], "data_s": t_data,
                "field_sd_sample": float(data["f"].std())})
    key = a.only if a.only == "gmrf" or a.method == "laplace" else f"{a.only}_{a.method}"
    res[key if a.label is None else f"{key}_{a.label}"] = r
    out.write_text(json.dumps(res, indent=1))


def report(out: Path, tag: str):
    res = json.loads(out.read_text())
    runs = [k for k in res if k.startswith(("gmrf", "pinnprob"))]
    print(json.dumps({k: v for k, v in res.items() if k not in runs}, indent=1))
    for m in runs:
        if m in res:
            r = res[m]
            print(m, f"fit {r['fit_s']:.1f} s predict {r['predict_s']:.1f} s peak {r['peak_memory_gb']:.2f} GB",
                  r["scores_field"], r["scores_noisy"], r["posterior"])


if __name__ == "__main__":
    main()
