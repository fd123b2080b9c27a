"""The prior object: sampling, validation of bad input, save / load, corrupted files."""

import json

import jax
import numpy as np
import pytest

import pinnprob
from pinnprob import truth
from pinnprob.api import eval_grid
from pinnprob.config import PriorConfig
from pinnprob.prior import FORMAT_VERSION, PriorFileError

SMALL = PriorConfig(family="spectral", modes_per_dim=10, modes_per_step=32, width=8, depth=1, steps=3,
                    batch_size=2, train_range=((0.2, 0.5), (1.0, 2.0)))


@pytest.fixture(scope="module")
def small():
    return pinnprob.train(SMALL, progress=False, evaluate=False)


@pytest.fixture(scope="module")
def default():
    return pinnprob.pretrained("matern2d")


def test_sample_shapes_reproducible_and_chunk_invariant(small):
    X = np.random.default_rng(0).uniform(0, 1, (9, 2))
    k = jax.random.key(0)
    a = small.sample(k, X, range=0.3, nu=1.5, sigma=2.0, num_samples=7)
    assert a.shape == (7, 9)
    b = small.sample(k, X, range=0.3, nu=1.5, sigma=2.0, num_samples=7, site_chunk=4, sample_chunk=1000)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    c = small.sample(k, X, range=0.3, nu=1.5, sigma=1.0, num_samples=7)
    np.testing.assert_allclose(a, 2.0 * c, rtol=1e-4, atol=1e-5)  # σ enters analytically
    assert not np.allclose(a, small.sample(jax.random.key(1), X, range=0.3, nu=1.5, sigma=2.0, num_samples=7))


def test_save_load_round_trip(small, tmp_path):
    path = small.save(tmp_path / "p.eqx")
    back = pinnprob.load(path)
    assert back.config == small.config
    X = np.random.default_rng(0).uniform(0, 1, (5, 2))
    k = jax.random.key(2)
    np.testing.assert_array_equal(small.sample(k, X, range=0.3, nu=1.2, num_samples=3),
                                  back.sample(k, X, range=0.3, nu=1.2, num_samples=3))


def test_corrupted_and_incompatible_files(small, tmp_path):
    good = small.save(tmp_path / "good.eqx").read_bytes()
    cases = {
        "truncated": good[: len(good) - 100],
        "not a prior": b"hello world, not a prior",
        "trailing": good + b"xx",
        "header": good[:9] + (5).to_bytes(8, "little") + b"{bad}" + good[9 + 8 + 5:],
    }
    for name, data in cases.items():
        p = tmp_path / f"{name}.eqx"
        p.write_bytes(data)
        with pytest.raises(PriorFileError):
            pinnprob.load(p)
    # another format version: says which, and what to do
    n = int.from_bytes(good[9:17], "little")
    header = json.loads(good[17:17 + n])
    header["format"] = FORMAT_VERSION + 1
    header["pinnprob_version"] = "9.9"
    hb = json.dumps(header).encode()
    p = tmp_path / "future.eqx"
    p.write_bytes(good[:9] + len(hb).to_bytes(8, "little") + hb + good[17 + n:])
    with pytest.raises(PriorFileError, match="format .* pinnprob 9.9"):
        pinnprob.load(p)
    with pytest.raises(PriorFileError, match="no prior file"):
        pinnprob.load(tmp_path / "missing.eqx")


