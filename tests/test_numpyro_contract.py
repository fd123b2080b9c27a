"""NumPyro's contract for every pinnprob distribution: declared pytree fields (flatten / unflatten),
a jax.jit boundary both ways, vmap over a batch of parameters, and log_prob validating its sample."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from numpyro.distributions.batch_util import promote_batch_shape, vmap_over

import pinnprob
from pinnprob.inference import GenerativeField, PCRange, Truncated
from pinnprob.inference.collapsed import CollapsedGaussian, gram

N = 12  # sites


@pytest.fixture(scope="module")
def prior():
    return pinnprob.pretrained("matern2d").truncate(0.3)  # a few hundred modes: fast


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).uniform(0.1, 0.9, (N, 2))


# Each case: make(params) -> distribution, the parameter batch (leading axis), the vmap_over axes
# for one distribution built by make, and a value to evaluate log_prob at.
def _cases(prior, X):
    feats_dense = prior.generator.features(X)
    G = gram(feats_dense)
    many = np.random.default_rng(1).uniform(0.1, 0.9, (prior.latent_dim + 20, 2))  # n > m: the Gram path
    feats_many, G_many = prior.generator.features(many), gram(prior.generator.features(many))
    v = jnp.asarray(np.random.default_rng(2).normal(size=N))
    v_many = jnp.asarray(np.random.default_rng(3).normal(size=len(many)))

    def field(p, separable=None):
        return prior.distribution(X, range=p[0], nu=p[1], sigma=p[2], separable=separable)

    return {
        "field-separable": (lambda p: field(p), jnp.array([[0.4, 1.5, 1.0], [0.6, 2.0, 0.7]]),
                            lambda d: vmap_over(d, theta=0, sigma=0), v),
        "field-dense": (lambda p: field(p, separable=False), jnp.array([[0.4, 1.5, 1.0], [0.6, 2.0, 0.7]]),
                        lambda d: vmap_over(d, theta=0, sigma=0), v),
        "collapsed-dense": (lambda p: CollapsedGaussian(GenerativeField(prior.generator, feats_dense, jnp.stack([jnp.log(p[0]), p[1]]), p[2]),
                                                        jnp.zeros(N), p[3]),
                            jnp.array([[0.4, 1.5, 1.0, 0.3], [0.6, 2.0, 0.7, 0.5]]),
                            lambda d: vmap_over(d, field=vmap_over(d.field, theta=0, sigma=0), noise=0), v),
        "collapsed-gram": (lambda p: CollapsedGaussian(GenerativeField(prior.generator, feats_many, jnp.stack([jnp.log(p[0]), p[1]]), p[2]),
                                                       jnp.zeros(len(many)), p[3], gram=G_many),
                           jnp.array([[0.4, 1.5, 1.0, 0.3], [0.6, 2.0, 0.7, 0.5]]),
                           lambda d: vmap_over(d, field=vmap_over(d.field, theta=0, sigma=0), noise=0), v_many),
        "pc-range": (lambda p: PCRange(p[0], p[1]), jnp.array([[0.3, 0.05], [0.5, 0.1]]),
                     lambda d: vmap_over(d, range0=0, prob=0), jnp.asarray(0.7)),
        "truncated": (lambda p: Truncated(PCRange(p[0], 0.05), p[1], p[2]), jnp.array([[0.3, 0.2, 2.0], [0.5, 0.4, 1.5]]),
                      lambda d: vmap_over(d, base=vmap_over(d.base, range0=0), low=0, high=0, _flo=0, _fhi=0),
                      jnp.asarray(0.7)),
    }, G


CASES = ["field-separable", "field-dense", "collapsed-dense", "collapsed-gram", "pc-range", "truncated"]


@pytest.fixture(scope="module")
def cases(prior, X):
    return _cases(prior, X)[0]


def _same(a, b, tol=1e-6):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


@pytest.mark.parametrize("name", CASES)
def test_flatten_unflatten_keeps_the_law(cases, name):
    make, params, _, v = cases[name]
    d = make(params[0])
    leaves, treedef = jax.tree_util.tree_flatten(d)
    # every leaf is a valid JAX value (no function or module rides along as data)
    assert all(isinstance(x, jax.Array | np.ndarray | float | int) for x in leaves), [type(x) for x in leaves]
    d2 = jax.tree_util.tree_unflatten(treedef, leaves)
    assert type(d2) is type(d) and d2.batch_shape == d.batch_shape and d2.event_shape == d.event_shape
    key = jax.random.key(0)
    _same(d2.sample(key, (3,)), d.sample(key, (3,)))
    _same(d2.log_prob(v), d.log_prob(v))


@pytest.mark.parametrize("name", CASES)
def test_jit_boundary_both_ways(cases, name):
    make, params, _, v = cases[name]
    d = make(params[0])
    out = jax.jit(make)(params[0])  # a distribution returned from a compiled function
    assert type(out) is type(d)
    key = jax.random.key(1)
    _same(out.sample(key, (2,)), d.sample(key, (2,)), 1e-5)
    _same(out.log_prob(v), d.log_prob(v), 1e-5)
    lp = jax.jit(lambda dd, x: dd.log_prob(x))(d, v)  # and passed into one
    _same(lp, d.log_prob(v), 1e-5)
    s = jax.jit(lambda dd, k: dd.sample(k))(d, key)
    _same(s, d.sample(key), 1e-5)


@pytest.mark.parametrize("name", CASES)
def test_vmap_over_a_batch_of_parameters(cases, name):
    make, params, axes_of, v = cases[name]
    keys = jax.random.split(jax.random.key(2), params.shape[0])
    want_s = [make(p).sample(k) for p, k in zip(params, keys)]
    want_lp = [make(p).log_prob(v) for p in params]
    # built and used inside vmap
    _same(jax.vmap(lambda p, k: make(p).sample(k))(params, keys), jnp.stack(want_s), 1e-5)
    _same(jax.vmap(lambda p: make(p).log_prob(v))(params), jnp.stack(want_lp), 1e-5)
    # a batch of distributions out of vmap (NumPyro's vmap_over axes), then mapped over again
    axes = axes_of(make(params[0]))
    batch = jax.vmap(make, out_axes=axes)(params)
    _same(jax.vmap(lambda d, k: d.sample(k), in_axes=(axes, 0))(batch, keys), jnp.stack(want_s), 1e-5)
    _same(jax.vmap(lambda d: d.log_prob(v), in_axes=(axes,))(batch), jnp.stack(want_lp), 1e-5)


def test_batched_field_matches_its_elements(prior, X):
    """promote_batch_shape turns the vmapped field into one batched distribution with the same law."""
    params = jnp.array([[0.4, 1.5, 1.0], [0.6, 2.0, 0.7]])
    make = lambda p: prior.distribution(X, range=p[0], nu=p[1], sigma=p[2])  # noqa: E731
    axes = vmap_over(make(params[0]), theta=0, sigma=0)
    batch = promote_batch_shape(jax.vmap(make, out_axes=axes)(params))
    assert batch.batch_shape == (2,)
    v = jnp.asarray(np.random.default_rng(4).normal(size=N))
    _same(batch.log_prob(v), jnp.stack([make(p).log_prob(v) for p in params]), 1e-5)


@pytest.mark.parametrize("name", CASES)
def test_log_prob_validates_its_sample(cases, name):
    make, params, _, v = cases[name]
    d = make(params[0])
    d_checked = jax.tree_util.tree_unflatten(*reversed(jax.tree_util.tree_flatten(d)))
    d_checked._validate_args = True
    bad = v.at[..., 0].set(jnp.nan) if v.ndim else jnp.asarray(-1.0)  # off the support
    assert np.isfinite(float(d_checked.log_prob(v)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPyro warns about out-of-support values
        assert float(d_checked.log_prob(bad)) == -np.inf


def test_distribution_takes_validate_args(prior, X):
    d = prior.distribution(X, range=0.4, nu=1.5, validate_args=True)
    assert d._validate_args
    with pytest.warns(UserWarning, match="Out-of-support"):
        assert float(d.log_prob(jnp.full(N, jnp.inf))) == -np.inf
    with pytest.raises(ValueError, match="range = 5 is outside"):  # concrete parameters are still checked
        prior.distribution(X, range=5.0, nu=1.5, validate_args=True)
    assert isinstance(dist.Normal(0, 1), dist.Distribution)  # numpyro.distributions imported normally
