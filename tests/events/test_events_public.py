"""Readers of the public jet-tagging formats, on small files written here in their layouts."""

from __future__ import annotations

import pickle
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest
import uproot

from heplab.errors import DataError
from heplab.events.public import (
    read_energyflow_qg_npz,
    read_jetclass_root,
    read_top_tagging_hdf5,
)

N_CONST = 200


def _top_columns(rng: np.random.Generator, n: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Float columns (E_i, PX_i, PY_i, PZ_i, truth*) and int columns (ttv, is_signal_new)."""
    names = [f"{c}_{i}" for i in range(N_CONST) for c in ("E", "PX", "PY", "PZ")]
    names += ["truthE", "truthPX", "truthPY", "truthPZ"]
    values = np.zeros((n, len(names)))
    for j in range(n):
        k = 3 + j  # jet j has 3 + j constituents, pT-ordered
        pt = np.sort(rng.uniform(1, 100, k))[::-1]
        eta, phi = rng.normal(0, 0.3, k), rng.normal(0, 0.3, k)
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        e = np.sqrt(px**2 + py**2 + pz**2)
        for i in range(k):
            values[j, 4 * i : 4 * i + 4] = (e[i], px[i], py[i], pz[i])
    ints = np.stack([np.zeros(n, np.int64), np.arange(n) % 2], axis=1)
    return names, values, ints


def _write_pandas_table(path: Path, names: list[str], values: np.ndarray, ints: np.ndarray) -> None:
    """The layout pandas' ``HDFStore.put(key, df, format="table")`` leaves (via PyTables)."""
    n = len(values)
    dtype = np.dtype(
        [
            ("index", np.int64),
            ("values_block_0", np.float64, (values.shape[1],)),
            ("values_block_1", np.int64, (2,)),
        ]
    )
    table = np.zeros(n, dtype)
    table["index"] = np.arange(n)
    table["values_block_0"] = values
    table["values_block_1"] = ints
    with h5py.File(path, "w") as f:
        g = f.create_group("table")
        g.attrs["pandas_type"] = np.bytes_(b"frame_table")
        g.attrs["non_index_axes"] = np.bytes_(
            pickle.dumps([(1, [*names, "ttv", "is_signal_new"])], 0)
        )
        d = g.create_dataset("table", data=table)
        d.attrs["values_block_0_kind"] = np.bytes_(pickle.dumps(names, 0))
        d.attrs["values_block_1_kind"] = np.bytes_(pickle.dumps(["ttv", "is_signal_new"], 0))


def test_top_tagging_table_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    names, values, ints = _top_columns(rng, 6)
    path = tmp_path / "test.h5"
    _write_pandas_table(path, names, values, ints)
    jets = read_top_tagging_hdf5(path)
    assert len(jets) == 6
    assert ak.to_list(ak.num(jets.part_px)) == [3, 4, 5, 6, 7, 8]
    assert ak.to_list(jets.label) == [0, 1, 0, 1, 0, 1]
    assert np.array_equal(ak.to_numpy(jets.label_Tbqq), ak.to_numpy(jets.label))
    assert np.array_equal(ak.to_numpy(jets.label_QCD), 1 - ak.to_numpy(jets.label))
    np.testing.assert_allclose(ak.to_numpy(jets.part_energy[2]), values[2, 0:20:4], rtol=1e-6)
    px = values[:, 1 : 4 * N_CONST : 4].sum(axis=1)
    py = values[:, 2 : 4 * N_CONST : 4].sum(axis=1)
    np.testing.assert_allclose(ak.to_numpy(jets.jet_pt), np.hypot(px, py), rtol=1e-5)
    assert np.all(ak.to_numpy(jets.jet_mass) >= 0)
    assert {"part_deta", "part_dphi", "jet_eta", "jet_phi", "truth_energy"} <= set(jets.fields)
    assert np.all(np.abs(ak.to_numpy(ak.flatten(jets.part_dphi))) < 2)


def test_top_tagging_fixed_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    names, values, ints = _top_columns(rng, 4)
    path = tmp_path / "fixed.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("table")
        g.create_dataset("block0_items", data=np.array(names, dtype="S"))
        g.create_dataset("block0_values", data=values)
        g.create_dataset("block1_items", data=np.array([b"ttv", b"is_signal_new"]))
        g.create_dataset("block1_values", data=ints)
    jets = read_top_tagging_hdf5(path)
    assert ak.to_list(ak.num(jets.part_px)) == [3, 4, 5, 6]
    assert ak.to_list(jets.label) == [0, 1, 0, 1]


def test_top_tagging_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_top_tagging_hdf5(tmp_path / "absent.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match="not an HDF5 file"):
        read_top_tagging_hdf5(bad)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.arange(3))
    with pytest.raises(DataError, match="no pandas table"):
        read_top_tagging_hdf5(other)
    wrong = tmp_path / "wrong.h5"
    with h5py.File(wrong, "w") as f:
        g = f.create_group("table")
        g.create_dataset("block0_items", data=np.array([b"a", b"b"]))
        g.create_dataset("block0_values", data=np.zeros((3, 2)))
    with pytest.raises(DataError, match="not the top-tagging layout"):
        read_top_tagging_hdf5(wrong)


def test_energyflow_qg(tmp_path: Path) -> None:
    x = np.zeros((3, 5, 4))
    # jet 0: pi+, photon; jet 1: K-, neutron, e-; jet 2: one gamma
    x[0, :2] = [[100, 0.1, 0.2, 211], [50, -0.1, 0.25, 22]]
    x[1, :3] = [[80, 1.0, -1.0, -321], [40, 1.1, -1.05, 2112], [10, 0.9, -0.9, 11]]
    x[2, :1] = [[500, 0.0, 3.0, 22]]
    path = tmp_path / "QG_jets.npz"
    np.savez(path, X=x, y=np.array([1.0, 0.0, 1.0]))
    jets = read_energyflow_qg_npz(path)
    assert ak.to_list(ak.num(jets.part_px)) == [2, 3, 1]
    assert ak.to_list(jets.label_q) == [1, 0, 1]
    assert ak.to_list(jets.label_g) == [0, 1, 0]
    assert ak.to_list(jets.part_pid[1]) == [-321, 2112, 11]
    assert ak.to_list(jets.part_charge[1]) == [-1, 0, -1]
    assert ak.to_list(jets.part_isElectron[1]) == [0, 0, 1]
    pt = np.hypot(ak.to_numpy(ak.flatten(jets.part_px)), ak.to_numpy(ak.flatten(jets.part_py)))
    np.testing.assert_allclose(pt, [100, 50, 80, 40, 10, 500], rtol=1e-5)
    # rapidity of the pion: y = atanh(pz / E)
    e, pz = float(jets.part_energy[0, 0]), float(jets.part_pz[0, 0])
    assert np.arctanh(pz / e) == pytest.approx(0.1, rel=1e-4)
    assert float(jets.jet_pt[2]) == pytest.approx(500, rel=1e-6)
    assert float(jets.jet_mass[2]) == pytest.approx(0, abs=1e-2)


def test_energyflow_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_energyflow_qg_npz(tmp_path / "absent.npz")
    path = tmp_path / "other.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(DataError, match="no arrays 'X' and 'y'"):
        read_energyflow_qg_npz(path)
    path = tmp_path / "shape.npz"
    np.savez(path, X=np.zeros((2, 3)), y=np.zeros(2))
    with pytest.raises(DataError, match="shape"):
        read_energyflow_qg_npz(path)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"junk")
    with pytest.raises(DataError, match="not a numpy"):
        read_energyflow_qg_npz(junk)


