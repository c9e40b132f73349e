"""Shower sets and their CaloGAN / CaloChallenge HDF5 files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from heplab.detector.calogeometry import load_geometry
from heplab.errors import DataError, OutputExistsError
from heplab.events.calo import (
    ShowerSet,
    ShowerWriter,
    concatenate_showers,
    read_showers,
    write_showers,
)


def _set(name: str, n: int = 4, particle: str = "e-") -> ShowerSet:
    geo = load_geometry(name)
    rng = np.random.default_rng(3)
    showers = rng.exponential(0.01, (n, geo.n_voxels)) * (rng.random((n, geo.n_voxels)) < 0.2)
    return ShowerSet(np.linspace(10, 100, n), showers, geo, particle)


def test_calogan_file_is_the_public_layout(tmp_path) -> None:
    s = _set("calogan")
    s.overflow = np.full((4, 3), 0.5)
    path = write_showers(tmp_path / "e.h5", s)
    with h5py.File(path) as f:
        assert f["energy"].shape == (4, 1)
        assert f["energy"][2, 0] == pytest.approx(70.0)  # GeV
        assert f["layer_0"].shape == (4, 3, 96)
        assert f["layer_2"].shape == (4, 12, 6)
        # cells in MeV
        assert f["layer_1"][()].sum() == pytest.approx(
            1000 * s.layer_energies()[:, 1].sum(), rel=1e-5
        )
        assert f["overflow"][0, 0] == pytest.approx(500.0)
    back = read_showers(path)
    assert back.particle == "e-"
    assert np.allclose(back.showers, s.showers, rtol=1e-6)
    assert back.overflow is not None
    assert back.overflow[0, 0] == pytest.approx(0.5)


def test_calochallenge_file_units_and_geometry_sniffing(tmp_path) -> None:
    s = _set("ds2")
    path = write_showers(tmp_path / "ds2.h5", s)
    with h5py.File(path) as f:
        assert f["incident_energies"][0, 0] == pytest.approx(10_000.0)  # MeV
        assert f["showers"].shape == (4, 6480)
    # a public file: no heplab attributes -> geometry from the voxel count
    public = tmp_path / "public.h5"
    with h5py.File(public, "w") as f:
        f["incident_energies"] = s.energies.reshape(-1, 1) * 1000
        f["showers"] = s.showers * 1000
    back = read_showers(public)
    assert back.geometry.name == "ds2"
    assert back.particle == "unknown"
    assert np.allclose(back.energies, s.energies)
    assert np.allclose(back.showers, s.showers, rtol=1e-6)


def test_overwrite_and_corrupt_inputs(tmp_path) -> None:
    s = _set("calogan", n=2)
    path = write_showers(tmp_path / "a.h5", s)
    with pytest.raises(OutputExistsError):
        write_showers(path, s)
    write_showers(path, s, force=True)
    with pytest.raises(DataError, match="not found"):
        read_showers(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(DataError, match=r"junk\.h5"):
        read_showers(tmp_path / "junk.h5")
    nan = tmp_path / "nan.h5"
    with h5py.File(nan, "w") as f:
        f["incident_energies"] = np.ones((2, 1))
        f["showers"] = np.full((2, 6480), np.nan)
    with pytest.raises(DataError, match="NaN"):
        read_showers(nan)
    odd = tmp_path / "odd.h5"
    with h5py.File(odd, "w") as f:
        f["incident_energies"] = np.ones((2, 1))
        f["showers"] = np.ones((2, 100))
    with pytest.raises(DataError, match="100 voxels"):
        read_showers(odd)
    with pytest.raises(DataError, match="6480"):
        read_showers(odd, geometry="ds2")
    wrong = tmp_path / "wrong.h5"
    with h5py.File(wrong, "w") as f:
        f["foo"] = np.ones(3)
    with pytest.raises(DataError, match="neither"):
        read_showers(wrong)


def test_slicing_and_mixing() -> None:
    a = _set("calogan", n=4)
    b = _set("calogan", n=3, particle="pi+")
    b.extra["x0"] = np.arange(3.0)
    a.extra["x0"] = np.zeros(4)
    mixed = concatenate_showers([a, b])
    assert mixed.particle == "mixed"
    assert list(mixed.pids) == [11] * 4 + [211] * 3
    sub = mixed[mixed.pids == 211]
    assert len(sub) == 3
    assert np.array_equal(sub.extra["x0"], np.arange(3.0))
    assert len(mixed[2]) == 1
    assert mixed[1:3].showers.shape == (2, 504)
    with pytest.raises(DataError):
        ShowerSet(np.ones(2), np.ones((3, 504)), a.geometry, "e-")


def test_chunked_writer_matches_one_write(tmp_path) -> None:
    s = _set("calogan", n=6)
    s.extra["x0"] = np.arange(6.0)
    one = write_showers(tmp_path / "one.h5", s)
    with ShowerWriter(tmp_path / "two.h5", s.geometry, "e-", metadata=s.metadata) as out:
        out.append(s[:4])
        out.append(s[4:])
    a, b = read_showers(one), read_showers(tmp_path / "two.h5")
    assert np.array_equal(a.showers, b.showers)
    assert np.array_equal(b.extra["x0"], np.arange(6.0))
    # a failing block leaves no file behind
    with pytest.raises(DataError), ShowerWriter(tmp_path / "bad.h5", s.geometry, "e-") as out:
        out.append(_set("ds2", n=2))
    assert not (tmp_path / "bad.h5").exists()
