"""Event generation: the Pythia 8 process catalogue, LHE showering, chunked production on Dask."""

from __future__ import annotations

from heplab.generation.catalogue import ProcessEntry, get_process, list_processes
from heplab.generation.production import build_config, generate_chunk, produce

__all__ = [
    "ProcessEntry",
    "build_config",
    "generate_chunk",
    "get_process",
    "list_processes",
    "produce",
]