def test_jetclass_root(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    counts = np.array([2, 4, 3])
    n = counts.sum()
    px, py = rng.normal(0, 50, n), rng.normal(0, 50, n)
    pz = rng.normal(0, 50, n)
    e = np.sqrt(px**2 + py**2 + pz**2)

    def jag(a: np.ndarray) -> ak.Array:
        return ak.unflatten(a.astype(np.float32), counts)

    branches = {
        "part_px": jag(px),
        "part_py": jag(py),
        "part_pz": jag(pz),
        "part_energy": jag(e),
        "part_isPhoton": jag(np.zeros(n)),
        "jet_pt": np.array([100.0, 200.0, 300.0], np.float32),
        "jet_sdmass": np.array([10.0, 80.0, 170.0], np.float32),
        "label_QCD": np.array([True, False, False]),
        "label_Tbqq": np.array([False, False, True]),
    }
    path = tmp_path / "ZJetsToNuNu_000.root"
    with uproot.recreate(path) as f:
        f["tree"] = branches
    jets = read_jetclass_root(path)
    assert len(jets) == 3
    assert ak.to_list(ak.num(jets.part_px)) == [2, 4, 3]
    assert ak.to_list(jets.label_Tbqq) == [False, False, True]
    assert {"jet_mass", "part_deta", "part_dphi", "jet_nparticles", "jet_sdmass"} <= set(
        jets.fields
    )
    assert ak.to_list(jets.jet_nparticles) == [2, 4, 3]
    with pytest.raises(DataError, match="no tree 'events'"):
        read_jetclass_root(path, tree="events")
    with uproot.recreate(tmp_path / "bad.root") as f:
        f["tree"] = {"x": np.arange(3)}
    with pytest.raises(DataError, match="lacks the JetClass branches"):
        read_jetclass_root(tmp_path / "bad.root")
    with pytest.raises(DataError, match="no such file"):
        read_jetclass_root(tmp_path / "absent.root")
