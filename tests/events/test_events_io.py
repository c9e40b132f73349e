"""read_events / write_events dispatch and the errors every reader shares."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from heplab.errors import ConfigError, DataError, OutputExistsError
from heplab.events import detect_format, read_events, write_events


@pytest.mark.parametrize(
    ("name", "fmt", "kind"),
    [
        ("a.parquet", None, "parquet"),
        ("a.root", None, "root"),
        ("a.h5", None, "hdf5"),
        ("a.hdf5", "hdf5", "hdf5"),
        ("no_suffix", "parquet", "parquet"),
        ("no_suffix_root", "root", "root"),
    ],
)
def test_write_then_read_any_format(
    tmp_path: Path, events: ak.Array, name: str, fmt: str | None, kind: str
) -> None:
    path = tmp_path / name
    assert write_events(events, path, fmt) == path  # type: ignore[arg-type]
    assert detect_format(path) == kind
    back = read_events(path)
    assert len(back) == len(events)
    assert back.event_id.tolist() == events.event_id.tolist()
    np.testing.assert_allclose(
        ak.flatten(back.pfcands.pt), ak.flatten(events.pfcands.pt), rtol=1e-6
    )
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporaries left


def test_write_events_refuses_existing_output(tmp_path: Path, events: ak.Array) -> None:
    for name in ("a.parquet", "a.root", "a.h5"):
        path = tmp_path / name
        write_events(events, path)
        before = path.read_bytes()
        with pytest.raises(OutputExistsError, match="already exists"):
            write_events(events[:2], path)
        assert path.read_bytes() == before
        write_events(events[:2], path, overwrite=True)
        assert len(read_events(path)) == 2
    with pytest.raises(OutputExistsError, match="is a directory"):
        write_events(events, tmp_path, "parquet", overwrite=True)


def test_write_events_format_errors(tmp_path: Path, events: ak.Array) -> None:
    with pytest.raises(ConfigError, match="cannot tell the output format"):
        write_events(events, tmp_path / "events.dat")
    with pytest.raises(ConfigError, match="unknown output format 'feather'"):
        write_events(events, tmp_path / "events.dat", "feather")  # type: ignore[arg-type]


def test_write_creates_parent_directories(tmp_path: Path, events: ak.Array) -> None:
    path = tmp_path / "deep" / "er" / "events.parquet"
    write_events(events, path)
    assert len(read_events(path)) == len(events)


def test_reader_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"absent\.parquet: no such file or directory"):
        read_events(tmp_path / "absent.parquet")
    empty = tmp_path / "empty.root"
    empty.touch()
    with pytest.raises(DataError, match=r"empty\.root: empty file"):
        read_events(empty)
    unknown = tmp_path / "notes.bin"
    unknown.write_bytes(b"\x00\x01 some bytes")
    with pytest.raises(DataError, match=r"notes\.bin: unknown file type"):
        read_events(unknown)
    for suffix, name in ((".parquet", "parquet"), (".h5", "HDF5"), (".root", "ROOT")):
        junk = tmp_path / f"junk{suffix}"
        junk.write_bytes(np.random.default_rng(1).bytes(1000))
        with pytest.raises(DataError, match=rf"junk\{suffix}: not a valid {name} file"):
            read_events(junk)
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(DataError, match=r"neither a heplab manifest\.json nor parquet files"):
        read_events(other)


def test_content_wins_over_suffix(tmp_path: Path, events: ak.Array) -> None:
    """A parquet file misnamed .root is still read as parquet."""
    path = tmp_path / "misnamed.root"
    write_events(events, path, "parquet")
    assert detect_format(path) == "parquet"
    assert read_events(path).tolist() == events.tolist()


def test_read_events_gives_vector_behaviour(tmp_path: Path, events: ak.Array) -> None:
    path = tmp_path / "plain.parquet"
    write_events(ak.Array(ak.without_parameters(events)), path)
    back = read_events(path)
    dr = back.particles[:, :1].deltaR(back.particles[:, 1:2])
    assert ak.all(ak.flatten(dr) >= 0)
    mass = (back.partons[:, 3] + back.partons[:, 4]).mass
    assert len(mass) == len(events)


def test_atomic_output_gives_files_the_umask_mode(tmp_path: Path) -> None:
    # mkstemp makes private files; a finished output must be readable like any new file
    import os

    from heplab.events._util import atomic_output, default_file_mode

    old = os.umask(0o022)
    try:
        target = tmp_path / "out.txt"
        with atomic_output(target) as tmp:
            tmp.write_text("x")
        assert default_file_mode() == 0o644
        assert (target.stat().st_mode & 0o777) == 0o644
    finally:
        os.umask(old)