@pytest.mark.parametrize(
    "X, kw, match",
    [
        (np.array([[0.5, 1.2]]), {}, "outside the unit box"),
        (np.array([[-0.1, 0.5]]), {}, "outside the unit box"),
        (np.array([0.5, 0.5]), {}, r"shape \(n, 2\)"),
        (np.zeros((3, 3)), {}, r"shape \(n, 2\)"),
        (np.array([[np.nan, 0.5]]), {}, "NaN or inf"),
        (np.array([[np.inf, 0.5]]), {}, "NaN or inf"),
        (np.array([["a", "b"]]), {}, "numeric"),
        (np.array([[0.5, 0.5]]), {"range": 5.0}, "range = 5 is outside"),
        (np.array([[0.5, 0.5]]), {"nu": 4.0}, "nu = 4 is outside"),
        (np.array([[0.5, 0.5]]), {"sigma": 0.0}, "sigma must be > 0"),
        (np.array([[0.5, 0.5]]), {"sigma": -1.0}, "sigma must be > 0"),
        (np.array([[0.5, 0.5]]), {"sigma": float("nan")}, "sigma must be finite"),
        (np.array([[0.5, 0.5]]), {"range": [0.2, 0.3]}, "range must be a scalar"),
        (np.array([[0.5, 0.5]]), {"num_samples": 0}, "num_samples"),
    ],
)
def test_bad_input_clear_error_and_data_untouched(small, X, kw, match):
    args = dict(range=0.3, nu=1.5, sigma=1.0, num_samples=2)
    args.update(kw)
    before = X.copy()
    with pytest.raises(ValueError, match=match):
        small.sample(jax.random.key(0), X, **args)
    np.testing.assert_array_equal(X, before) if X.dtype.kind != "U" else None


def test_read_only_input_is_accepted_and_not_modified(small):
    X = np.random.default_rng(0).uniform(0, 1, (4, 2))
    X.setflags(write=False)
    before = X.copy()
    small.sample(jax.random.key(0), X, range=0.3, nu=1.5, num_samples=2)
    np.testing.assert_array_equal(X, before)


def test_default_prior_is_shipped_and_describes_itself(default):
    assert default.gaussian and default.dim == 2 and default.config.bc == "neumann"
    pr = default.param_range
    assert pr.range[0] <= 0.1 and pr.range[1] >= 0.5 and pr.nu[0] <= 1.0 and pr.nu[1] >= 2.0
    assert "spectral" in repr(default)


@pytest.mark.parametrize("r, n", [(0.1, 1.0), (0.2, 1.5), (0.5, 2.0), (0.1, 2.0), (0.5, 1.0),
                                  (0.05, 1.0), (0.05, 2.5), (1.0, 1.0), (1.0, 2.5),  # + corners of the claim
                                  (0.05, 0.5), (1.0, 0.5), (0.1, 0.75),  # the rough end (the exponential)
                                  (0.02, 0.5), (0.02, 1.5), (0.02, 2.5)])  # the short end
def test_default_exact_covariance_error_within_5_percent(default, r, n):
    # the generator's own covariance (no Monte Carlo noise) against the exact box covariance
    X = eval_grid(2)
    C = truth.box_covariance(X, X, default.config.domain, range=r, sigma=1.0, nu=n)
    Cg = np.asarray(default.covariance(X, range=r, nu=n, sigma=1.0), np.float64)
    assert np.linalg.norm(Cg - C) / np.linalg.norm(C) < 0.05


def test_default_tail_variance_restores_the_rough_fields_variance(default):
    """ν = 0.5 at range 0.05: the trunk misses ~10 % of the variance; the site variance (the exact
    spectrum above the trunk, Weyl's law) puts it back — error ≤ 2 % with it, > 5 % without."""
    X = eval_grid(2)
    C = truth.box_covariance(X, X, default.config.domain, range=0.05, sigma=1.0, nu=0.5)
    Cg = np.asarray(default.covariance(X, range=0.05, nu=0.5, sigma=1.0), np.float64)
    d = np.asarray(default.generator.site_variance(X, default.param_range.theta(range=0.05, nu=0.5)), np.float64)
    assert np.allclose(d, d[0]) and 0.07 < d[0] < 0.13  # (κ²/(κ² + λ_max))^ν ≈ 0.099, the same at every site
    err = lambda A: np.linalg.norm(A - C) / np.linalg.norm(C)  # noqa: E731
    assert err(Cg) < 0.02 and err(Cg - np.diag(d)) > 0.05


