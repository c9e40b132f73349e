"""CSV tables (TrackML-style hits)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from heplab.errors import DataError
from heplab.events import read_csv, read_events

HEADER = "hit_id,x,y,z,volume_id,layer_id,module_id\n"


def _write_hits(path: Path, n: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xyz = rng.normal(0.0, 300.0, (n, 3))
    ids = rng.integers(1, 20, (n, 3))
    lines = [
        f"{i + 1},{x:.4f},{y:.4f},{z:.4f},{v},{layer},{m}"
        for i, ((x, y, z), (v, layer, m)) in enumerate(zip(xyz, ids, strict=True))
    ]
    path.write_text(HEADER + "\n".join(lines) + "\n")
    return xyz


def test_trackml_hits(tmp_path: Path) -> None:
    path = tmp_path / "event000001000-hits.csv"
    xyz = _write_hits(path)
    hits = read_events(path)
    assert hits.fields == ["hit_id", "x", "y", "z", "volume_id", "layer_id", "module_id"]
    assert str(hits.type) == (
        "40 * {hit_id: int64, x: float64, y: float64, z: float64, "
        "volume_id: int64, layer_id: int64, module_id: int64}"
    )
    np.testing.assert_allclose(ak.to_numpy(hits.z), xyz[:, 2], atol=1e-4)
    assert hits.hit_id.tolist() == list(range(1, 41))


def test_columns_types_and_missing_cells(tmp_path: Path) -> None:
    path = tmp_path / "hits.csv"
    _write_hits(path, n=5)
    hits = read_csv(path, columns=["x", "hit_id"], column_types={"x": "float32"})
    assert set(hits.fields) == {"x", "hit_id"}
    assert hits.x.type.content.primitive == "float32"
    sparse = tmp_path / "sparse.csv"
    sparse.write_text("a,b\n1,\n2,3\n")
    table = read_csv(sparse)
    assert table.b.tolist() == [None, 3]
    assert table.a.tolist() == [1, 2]


def test_malformed_csv(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(DataError, match=r"bad\.csv: cannot read CSV file"):
        read_csv(path)
    with pytest.raises(DataError, match=r"no such file or directory"):
        read_csv(tmp_path / "absent.csv")
