"""LHE files: the real generator output in ../shared/data and broken copies of it."""

from __future__ import annotations

import gzip
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from heplab.errors import DataError
from heplab.events import count_lhe_events, read_events, read_lhe, read_lhe_init

COUNTS = {
    "pylhe-testfile-madgraph5-3.5.8-pp_to_jj.lhe.gz": 1000,
    "pylhe-testfile-madgraph-2.2.1-Z-mlm.lhe.gz": 10000,
    "pylhe-testfile-pythia-6.413-ttbar.lhe": 100,
    "pylhe-testfile-powheg-box-v2-hvq.lhe": 6,
    "pylhe-testfile-pythia-8.3.14-weakbosons.lhe": 100,
}
TTBAR = "pylhe-testfile-pythia-6.413-ttbar.lhe"


@pytest.mark.parametrize(("name", "expected"), COUNTS.items())
def test_count_events(shared_data: Path, name: str, expected: int) -> None:
    assert count_lhe_events(shared_data / name) == expected


def test_small_files_read_completely(shared_data: Path) -> None:
    for name in (
        "pylhe-testfile-powheg-box-v2-hvq.lhe",
        "pylhe-testfile-pythia-8.3.14-weakbosons.lhe",
    ):
        events = read_lhe(shared_data / name)
        assert len(events) == COUNTS[name]
        assert ak.all(events.eventinfo.nparticles == ak.num(events.particles))


def test_ttbar_tops(shared_data: Path) -> None:
    events = read_events(shared_data / TTBAR)
    assert len(events) == 100
    tops = events.partons[abs(events.partons.pid) == 6]
    assert ak.all(ak.sum(tops.pid == 6, axis=1) == 1)
    assert ak.all(ak.sum(tops.pid == -6, axis=1) == 1)
    assert ak.all(tops.status == -22)
    masses = ak.to_numpy(ak.flatten(tops.mass))
    assert np.median(masses) == pytest.approx(173.0, abs=3.0)
    # W bosons decay from the tops: their mother is a top
    ws = events.partons[abs(events.partons.pid) == 24]
    mothers = events.partons.pid[ws.mother]
    assert ak.all(abs(mothers) == 6)
    assert np.median(ak.to_numpy(ak.flatten(ws.mass))) == pytest.approx(80.4, abs=2.0)
    incoming = events.partons[events.partons.status == -21]
    assert ak.all(ak.num(incoming) == 2)
    assert events.id1.tolist() == ak.firsts(incoming.pid).tolist()
    assert ak.all(incoming.mother == -1)
    assert set(events.process_code.tolist()) <= {81, 82}


def test_max_events_on_gzipped_file(shared_data: Path) -> None:
    events = read_lhe(shared_data / "pylhe-testfile-madgraph-2.2.1-Z-mlm.lhe.gz", max_events=25)
    assert len(events) == 25
    leptons = events.particles[(abs(events.particles.id) == 11) | (abs(events.particles.id) == 13)]
    assert ak.all(ak.num(leptons) >= 2)


def test_init_block(shared_data: Path) -> None:
    init = read_lhe_init(shared_data / "pylhe-testfile-madgraph5-3.5.8-pp_to_jj.lhe.gz")
    assert init["beams"] == [2212, 2212]
    assert init["energies"] == [6500.0, 6500.0]
    assert init["sqrt_s"] == pytest.approx(13000.0)
    assert init["generators"][0]["name"] == "MadGraph5_aMC@NLO"
    assert init["processes"][0]["cross_section"] == pytest.approx(6.996707e8)
    ttbar = read_lhe_init(shared_data / TTBAR)
    assert ttbar["beams"] == [2212, -2212]  # the Tevatron
    assert [p["id"] for p in ttbar["processes"]] == [81, 82]
    assert ttbar["total_cross_section"] == pytest.approx(5.220106 + 0.2602564)


def test_truncated_lhe(shared_data: Path, tmp_path: Path) -> None:
    data = (shared_data / TTBAR).read_bytes()
    half = tmp_path / "half.lhe"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"half\.lhe: truncated LHE file"):
        count_lhe_events(half)
    with pytest.raises(DataError, match=r"half\.lhe: corrupt or truncated LHE file"):
        read_lhe(half)
    zipped = gzip.compress(data)
    half_gz = tmp_path / "half.lhe.gz"
    half_gz.write_bytes(zipped[: len(zipped) // 2])
    with pytest.raises(DataError, match=r"half\.lhe\.gz: cannot read LHE file"):
        count_lhe_events(half_gz)
    with pytest.raises(DataError, match=r"half\.lhe\.gz: cannot parse LHE file"):
        read_lhe(half_gz)


def test_not_lhe(tmp_path: Path) -> None:
    path = tmp_path / "fake.lhe"
    path.write_text("hello\n")
    with pytest.raises(DataError, match="not an LHE file"):
        count_lhe_events(path)
    with pytest.raises(DataError, match=r"fake\.lhe"):
        read_lhe(path)
    with pytest.raises(DataError, match=r"fake\.lhe: not a valid LHE file"):
        read_events(path)