def test_default_samples_have_the_generator_covariance(default):
    # sampling path against the covariance path, with a tolerance from the Monte Carlo error
    X = np.array([[0.5, 0.5], [0.55, 0.5], [0.05, 0.05], [0.9, 0.3]])
    N = 4000
    U = np.asarray(default.sample(jax.random.key(0), X, range=0.2, nu=1.5, sigma=1.3, num_samples=N), np.float64)
    C = np.asarray(default.covariance(X, range=0.2, nu=1.5, sigma=1.3), np.float64)
    se = np.sqrt((C**2 + np.outer(np.diag(C), np.diag(C))) / N)
    assert np.all(np.abs(U.T @ U / N - C) < 4.5 * se)
    # the corner has the Neumann inflation (×4 at the corner itself, here slightly inside it)
    assert C[2, 2] > 1.5 * C[0, 0]


@pytest.mark.parametrize("a, r, n", [(0.5, 0.05, 1.0), (0.5, 0.1, 0.5), (0.5, 1.0, 2.5), (0.8, 0.3, 1.5)])
def test_default_on_a_rectangle_has_the_exact_rectangle_covariance(default, a, r, n):
    """The learned amplitude a(θ, λ) carries over to a box it was not trained on: on [0, 1] × [0, a]
    the generator's covariance against the exact one there (image sums), as accurate as on the unit
    square, with the modes in proportion to the area."""
    rect = default.on_box((1.0, a))
    assert abs(rect.latent_dim / default.latent_dim - a) < 0.02
    X = eval_grid(2)
    err = {}
    for p, pts in ((default, X), (rect, X * np.array([1.0, a]))):
        C = truth.box_covariance(pts, pts, p.config.domain, range=r, sigma=1.0, nu=n)
        Cg = np.asarray(p.covariance(pts, range=r, nu=n, sigma=1.0), np.float64)
        err[p is rect] = np.linalg.norm(Cg - C) / np.linalg.norm(C)
    assert err[True] < 0.05 and err[True] < 1.5 * err[False] + 1e-3


def test_on_box_keeps_its_box_through_truncation_and_files(default):
    from pinnprob.config import build_generator
    from pinnprob.prior import GenerativePrior, from_bytes

    rect = default.on_box((1.0, 0.5))
    assert rect.config.domain.lengths == (1.0, 0.5) and rect.spde.domain.lengths == (1.0, 0.5)
    assert "lengths" not in default.config.to_dict()  # the unit box's fingerprint is unchanged
    X = np.array([[0.2, 0.4], [0.9, 0.1], [0.5, 0.25]])
    back = from_bytes(rect.to_bytes())
    assert back.config.lengths == (1.0, 0.5) and back.latent_dim == rect.latent_dim
    np.testing.assert_allclose(back.covariance(X, range=0.2, nu=1.0), rect.covariance(X, range=0.2, nu=1.0),
                               rtol=1e-6)
    short = rect.truncate(0.3)
    assert short.config.lengths == (1.0, 0.5) and short.latent_dim < rect.latent_dim
    # a truncated prior moves with its frequency cut: the same largest eigenvalue, modes by the area
    cut = default.truncate(0.3)
    moved = cut.on_box((1.0, 0.5))
    lam, lam_moved = float(cut.generator.basis.eigenvalues.max()), np.asarray(moved.generator.basis.eigenvalues)
    assert lam_moved.max() <= lam * (1 + 1e-9) and moved.param_range.range == cut.param_range.range
    assert np.sum(np.asarray(rect.generator.basis.eigenvalues) <= lam * (1 + 1e-9)) == moved.latent_dim
    assert 0.4 < moved.latent_dim / cut.latent_dim < 0.65
    with pytest.raises(ValueError, match=r"outside the box \[0, 1\] × \[0, 0.5\]"):
        rect.sample(jax.random.key(0), np.array([[0.5, 0.7]]), range=0.3, nu=1.0)
    cfg = PriorConfig(family="lowrank", rank=4, width=8, depth=1)
    with pytest.raises(TypeError, match="only spectral"):
        GenerativePrior(build_generator(cfg), cfg).on_box((1.0, 0.5))
    with pytest.raises(ValueError, match="lengths must give 2"):
        SMALL.replace(lengths=(1.0,))
