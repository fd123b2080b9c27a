"""Load jax and numpyro eagerly when ArviZ ≥ 1.0 left lazy proxies of them in ``sys.modules``.

arviz_base (ArviZ ≥ 1.0) registers ``lazy_loader.load("jax")`` and ``lazy_loader.load("numpyro")``
proxies at import. If the first import that touches such a proxy is of a submodule
(``import numpyro.distributions``), CPython's import system runs the package's ``__init__`` while
looking up the parent's ``__path__`` — which imports ``numpyro.distributions`` and its submodules —
and then executes ``numpyro/distributions/__init__.py`` a second time. The second module object,
the one left in ``sys.modules``, lacks the attributes of the submodules that were already imported,
so ``numpyro.factor`` (``numpyro.distributions.distribution.Unit``) fails with AttributeError.

This is not a NumPyro bug: it is the documented caveat of lazily loading a package that has
submodules (lazy_loader's ``load`` docstring; scientific-python/lazy-loader#55), met through
arviz_base. The work-around: load both packages before anything imports their submodules, and
re-attach submodule attributes that a double import already lost.
"""

from __future__ import annotations

import sys

__all__ = ["load_lazy_proxies"]

_PACKAGES = ("jax", "numpyro")  # jax first: numpyro's __init__ imports jax's submodules


def load_lazy_proxies() -> None:
    """Make ``jax`` and ``numpyro`` real modules (a proxy loads on its first attribute access) and give
    every imported submodule of theirs its attribute on the parent, as a normal import would."""
    if "arviz_base" not in sys.modules:  # the only source of such proxies known
        return
    for pkg in _PACKAGES:
        mod = sys.modules.get(pkg)
        if mod is not None:
            getattr(mod, "__name__")  # any attribute access executes a lazy proxy's module
    for name, mod in list(sys.modules.items()):
        parent_name, _, child = name.rpartition(".")
        if mod is None or not parent_name or name.split(".", 1)[0] not in _PACKAGES:
            continue
        parent = sys.modules.get(parent_name)
        if parent is not None and child not in parent.__dict__:
            setattr(parent, child, mod)
