"""Jet taggers by name: the model zoo of the jet-tagging tasks.

A tagger class registers itself with :func:`register_tagger`; :func:`get_tagger` makes
one from its name and a (validated) configuration. The classical taggers (``cut``,
``bdt``) live in :mod:`.classical`, ``efp`` (Energy Flow Polynomials + a linear
discriminant) in :mod:`.efp`, the neural ones in :mod:`.neural` (``dnn``, ``pfn``,
``efn``, ``particlenet``, ``part``, ``transformer``), :mod:`.convolutional` (``cnn``,
``resnext``, ``pcnn``), :mod:`.sequence` (``rnn``) and :mod:`.lorentz` (``lorentznet``),
all trained and compared through the same :mod:`heplab.reconstruction.jets.tagging`
functions.

>>> from heplab.reconstruction.jets.taggers import get_tagger, list_taggers
>>> "bdt" in list_taggers()
True
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from heplab.errors import ConfigError
from heplab.reconstruction.jets.taggers.base import Tagger

__all__ = ["Tagger", "get_tagger", "list_taggers", "register_tagger", "tagger_class"]

_REGISTRY: dict[str, type[Tagger]] = {}

T = TypeVar("T", bound=type[Tagger])


def register_tagger(name: str) -> Callable[[T], T]:
    """Class decorator: register a :class:`Tagger` subclass under ``name``."""

    def decorate(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"a tagger named {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


#: Modules of :mod:`heplab.reconstruction.jets.taggers` whose classes register themselves.
_BUILTIN_MODULES = ("classical", "neural", "convolutional", "sequence", "lorentz", "efp")


def _load_builtin() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(f"{__name__}.{module}")


def list_taggers() -> list[str]:
    """Names of the registered taggers, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def tagger_class(name: str) -> type[Tagger]:
    """The class registered as ``name``; :class:`ConfigError` naming the known ones."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown tagger {name!r}; choose one of {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def get_tagger(name: str, *, seed: int = 0, **config: Any) -> Tagger:
    """A new, unfitted tagger ``name`` with hyper-parameters ``config`` (validated)."""
    return tagger_class(name)(seed=seed, **config)
