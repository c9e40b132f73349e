"""heplab: machine learning along the whole collider data path.

Stages follow the data path (see DESIGN.md): :mod:`heplab.events` (data model and I/O),
:mod:`heplab.generation` (Pythia 8 production on Dask), :mod:`heplab.detector` (fast
detector response), :mod:`heplab.reconstruction` (jets, tracking, calorimetry), and the
ML stages built on them.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
