from __future__ import annotations

from pathlib import Path

import pytest

from heplab.errors import ConfigError
from heplab.generation.catalogue import get_process, list_processes, load_entry

REQUIRED = [
    "ttbar-boosted",
    "ttbar",
    "qcd-dijet",
    "w-qq",
    "z-qq",
    "z-nunu-jet",
    "z-ll",
    "h-bb",
    "h-gamgam",
    "z-jets",
    "wprime-xy",
    "tth",
    "thq",
    "minbias",
    "gun",
    "ee-z",
    "ee-zh",
    "ee-ww",
    "ee-ttbar",
]


def test_catalogue_has_the_required_entries() -> None:
    entries = list_processes()
    missing = [n for n in REQUIRED if n not in entries]
    assert not missing
    for entry in entries.values():
        assert len(entry.description) > 20, entry.name


def test_ee_entries_run_at_future_collider_energies() -> None:
    energies = {n: get_process(n).sqrts for n in ("ee-z", "ee-zh", "ee-ww", "ee-ttbar")}
    assert energies == {"ee-z": 91.2, "ee-zh": 240.0, "ee-ww": 240.0, "ee-ttbar": 365.0}
    assert all(get_process(n).beams == "ee" for n in energies)


def test_parameters_render_into_pythia_settings() -> None:
    entry = get_process("qcd-dijet")
    params = entry.resolve_params({"pthat_min": "250"})
    assert params["pthat_min"] == 250
    settings = entry.pythia_settings(params)
    assert "PhaseSpace:pTHatMin = 250" in settings
    assert "HardQCD:all = on" in settings
    wp = get_process("wprime-xy")
    s = wp.pythia_settings(wp.resolve_params({"m_x": "400", "m_y": "80"}))
    assert "37:m0 = 400" in s
    assert "35:m0 = 80" in s


def test_unknown_process_and_parameter_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match=r"unknown process 'tbar'.*did you mean"):
        get_process("tbar")
    with pytest.raises(ConfigError, match="no parameter 'mass'"):
        get_process("z-ll").resolve_params({"mass": 3})
    with pytest.raises(ConfigError, match="not a valid int value"):
        get_process("z-ll").resolve_params({"mhat_min": "sixty"})


def test_user_entries_extend_the_catalogue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my-wz.yaml").write_text(
        "name: my-wz\ndescription: WZ production for a test of user catalogue entries\n"
        "beams: pp\nsqrts: 13600\nsettings: ['WeakDoubleBoson:ffbar2ZW = on']\n"
    )
    monkeypatch.setenv("HEPLAB_PROCESS_PATH", str(tmp_path))
    entry = get_process("my-wz")
    assert entry.sqrts == 13600.0
    assert entry.pythia_settings({}) == ["WeakDoubleBoson:ffbar2ZW = on"]
    # a YAML path works where a name is expected
    assert get_process(str(tmp_path / "my-wz.yaml")).name == "my-wz"


def test_bad_user_entries(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndescription: y\nbeams: muon\nsqrts: 10\n")
    with pytest.raises(ConfigError, match="beams must be one of"):
        load_entry(bad)
    bad.write_text("name: x\ndescription: y\nbeams: pp\nsqrts: -5\n")
    with pytest.raises(ConfigError, match="sqrts"):
        load_entry(bad)
    bad.write_text("name: x\ndescription: y\nbeams: pp\nsqrts: 5\ncolour: red\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        load_entry(bad)
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_entry(bad)
