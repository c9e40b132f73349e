"""Run directories: chunked parquet files described by a JSON manifest.

A run directory (``heplab generate ... --out DIR``, ``heplab jets cluster ... --out DIR``)
holds ``manifest.json`` and one parquet file per chunk, ``chunk-000000.parquet``, ... The
manifest records what produced the files (the configuration and its hash), and one entry
per finished chunk (file name, number of rows, number of events, seed). Chunk files are
written to a temporary name and renamed into place, so a file with the final name is always
complete; the manifest is rewritten atomically after every chunk.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heplab.errors import DataError
from heplab.events._util import default_file_mode

__all__ = [
    "MANIFEST_NAME",
    "ChunkRecord",
    "Manifest",
    "atomic_write_bytes",
    "chunk_filename",
    "config_hash",
    "is_run_dir",
    "read_manifest",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


def chunk_filename(index: int) -> str:
    """File name of chunk ``index`` inside a run directory."""
    return f"chunk-{index:06d}.parquet"


def config_hash(config: Mapping[str, Any]) -> str:
    """A stable short hash of a JSON-serialisable configuration."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class ChunkRecord:
    """One finished chunk of a run."""

    index: int
    file: str
    events: int
    rows: int
    seed: int | None = None
    seconds: float | None = None
    timing: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "file": self.file,
            "events": self.events,
            "rows": self.rows,
            "seed": self.seed,
            "seconds": self.seconds,
            "timing": self.timing,
        }


@dataclass
class Manifest:
    """The manifest of a run directory.

    ``kind`` is ``"events"`` or ``"jets"``; ``config`` is what produced the run;
    ``n_chunks`` how many chunks the run has in all; ``chunks`` the finished ones.
    """

    kind: str
    config: dict[str, Any]
    n_chunks: int
    chunks: dict[int, ChunkRecord] = field(default_factory=dict)
    heplab_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)

    @property
    def complete(self) -> bool:
        return len(self.chunks) == self.n_chunks

    @property
    def total_events(self) -> int:
        return sum(c.events for c in self.chunks.values())

    @property
    def total_rows(self) -> int:
        return sum(c.rows for c in self.chunks.values())

    def files(self, directory: str | os.PathLike[str]) -> list[Path]:
        """The finished chunk files, in chunk order."""
        return [Path(directory) / self.chunks[i].file for i in sorted(self.chunks)]

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "heplab_version": self.heplab_version,
            "config": self.config,
            "config_hash": self.config_hash,
            "n_chunks": self.n_chunks,
            "complete": self.complete,
            "total_events": self.total_events,
            "total_rows": self.total_rows,
            "chunks": [self.chunks[i].to_json() for i in sorted(self.chunks)],
            **({"extra": self.extra} if self.extra else {}),
        }


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, default_file_mode())  # mkstemp's file is private (0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_manifest(directory: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Atomically (re)write ``manifest.json`` in ``directory``."""
    path = Path(directory) / MANIFEST_NAME
    atomic_write_bytes(path, (json.dumps(manifest.to_json(), indent=2) + "\n").encode())
    return path


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory holding a heplab manifest."""
    return (Path(path) / MANIFEST_NAME).is_file()


def read_manifest(directory: str | os.PathLike[str]) -> Manifest:
    """Read the manifest of a run directory; :class:`DataError` if absent or corrupt."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise DataError(f"{directory}: not a heplab run directory (no {MANIFEST_NAME})")
    try:
        data = json.loads(path.read_text())
        chunks = {
            int(c["index"]): ChunkRecord(
                index=int(c["index"]),
                file=str(c["file"]),
                events=int(c["events"]),
                rows=int(c.get("rows", c["events"])),
                seed=c.get("seed"),
                seconds=c.get("seconds"),
                timing=dict(c.get("timing") or {}),
            )
            for c in data["chunks"]
        }
        return Manifest(
            kind=str(data["kind"]),
            config=dict(data["config"]),
            n_chunks=int(data["n_chunks"]),
            chunks=chunks,
            heplab_version=str(data.get("heplab_version", "")),
            extra=dict(data.get("extra", {})),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: corrupt manifest ({exc})") from exc
