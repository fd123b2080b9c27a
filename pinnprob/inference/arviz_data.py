"""The ArviZ object of the installed ArviZ: ``InferenceData`` (ArviZ 0.x) or ``xarray.DataTree``
(ArviZ ≥ 1.0, built by arviz_base), made and read the same way.

``fit`` builds its result with :func:`to_arviz`; ``predict``, the plots and the command line read
either kind with :func:`group` and :func:`has_group` (and ``.attrs``, which both kinds have), chosen by the object's
type (not by the installed version), so a DataTree built by hand works under ArviZ 0.x too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["arviz_major", "to_arviz", "as_installed", "group", "has_group"]


def arviz_major() -> int:
    """The major version of the installed ArviZ (0 or 1, ...)."""
    import arviz as az

    return int(az.__version__.split(".")[0])


def to_arviz(groups: dict[str, dict[str, np.ndarray]], *, dims: dict | None = None, coords: dict | None = None,
             attrs: dict[str, Any] | None = None):
    """ArviZ data with the given groups (``{"posterior": {name: (chain, draw, ...) array}, ...}``;
    empty groups are left out) and root attributes ``attrs``: ``InferenceData`` under ArviZ 0.x,
    ``xarray.DataTree`` under ArviZ ≥ 1.0."""
    import arviz as az

    groups = {g: v for g, v in groups.items() if v}
    dims = {} if dims is None else dict(dims)
    # ArviZ warns about dims of variables a group lacks; keep those of the variables present
    present = {name for g in groups.values() for name in g}
    dims = {k: v for k, v in dims.items() if k in present}
    if arviz_major() >= 1:
        data = az.from_dict(groups, dims=dims, coords=coords)
        data.attrs.update(attrs or {})  # from_dict's attrs= are per group in ArviZ ≥ 1.0
        return data
    return az.from_dict(**groups, dims=dims, coords=coords, attrs=attrs or {})


def as_installed(data):
    """``data`` as the kind the installed ArviZ plots: a DataTree becomes InferenceData under ArviZ 0.x
    (``arviz.from_datatree``); anything else is returned as it is."""
    import arviz as az

    if arviz_major() < 1 and _is_datatree(data):
        return az.from_datatree(data)
    return data


def _is_datatree(data) -> bool:
    import xarray as xr

    return isinstance(data, getattr(xr, "DataTree", ()))


def has_group(data, name: str) -> bool:
    """Whether ``data`` (InferenceData or DataTree) has the group ``name``."""
    if _is_datatree(data):
        return name in data.children
    return name in data.groups()


def group(data, name: str):
    """The group ``name`` of ``data`` as an ``xarray.Dataset``; a clear KeyError when it is absent."""
    if not has_group(data, name):
        raise KeyError(f"the ArviZ data has no {name!r} group")
    if _is_datatree(data):
        return data[name].to_dataset()
    return getattr(data, name)
