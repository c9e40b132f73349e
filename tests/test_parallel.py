"""Run directories: a resumed run starts without the half-written files of a killed one."""

from __future__ import annotations

from pathlib import Path

from heplab.parallel import prepare_run_dir


def test_resume_removes_the_temporaries_of_a_killed_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    prepare_run_dir(run, "events", {"process": "x"}, 4)
    # what a SIGKILL during the atomic writes leaves behind
    (run / ".manifest.json.k1ll3d.tmp").write_text("{")
    (run / ".chunk-000001.parquet.k1ll3d.tmp.parquet").write_bytes(b"PAR1")
    (run / "notes.txt").write_text("the user's own file")
    manifest = prepare_run_dir(run, "events", {"process": "x"}, 4)
    assert manifest.chunks == {}
    assert sorted(p.name for p in run.iterdir()) == ["manifest.json", "notes.txt"]
