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
