"""``heplab info PATH``: what a run directory or data file holds.

:func:`describe` returns a JSON-serialisable dict (``heplab info --json`` prints it) and
:func:`format_description` turns it into the text that ``heplab info`` prints.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from heplab.events._util import data_error, existing_path
from heplab.events.csvio import csv_schema
from heplab.events.hdf5 import describe_hdf5
from heplab.events.io import FORMAT_NAMES, detect_format
from heplab.events.lhe import count_lhe_events, read_lhe_init
from heplab.events.manifest import read_manifest
from heplab.events.parquet import parquet_files, parquet_metadata
from heplab.events.root import list_trees, open_root

__all__ = ["describe", "format_description"]

log = logging.getLogger(__name__)


def _columns(form: Any) -> dict[str, str]:
    """Top-level field -> awkward type string of a parquet file's form."""
    if not getattr(form, "is_record", False):
        return {"": str(form.type)}
    return {name: str(form.content(name).type) for name in form.fields}


def _describe_parquet(path: Path) -> dict[str, Any]:
    meta = parquet_metadata(path)
    return {
        "rows": meta["num_rows"],
        "row_groups": meta["num_row_groups"],
        "size_bytes": path.stat().st_size,
        "columns": _columns(meta["form"]),
    }


def _describe_run(path: Path) -> dict[str, Any]:
    manifest = read_manifest(path)
    files = manifest.files(path)
    absent = [f.name for f in files if not f.is_file()]
    present = [f for f in files if f.is_file()]
    out: dict[str, Any] = {
        "run_kind": manifest.kind,
        "heplab_version": manifest.heplab_version,
        "config_hash": manifest.config_hash,
        "config": manifest.config,
        "chunks_finished": len(manifest.chunks),
        "chunks_total": manifest.n_chunks,
        "complete": manifest.complete,
        "events": manifest.total_events,
        "rows": manifest.total_rows,
        "size_bytes": sum(f.stat().st_size for f in present),
        "missing_files": absent,
        "columns": _columns(parquet_metadata(present[0])["form"]) if present else {},
    }
    if manifest.extra:
        out["extra"] = manifest.extra
    return out


def _describe_parquet_dir(path: Path) -> dict[str, Any]:
    files = parquet_files(path)
    metas = [parquet_metadata(f) for f in files]
    return {
        "files": [f.name for f in files],
        "rows": sum(m["num_rows"] for m in metas),
        "size_bytes": sum(f.stat().st_size for f in files),
        "columns": _columns(metas[0]["form"]) if metas else {},
    }


def _branch_entry(name: str, branch: Any) -> dict[str, str]:
    try:
        interpretation = str(branch.interpretation)
    except Exception as exc:  # uproot cannot interpret some object branches
        interpretation = f"unknown ({type(exc).__name__})"
    try:
        typename = str(branch.typename)
    except Exception:
        typename = "?"
    return {"name": name, "type": typename, "interpretation": interpretation}


def _describe_root(path: Path) -> dict[str, Any]:
    with open_root(path) as file:
        try:
            classnames = file.classnames(cycle=False)
            trees = []
            for name in list_trees(file):
                tree = file[name]
                trees.append(
                    {
                        "name": name,
                        "title": str(tree.title),
                        "entries": int(tree.num_entries),
                        "branches": [
                            _branch_entry(key, tree[key]) for key in tree.keys(recursive=True)
                        ],
                    }
                )
        except Exception as exc:
            raise data_error(path, "cannot read ROOT file (corrupt or truncated?)", exc) from exc
    objects = [
        {"name": name, "class": cls}
        for name, cls in classnames.items()
        if cls not in ("TTree", "TDirectory", "TDirectoryFile")
    ]
    directories = [name for name, cls in classnames.items() if cls.startswith("TDirectory")]
    return {"trees": trees, "objects": objects, "directories": directories}


