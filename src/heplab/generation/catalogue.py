"""The process catalogue: named, documented YAML entries.

Each entry (one YAML file) names a physics process and the Pythia 8 settings that make it::

    name: z-ll
    description: Drell-Yan Z -> e+e- and mu+mu- ...
    beams: pp                 # pp, ee or gun
    sqrts: 14000              # GeV, overridden by --sqrts
    settings: ["WeakSingleBoson:ffbar2gmZ = on", ...]
    parameters:               # overridable with --param NAME=VALUE
      mhat_min:
        default: 60
        doc: minimum invariant mass of the hard process [GeV]
        settings: ["PhaseSpace:mHatMin = {value}"]

A parameter either formats its ``settings`` with the value, or picks a list of settings
from ``choices``. Users add their own entries without code: put YAML files in a folder
named by the ``HEPLAB_PROCESS_PATH`` environment variable (several folders separated by
``:``), or pass the path of a YAML file where a process name is expected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from heplab.errors import ConfigError

__all__ = [
    "Parameter",
    "ProcessEntry",
    "get_process",
    "list_processes",
]

_KNOWN_KEYS = {
    "name",
    "description",
    "beams",
    "sqrts",
    "settings",
    "parameters",
    "generator",
    "requires_lhe",
}
_BEAMS = {"pp", "ee", "gun"}


@dataclass(frozen=True)
class Parameter:
    """A user-settable parameter of a catalogue entry."""

    name: str
    default: Any
    doc: str = ""
    settings: tuple[str, ...] = ()
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def render(self, value: Any) -> list[str]:
        """The Pythia settings for ``value``."""
        if self.choices:
            key = str(value)
            if key not in self.choices:
                raise ConfigError(
                    f"parameter {self.name}: {value!r} is not one of {sorted(self.choices)}"
                )
            return list(self.choices[key])
        return [s.format(value=value) for s in self.settings]

    def coerce(self, text: Any) -> Any:
        """Convert a value given on the command line to the type of the default."""
        if not isinstance(text, str):
            return text
        default = self.default
        try:
            if isinstance(default, bool):
                return text.lower() in {"1", "true", "on", "yes"}
            if isinstance(default, int):
                return int(text)
            if isinstance(default, float):
                return float(text)
        except ValueError as exc:
            raise ConfigError(
                f"parameter {self.name}: {text!r} is not a valid {type(default).__name__} value"
            ) from exc
        return text


@dataclass(frozen=True)
class ProcessEntry:
    """One process of the catalogue."""

    name: str
    description: str
    beams: str
    sqrts: float | None
    settings: tuple[str, ...]
    parameters: Mapping[str, Parameter]
    generator: str = "pythia"
    requires_lhe: bool = False
    source: str = ""

    def resolve_params(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated with ``overrides`` (unknown names raise :class:`ConfigError`)."""
        values = {name: p.default for name, p in self.parameters.items()}
        for key, value in (overrides or {}).items():
            if key not in self.parameters:
                known = ", ".join(sorted(self.parameters)) or "none"
                raise ConfigError(
                    f"process {self.name!r} has no parameter {key!r} (parameters: {known})"
                )
            values[key] = self.parameters[key].coerce(value)
        return values

    def pythia_settings(self, params: Mapping[str, Any]) -> list[str]:
        """The entry's Pythia settings followed by those of its parameters."""
        out = list(self.settings)
        for name, p in self.parameters.items():
            out.extend(p.render(params[name]))
        return out


def _builtin_files() -> list[Path]:
    root = resources.files("heplab.generation") / "catalogue"
    return sorted(Path(str(p)) for p in root.iterdir() if str(p).endswith(".yaml"))


def _user_files() -> list[Path]:
    files: list[Path] = []
    for folder in filter(None, os.environ.get("HEPLAB_PROCESS_PATH", "").split(os.pathsep)):
        files.extend(sorted(Path(folder).glob("*.yaml")))
        files.extend(sorted(Path(folder).glob("*.yml")))
    return files


def _as_settings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ConfigError(f"{where}: 'settings' must be a list of Pythia setting strings")
    return tuple(value)


def load_entry(path: str | os.PathLike[str]) -> ProcessEntry:
    """Read and validate one catalogue YAML file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"process file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a process entry must be a YAML mapping")
    unknown = set(data) - _KNOWN_KEYS
    if unknown:
        raise ConfigError(
            f"{path}: unknown keys {sorted(unknown)} (allowed: {sorted(_KNOWN_KEYS)})"
        )
    for key in ("name", "description", "beams"):
        if key not in data:
            raise ConfigError(f"{path}: missing key {key!r}")
    beams = str(data["beams"])
    if beams not in _BEAMS:
        raise ConfigError(f"{path}: beams must be one of {sorted(_BEAMS)}, not {beams!r}")
    sqrts = data.get("sqrts")
    if beams != "gun":
        if not isinstance(sqrts, int | float) or sqrts <= 0:
            raise ConfigError(f"{path}: 'sqrts' must be a positive number of GeV")
        sqrts = float(sqrts)
    params: dict[str, Parameter] = {}
    for pname, spec in (data.get("parameters") or {}).items():
        where = f"{path}: parameter {pname!r}"
        if not isinstance(spec, dict) or "default" not in spec:
            raise ConfigError(f"{where} needs a mapping with a 'default'")
        choices = {str(k): _as_settings(v, where) for k, v in (spec.get("choices") or {}).items()}
        params[str(pname)] = Parameter(
            name=str(pname),
            default=spec["default"],
            doc=str(spec.get("doc", "")),
            settings=_as_settings(spec.get("settings"), where),
            choices=choices,
        )
    return ProcessEntry(
        name=str(data["name"]),
        description=" ".join(str(data["description"]).split()),
        beams=beams,
        sqrts=sqrts,
        settings=_as_settings(data.get("settings"), str(path)),
        parameters=params,
        generator=str(data.get("generator", "pythia")),
        requires_lhe=bool(data.get("requires_lhe", False)),
        source=str(path),
    )


def list_processes() -> dict[str, ProcessEntry]:
    """All catalogue entries by name: built-in ones, then the user's (which may replace them)."""
    entries: dict[str, ProcessEntry] = {}
    for path in [*_builtin_files(), *_user_files()]:
        entry = load_entry(path)
        entries[entry.name] = entry
    return entries


def get_process(name: str) -> ProcessEntry:
    """The entry called ``name``, or the one in the YAML file at path ``name``."""
    if name.endswith((".yaml", ".yml")) and Path(name).exists():
        return load_entry(name)
    entries = list_processes()
    if name not in entries:
        import difflib

        close = difflib.get_close_matches(name, list(entries), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(
            f"unknown process {name!r}{hint}; `heplab generate --list` shows the catalogue"
        )
    return entries[name]
