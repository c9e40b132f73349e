"""Run directories of the generative shower models: what a trained generator leaves on disk.

A run directory holds

``config.json``
    ``{"model", "geometry" (name), "geometry_config" (its YAML mapping, so that any
    geometry, a user's too, is rebuilt on load), "layer_sizes", "particle", "config"
    (hyper-parameters), "train_time_s", "n_parameters", "heplab_run": 1}``;
``weights.pt``
    the network's ``state_dict`` (read back with ``torch.load(..., weights_only=True)``);
``preprocessing.json``
    :class:`heplab.simulation.preprocessing.Preprocessor` statistics;
``history.json``
    validation losses per epoch of every training stage;
``train/``
    the engine's checkpoints (resume; removed by :func:`prepare_run_dir` with ``force``).

Every file is written atomically (temporary name + ``os.replace``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import torch

from heplab.errors import DataError, OutputExistsError
from heplab.events._util import atomic_output

if TYPE_CHECKING:
    from heplab.simulation.generators import ShowerGenerator

__all__ = ["RUN_FILES", "load_run", "prepare_run_dir", "read_run_config", "save_run"]

#: The files of a saved run.
RUN_FILES: Final = ("config.json", "weights.pt", "preprocessing.json", "history.json")


def _atomic_write(path: Path, write: Any) -> None:
    with atomic_output(path, overwrite=True) as tmp:
        write(str(tmp))


def _write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def prepare_run_dir(run_dir: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Create ``run_dir``; refuse one that already holds a run unless ``force``.

    With ``force`` the old run's files and its ``train/`` checkpoints are removed (so that
    training starts afresh instead of resuming); nothing else in the folder is touched.
    """
    out = Path(run_dir)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a directory")
    held = [n for n in (*RUN_FILES, "train") if (out / n).exists()]
    if held and not force:
        raise OutputExistsError(f"{out} already holds a run ({', '.join(held)}); use --force")
    for name in held:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_run(gen: ShowerGenerator, run_dir: str | os.PathLike[str]) -> Path:
    """Write ``gen`` (fitted) into ``run_dir`` (created; existing run files replaced)."""
    prep, net = gen._fitted()
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "heplab_run": 1,
        "model": gen.name,
        "geometry": gen.geometry_name,
        "geometry_config": getattr(gen.geometry, "to_dict", lambda: None)(),
        "layer_sizes": list(prep.layer_sizes),
        "particle": gen.particle,
        "config": gen.config.to_dict(),
        "train_time_s": gen.train_time_s_,
        "n_parameters": gen.n_parameters(),
    }
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    _atomic_write(out / "weights.pt", lambda tmp: torch.save(state, tmp))
    _write_text(out / "preprocessing.json", prep.to_json())
    _write_text(out / "history.json", json.dumps(gen.history_, indent=1))
    _write_text(out / "config.json", json.dumps(meta, indent=1))  # last: marks a complete run
    return out


def read_run_config(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``config.json`` of a run (DataError when missing or corrupt)."""
    path = Path(run_dir) / "config.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DataError(f"{path} not found: {run_dir} is not a trained generator run") from exc
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    if not isinstance(meta, dict) or "model" not in meta or "config" not in meta:
        raise DataError(f"{path} is not a generator run config (no model / config)")
    return meta


def load_run(run_dir: str | os.PathLike[str], geometry: Any | None = None) -> ShowerGenerator:
    """Rebuild the generator saved by :func:`save_run`.

    ``geometry`` is the :class:`~heplab.detector.calogeometry.CaloGeometry` to attach;
    by default it is rebuilt from the run's ``geometry_config``.
    """
    from heplab.simulation.generators import GENERATORS
    from heplab.simulation.preprocessing import Preprocessor

    root = Path(run_dir)
    meta = read_run_config(root)
    if meta["model"] not in GENERATORS:
        raise DataError(f"{root}/config.json names an unknown model {meta['model']!r}")
    if geometry is None:
        geometry = _stored_geometry(meta, root)
    gen = GENERATORS[meta["model"]](geometry, meta["config"])
    gen.geometry_name = str(meta.get("geometry", ""))
    gen.particle = str(meta.get("particle", ""))
    gen.train_time_s_ = float(meta.get("train_time_s", float("nan")))
    try:
        prep = Preprocessor.from_json((root / "preprocessing.json").read_text())
        history = json.loads((root / "history.json").read_text())
    except FileNotFoundError as exc:
        raise DataError(f"incomplete run {root}: {exc.filename} missing") from exc
    except (OSError, ValueError) as exc:
        raise DataError(f"corrupt run {root}: {exc}") from exc
    weights = root / "weights.pt"
    if not weights.is_file():
        raise DataError(f"incomplete run {root}: {weights} missing")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged pickle raises anything from struct to EOF errors
        raise DataError(f"corrupt weights {weights}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict):
        raise DataError(f"corrupt weights {weights}: not a state_dict")
    if geometry is not None and sum(prep.layer_sizes) != sum(gen.layer_sizes):
        raise DataError(f"run {root} does not match geometry {gen.geometry_name!r}")
    gen._restore(prep, state)
    gen.history_ = history
    return gen


def _stored_geometry(meta: dict[str, Any], root: Path) -> Any | None:
    from heplab.detector.calogeometry import GEOMETRIES, geometry_from_dict, load_geometry
    from heplab.errors import ConfigError

    if isinstance(meta.get("geometry_config"), dict):
        try:
            return geometry_from_dict(meta["geometry_config"], source=str(root / "config.json"))
        except ConfigError as exc:
            raise DataError(f"{root}/config.json: corrupt geometry: {exc}") from exc
    name = str(meta.get("geometry", ""))
    return load_geometry(name) if name in GEOMETRIES else None