def _describe_lhe(path: Path) -> dict[str, Any]:
    return {"events": count_lhe_events(path), **read_lhe_init(path)}


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Describe a run directory or data file without reading its data.

    Parameters
    ----------
    path : path
        A heplab run directory, parquet file or directory, ROOT, HDF5, LHE or CSV file.

    Returns
    -------
    dict
        JSON-serialisable. Always ``path``, ``kind`` (as :func:`heplab.events.io.
        detect_format` names it) and ``format`` (a readable name); then, by kind:

        - run: ``run_kind``, ``config``, ``config_hash``, ``chunks_finished``,
          ``chunks_total``, ``complete``, ``events``, ``rows``, ``columns`` (field ->
          awkward type, from the first chunk), ``missing_files``;
        - parquet / parquet_dir: ``rows``, ``columns`` (and ``files``);
        - root: ``trees`` (``name``, ``entries``, ``branches`` with ``type`` and
          ``interpretation``), ``objects`` (non-tree objects with their class);
        - hdf5: ``arrays`` (heplab groups: ``length``, ``type``, ``fields``),
          ``groups``, ``datasets`` (``shape``, ``dtype``, ``compression``);
        - lhe: ``events``, ``beams``, ``energies`` [GeV], ``processes`` (cross-sections
          in pb), ``generators``;
        - csv: ``rows``, ``columns`` (inferred types).

    Raises
    ------
    DataError
        If the path is missing, of unknown type, corrupt or truncated.
    """
    p = existing_path(path)
    kind = detect_format(p)
    out: dict[str, Any] = {"path": str(p), "kind": kind, "format": FORMAT_NAMES[kind]}
    if kind == "run":
        out.update(_describe_run(p))
    elif kind == "parquet":
        out.update(_describe_parquet(p))
    elif kind == "parquet_dir":
        out.update(_describe_parquet_dir(p))
    elif kind == "root":
        out.update(_describe_root(p))
    elif kind == "hdf5":
        out.update(describe_hdf5(p))
    elif kind == "lhe":
        out.update(_describe_lhe(p))
    elif kind == "csv":
        out.update(csv_schema(p))
    if p.is_file():
        out.setdefault("size_bytes", p.stat().st_size)
    return out


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _table(rows: dict[str, str], indent: str = "  ") -> list[str]:
    if not rows:
        return [f"{indent}(none)"]
    width = max(len(k) for k in rows)
    return [f"{indent}{k:<{width}}  {v}" for k, v in rows.items()]


def format_description(desc: dict[str, Any]) -> str:
    """The text ``heplab info`` prints for a :func:`describe` dict."""
    kind = desc.get("kind", "?")
    lines = [f"{desc.get('path', '?')}: {desc.get('format', kind)}"]
    if "size_bytes" in desc:
        lines[0] += f", {_size(int(desc['size_bytes']))}"
    if kind == "run":
        status = "complete" if desc["complete"] else "INCOMPLETE"
        lines += [
            f"  run kind:     {desc['run_kind']}",
            f"  chunks:       {desc['chunks_finished']} of {desc['chunks_total']} finished ({status})",
            f"  events:       {desc['events']}",
            f"  rows:         {desc['rows']}",
            f"  config hash:  {desc['config_hash']}",
        ]
        if desc.get("heplab_version"):
            lines.append(f"  heplab:       {desc['heplab_version']}")
        if desc.get("missing_files"):
            lines.append(f"  MISSING FILES: {', '.join(desc['missing_files'])}")
        lines.append("  config:")
        lines += _table({k: _short(v) for k, v in desc["config"].items()}, indent="    ")
        lines.append("  columns (first chunk):")
        lines += _table(desc["columns"], indent="    ")
    elif kind in ("parquet", "parquet_dir", "csv"):
        if kind == "parquet_dir":
            lines.append(f"  files:   {len(desc['files'])}")
        lines.append(f"  rows:    {desc['rows']}")
        lines.append("  columns:")
        lines += _table(desc["columns"], indent="    ")
    elif kind == "root":
        for tree in desc["trees"]:
            lines.append(
                f"  TTree {tree['name']!r}: {tree['entries']} entries, "
                f"{len(tree['branches'])} branches"
                + (f" ({tree['title']})" if tree["title"] else "")
            )
            lines += _table(
                {b["name"]: f"{b['type']:<16} {b['interpretation']}" for b in tree["branches"]},
                indent="    ",
            )
        for obj in desc["objects"]:
            lines.append(f"  {obj['class']} {obj['name']!r}")
        if not desc["trees"] and not desc["objects"]:
            lines.append("  (no objects)")
    elif kind == "hdf5":
        for array in desc["arrays"]:
            lines.append(f"  heplab array {array['group']!r}: {array['length']} entries")
            if array["fields"]:
                lines += _table(array["fields"], indent="    ")
            else:
                lines.append(f"    {array['type']}")
        for group in desc["groups"]:
            lines.append(f"  group   {group}")
        for ds in desc["datasets"]:
            shape = "x".join(str(s) for s in ds["shape"]) or "scalar"
            compression = f", {ds['compression']}" if ds["compression"] else ""
            lines.append(f"  dataset {ds['name']}: {shape} {ds['dtype']}{compression}")
        if not (desc["arrays"] or desc["groups"] or desc["datasets"]):
            lines.append("  (empty)")
    elif kind == "lhe":
        beams = " + ".join(
            f"{pid} ({energy:g} GeV)"
            for pid, energy in zip(desc["beams"], desc["energies"], strict=True)
        )
        lines += [
            f"  events:         {desc['events']}",
            f"  beams:          {beams}, sqrt(s) = {desc['sqrt_s']:g} GeV",
            f"  PDF sets:       {desc['pdf_sets'][0]}, {desc['pdf_sets'][1]}",
            f"  weighting:      IDWTUP = {desc['weighting_strategy']}",
        ]
        if desc.get("generators"):
            gens = ", ".join(f"{g['name']} {g['version']}".strip() for g in desc["generators"])
            lines.append(f"  generators:     {gens}")
        lines.append(
            f"  processes:      {len(desc['processes'])}, total {desc['total_cross_section']:.6g} pb"
        )
        for proc in desc["processes"]:
            lines.append(
                f"    id {proc['id']:>6}: {proc['cross_section']:.6g} +- {proc['error']:.3g} pb"
            )
    return "\n".join(lines)


def _short(value: Any, limit: int = 160) -> str:
    """``repr(value)``, abbreviated past ``limit`` characters (``--json`` shows it whole)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    if isinstance(value, dict):
        name = f"'name': {value['name']!r}, " if "name" in value else ""
        return f"{{{name}...}} ({len(value)} keys; --json shows all)"
    if isinstance(value, list):
        return f"[{len(value)} items: {text[: limit - 40]}...]"
    return text[:limit] + "..."
