"""Latent reparameterisation of generative-field sites (NumPyro ``Reparam`` contract)."""

from __future__ import annotations

import numpyro
import numpyro.distributions as dist
from numpyro.infer.reparam import Reparam

from pinnprob.inference.distribution import GenerativeField

__all__ = ["LatentFieldReparam", "latent_field"]


class LatentFieldReparam(Reparam):
    """Rewrite a site ``f ~ GenerativeField`` as ``f_latent ~ N(0, I_m)`` plus deterministic ``f = σ g(X; z, θ)``.

    The non-centred form: good when the data are weak (the posterior of z stays close to N(0, I)),
    and the only form available for push-forward generators, which have no density. When the
    data are strong (noise well below σ) NUTS meets a funnel in (θ, z): divergences and low ESS
    were measured in the calibration benchmark (docs/results/sbc.md); with a Gaussian likelihood
    and a Gaussian generator prefer the collapsed likelihood there. Latent sites only.
    """

    def __call__(self, name, fn, obs):
        if obs is not None:
            raise ValueError(f"LatentFieldReparam cannot reparameterise the observed site {name!r}")
        base, expand_shape, event_dim = self._unwrap(fn)
        if not isinstance(base, GenerativeField):
            raise TypeError(f"site {name!r} is a {type(base).__name__}, not a GenerativeField")
        latent = dist.Normal(0.0, 1.0).expand(base.batch_shape + (base.latent_dim,)).to_event(1)
        z = numpyro.sample(f"{name}_latent", self._wrap(latent, expand_shape, event_dim))
        return None, base.from_latent(z)


def _is_field_site(site) -> bool:
    fn = site.get("fn")
    while isinstance(fn, (dist.Independent, dist.ExpandedDistribution)):
        fn = fn.base_dist
    return isinstance(fn, GenerativeField) and not site.get("is_observed", False)


def latent_field(model):
    """Apply :class:`LatentFieldReparam` to every latent :class:`GenerativeField` site of ``model``."""
    return numpyro.handlers.reparam(model, config=lambda site: LatentFieldReparam() if _is_field_site(site) else None)
