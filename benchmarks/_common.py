"""What several benchmark scripts compute alike: pairwise distances between sites and the relative
Frobenius error of a covariance. The scripts run as ``python benchmarks/X.py`` (so this directory is
``sys.path[0]``) and import it as ``from _common import ...``."""

from __future__ import annotations

import numpy as np


def distances(X: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of X (n, d): (n, n)."""
    return np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))


def rel_fro(A, B) -> float:
    """‖A − B‖_F / ‖B‖_F: the relative Frobenius error of A against the reference B."""
    return float(np.linalg.norm(A - B) / np.linalg.norm(B))


def mc_floor(C: np.ndarray, n: int) -> float:
    """The expected relative Frobenius error of an n-sample covariance estimate of C (mean known): for
    Gaussian data E‖Ĉ − C‖² = Σ_ij (C_ij² + C_ii C_jj)/n."""
    return float(np.sqrt((np.sum(C**2) + np.sum(np.outer(np.diag(C), np.diag(C)))) / n) / np.linalg.norm(C))


def central_hessian(f, x: np.ndarray, h: float = 0.02, f0: float | None = None) -> np.ndarray:
    """The Hessian (p, p) of a scalar f at x (p,) by central second differences of step h:
    (f(x + h e_i) − 2 f(x) + f(x − h e_i))/h² on the diagonal and
    (f(x + h e_i + h e_j) − f(x + h e_i − h e_j) − f(x − h e_i + h e_j) + f(x − h e_i − h e_j))/(4h²) off it;
    1 + 2p + 2p(p − 1) evaluations (``f0``, f(x), if known, saves one)."""
    p = len(x)
    E = np.eye(p) * h
    f0 = f(x) if f0 is None else f0
    H = np.empty((p, p))
    for i in range(p):
        H[i, i] = (f(x + E[i]) - 2 * f0 + f(x - E[i])) / h**2
        for j in range(i + 1, p):
            H[i, j] = H[j, i] = (f(x + E[i] + E[j]) - f(x + E[i] - E[j]) - f(x - E[i] + E[j])
                                 + f(x - E[i] - E[j])) / (4 * h**2)
    return H


def gmrf_log_marginal(fem, A, y: np.ndarray, sigma: float, noise: float, intercept=None) -> float:
    """log N(y | 0, σ² A Q⁻¹ Aᵀ + s² I) of a :class:`pinnprob.fem.FEMMatern` field (Q its precision for
    σ = 1), the way R-INLA evaluates it: sparse factorisations of P = Q/σ² + AᵀA/s² and of K, with
    log det Q = 2 log det K + 2 Σ log τ − Σ log C̃ (Q = T K C̃⁻¹ K T) and Woodbury,
    yᵀΣ⁻¹y = yᵀy/s² − bᵀP⁻¹b (b = Aᵀy/s²), log det Σ = log det P − log det(Q/σ²) + n log s².
    ``intercept`` (m, v): a Gaussian intercept N(m, v) integrated out, Σ + v 11ᵀ around m 1, by the
    matrix determinant lemma and Sherman–Morrison. SuperLU with a symmetric ordering (no CHOLMOD
    dependency)."""
    import math

    from scipy.sparse.linalg import splu

    def logdet(M):
        return float(np.sum(np.log(np.abs(splu(M.tocsc(), permc_spec="MMD_AT_PLUS_A").U.diagonal()))))

    s2, N, n = float(noise) ** 2, fem.num_nodes, len(y)
    Q = fem.precision() / float(sigma) ** 2
    P = (Q + (A.T @ A) / s2).tocsc()
    lu = splu(P, permc_spec="MMD_AT_PLUS_A")
    r = np.asarray(y, np.float64) - (0.0 if intercept is None else float(intercept[0]))

    def sigma_inv(v):  # Σ⁻¹v = v/s² − A P⁻¹ Aᵀ v / s⁴ (Woodbury)
        return v / s2 - A @ lu.solve(A.T @ v / s2) / s2

    Sr = sigma_inv(r)
    quad, logdet_1 = float(r @ Sr), 0.0
    if intercept is not None:  # (Σ + v11ᵀ)⁻¹ and det(Σ + v11ᵀ) = det Σ (1 + v 1ᵀΣ⁻¹1)
        v = float(intercept[1])
        S1 = sigma_inv(np.ones(n))
        c, w = float(S1.sum()), float(Sr.sum())
        quad -= v * w**2 / (1.0 + v * c)
        logdet_1 = math.log1p(v * c)
    logdet_P = float(np.sum(np.log(np.abs(lu.U.diagonal()))))
    logdet_Q = 2 * logdet(fem.K) + 2 * float(np.sum(np.log(fem.tau))) - float(np.sum(np.log(fem.lumped))) \
        - 2 * N * math.log(float(sigma))
    return -0.5 * (quad + logdet_P - logdet_Q + logdet_1 + n * math.log(s2) + n * math.log(2 * math.pi))
