"""Modified Bessel functions of the second kind K₀, K₁ in JAX (jax.scipy.special has I₀, I₁ only), and
the regularised incomplete beta I_x(a, b) differentiable in a and b too.

Polynomial approximations of Abramowitz & Stegun (1964), 9.8.5-9.8.8: absolute error < 1e-7 relative
to the leading factor, differentiable (autodiff through the polynomials). ``one_minus_x_k1`` gives
1 − x K₁(x) without cancellation for small x.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import betaln

__all__ = ["k0", "k1", "one_minus_x_k1", "betainc"]

# A&S 9.8.1: I0(x), |x| ≤ 3.75, in powers of (x/3.75)²
_I0_SMALL = (1.0, 3.5156229, 3.0899424, 1.2067492, 0.2659732, 0.0360768, 0.0045813)
# A&S 9.8.3: I1(x)/x, |x| ≤ 3.75, in powers of (x/3.75)²
_I1_SMALL = (0.5, 0.87890594, 0.51498869, 0.15084934, 0.02658733, 0.00301532, 0.00032411)
# A&S 9.8.5: K0(x) + ln(x/2) I0(x), 0 < x ≤ 2, in powers of (x/2)²
_K0_SMALL = (-0.57721566, 0.42278420, 0.23069756, 0.03488590, 0.00262698, 0.00010750, 0.00000740)
# A&S 9.8.6: √x eˣ K0(x), x ≥ 2, in powers of 2/x
_K0_LARGE = (1.25331414, -0.07832358, 0.02189568, -0.01062446, 0.00587872, -0.00251540, 0.00053208)
# A&S 9.8.7: x K1(x) − x ln(x/2) I1(x), 0 < x ≤ 2, in powers of (x/2)²
_K1_SMALL = (1.0, 0.15443144, -0.67278579, -0.18156897, -0.01919402, -0.00110404, -0.00004686)
# A&S 9.8.8: √x eˣ K1(x), x ≥ 2, in powers of 2/x
_K1_LARGE = (1.25331414, 0.23498619, -0.03655620, 0.01504268, -0.00780353, 0.00325614, -0.00068245)


def _poly(c, t):
    out = jnp.zeros_like(t) + c[-1]
    for a in c[-2::-1]:
        out = out * t + a
    return out


def _i0(x):
    """I₀(x) for 0 ≤ x ≤ 2 (A&S 9.8.1; the small-argument branches below need no more, and the
    polynomial is several times cheaper than jax.scipy.special.i0's Chebyshev series)."""
    return _poly(_I0_SMALL, (x / 3.75) ** 2)


def _i1(x):
    """I₁(x) for 0 ≤ x ≤ 2 (A&S 9.8.3)."""
    return x * _poly(_I1_SMALL, (x / 3.75) ** 2)


@jax.custom_jvp
def k0(x):
    """K₀(x) for x > 0 (elementwise); its derivative is −K₁(x) (A&S 9.6.27), not autodiff through the
    polynomials: reverse mode then keeps one array per element instead of both branches' terms (the
    convolution generator's gradient evaluates it at n × cells × images points)."""
    x = jnp.asarray(x)
    xs = jnp.clip(x, 1e-30, 2.0)
    small = -jnp.log(xs / 2) * _i0(xs) + _poly(_K0_SMALL, (xs / 2) ** 2)
    xl = jnp.maximum(x, 2.0)
    large = jnp.exp(-xl) / jnp.sqrt(xl) * _poly(_K0_LARGE, 2.0 / xl)
    return jnp.where(x <= 2.0, small, large)


@k0.defjvp
def _k0_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return k0(x), -k1(x) * dx


def k1(x):
    """K₁(x) for x > 0 (elementwise)."""
    x = jnp.asarray(x)
    xs = jnp.clip(x, 1e-30, 2.0)
    small = (xs * jnp.log(xs / 2) * _i1(xs) + _poly(_K1_SMALL, (xs / 2) ** 2)) / xs
    xl = jnp.maximum(x, 2.0)
    large = jnp.exp(-xl) / jnp.sqrt(xl) * _poly(_K1_LARGE, 2.0 / xl)
    return jnp.where(x <= 2.0, small, large)


def one_minus_x_k1(x):
    """1 − x K₁(x) for x > 0, accurate for small x (no cancellation: the series of A&S 9.8.7 minus its
    leading 1)."""
    x = jnp.asarray(x)
    xs = jnp.clip(x, 1e-30, 2.0)
    t = (xs / 2) ** 2
    small = -xs * jnp.log(xs / 2) * _i1(xs) - t * _poly(_K1_SMALL[1:], t)
    return jnp.where(x <= 2.0, small, 1.0 - x * k1(jnp.maximum(x, 2.0)))


@jax.custom_jvp
def betainc(a, b, x):
    """The regularised incomplete beta I_x(a, b) (jax.scipy.special.betainc), with derivatives in a and
    b as well as x: JAX differentiates it in x only. In x: x^{a−1}(1 − x)^{b−1}/B(a, b); in a and b: a
    central difference of step 10⁻⁴ (float64) or 3·10⁻² (float32) times max(1, |a|), I being smooth
    in its parameters (truncation error O(step²)). The rule is itself differentiable (its differences
    call this function), so second derivatives (``jax.hessian``) exist too."""
    return jax.scipy.special.betainc(a, b, x)


@betainc.defjvp
def _betainc_jvp(primals, tangents):
    a, b, x = primals
    da, db, dx = tangents
    # the differences call this function, not JAX's: differentiating the rule (second order) then
    # takes its derivatives in a and b from this rule again, where JAX's has none
    f = betainc
    out = f(a, b, x)
    step = 1e-4 if jnp.result_type(out) == jnp.float64 else 3e-2
    ha, hb = step * jnp.maximum(1.0, jnp.abs(a)), step * jnp.maximum(1.0, jnp.abs(b))
    dIda = (f(a + ha, b, x) - f(a - ha, b, x)) / (2 * ha)
    dIdb = (f(a, b + hb, x) - f(a, b - hb, x)) / (2 * hb)
    dIdx = jnp.exp((a - 1) * jnp.log(x) + (b - 1) * jnp.log1p(-x) - betaln(a, b))
    return out, dIda * da + dIdb * db + dIdx * dx
