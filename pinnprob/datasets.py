"""Real data sets for examples and case studies, loaded from optional dependencies (never copied here)."""

from __future__ import annotations

__all__ = ["meuse"]


def meuse():
    """The Meuse soil data (Pebesma & Bivand, R package ``sp``): 155 topsoil samples in the flood plain
    of the river Meuse near Stein (NL), as a pandas DataFrame with columns ``x``, ``y`` (Rijksdriehoek
    coordinates, metres), ``cadmium``, ``copper``, ``lead``, ``zinc`` (ppm), ``elev``, ``dist``
    (distance to the river, normalised to [0, 1]), ``om``, ``ffreq``, ``soil``, ``lime``, ``landuse``
    and ``dist.m`` (distance in metres, rounded).

    Read from the copy shipped with scikit-gstat (``pip install "pinnprob[meuse]"``). Its public
    ``skgstat.data.meuse(variable=...)`` returns the coordinates and one metal only, so the full table
    (with ``dist``) is read with its sample-file reader ``skgstat.data._loader.read_sample_file``;
    the coordinates and zinc are checked against the public function. A fresh copy each call."""
    try:
        import skgstat.data as skd
        from skgstat.data._loader import read_sample_file
    except ImportError as e:
        raise ImportError('the Meuse data come from scikit-gstat: pip install "pinnprob[meuse]" '
                          "(or pip install scikit-gstat)") from e
    import numpy as np

    df = read_sample_file("meuse.txt")
    coords, zinc = skd.meuse(variable="zinc")["sample"]
    if df.shape[0] != 155 or not (np.array_equal(df[["x", "y"]].to_numpy(), coords)
                                  and np.array_equal(df[["zinc"]].to_numpy(), zinc)):
        raise RuntimeError("scikit-gstat's meuse.txt does not match skgstat.data.meuse(): an unexpected version")
    return df.copy()
