"""Calorimeter geometries: layouts, flattening order, cell lookup, YAML round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from heplab.detector.calogeometry import GEOMETRIES, geometry_from_dict, load_geometry
from heplab.errors import ConfigError, DataError


@pytest.mark.parametrize(
    ("name", "n_voxels", "shapes"),
    [
        ("calogan", 504, [(3, 96), (12, 12), (12, 6)]),
        ("ds2", 6480, [(16, 9)] * 45),
        ("ds3", 40500, [(50, 18)] * 45),
    ],
)
def test_public_layouts(name: str, n_voxels: int, shapes: list[tuple[int, int]]) -> None:
    geo = load_geometry(name)
    assert geo.n_voxels == n_voxels
    assert [la.shape for la in geo.layers] == shapes
    assert geo.layers[0].name == "layer_0"


def test_calogan_cells_tile_the_480mm_face() -> None:
    geo = load_geometry("calogan")
    for layer in geo.layers:
        assert layer.half_extent == pytest.approx((240.0, 240.0))
    # layer depths 90 / 347 / 43 mm of one stack: X0 proportional to mm
    ratios = [la.thickness_x0 / la.thickness_mm for la in geo.layers]
    assert np.ptp(ratios) < 1e-3
    assert geo.layers[1].depth_x0 == pytest.approx(
        geo.layers[0].thickness_x0 + 0.5 * geo.layers[1].thickness_x0
    )


def test_ds2_radial_edges_and_calochallenge_order() -> None:
    geo = load_geometry("ds2")
    layer = geo.layers[0]
    assert layer.r_edges == pytest.approx([4.65 * i for i in range(10)])
    x, y = layer.cell_centres()
    r = np.hypot(x, y)
    # r runs fastest: the first 9 voxels are the 9 radial bins of the first alpha slice
    assert r[:9] == pytest.approx(4.65 * (np.arange(9) + 0.5))
    alpha = np.arctan2(y, x)
    assert alpha[0] == pytest.approx(-math.pi + math.pi / 16)
    assert alpha[9] == pytest.approx(-math.pi + 3 * math.pi / 16)


@pytest.mark.parametrize("name", GEOMETRIES)
def test_locate_inverts_cell_centres(name: str) -> None:
    geo = load_geometry(name)
    for layer in (geo.layers[0], geo.layers[-1]):
        x, y = layer.cell_centres()
        assert np.array_equal(layer.locate(x, y), np.arange(layer.n_cells))
    far = geo.layers[0].half_extent[1] * 3
    assert geo.layers[0].locate([far], [0.0])[0] == -1


def test_layer_energies_split_join() -> None:
    geo = load_geometry("calogan")
    rng = np.random.default_rng(1)
    showers = rng.random((5, geo.n_voxels))
    parts = geo.split(showers)
    assert [p.shape for p in parts] == [(5, 3, 96), (5, 12, 12), (5, 12, 6)]
    assert np.array_equal(geo.join(parts), showers)
    sums = geo.layer_energies(showers)
    assert sums[:, 1] == pytest.approx(parts[1].sum(axis=(1, 2)))
    assert sums.sum(axis=1) == pytest.approx(showers.sum(axis=1))
    with pytest.raises(DataError):
        geo.layer_energies(showers[:, :10])


def test_yaml_round_trip_and_errors(tmp_path) -> None:
    geo = load_geometry("ds2")
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(geo.to_dict()))
    again = load_geometry(path)
    assert again.to_dict() == geo.to_dict()
    assert again.layers[44].depth_x0 == pytest.approx(geo.layers[44].depth_x0)
    with pytest.raises(ConfigError, match="unknown calorimeter geometry"):
        load_geometry("nope")
    with pytest.raises(DataError):
        load_geometry(tmp_path / "missing.yaml")
    bad = geo.to_dict()
    bad["layers"][0]["r_edges"] = [0, 1]
    with pytest.raises(ConfigError):
        geometry_from_dict(bad)
    bad = geo.to_dict()
    bad["layout"] = "calogan"
    with pytest.raises(ConfigError):
        geometry_from_dict(bad)
