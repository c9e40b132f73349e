"""``heplab jets build``: balanced, split jet-tagging datasets in the published settings.

A build generates events with Pythia 8 and the fast detector (:func:`heplab.generation.
production.produce`), clusters them (:func:`heplab.reconstruction.jets.production.
cluster_run`), selects the jets of each class, and writes train / validation / test sets
with equal numbers of jets per class, shuffled with a seeded generator. Both steps resume
(finished chunks are skipped) and refuse to mix runs, so re-running the same command
finishes an interrupted build and rewrites the same final files.

Tasks (``kind``):

``top``
    Top tagging as in the community comparison (Kasieczka et al., arXiv:1902.09914):
    14 TeV, signal ``ttbar-boosted`` jets with ``label_Tbqq == 1`` (all three top decay
    quarks within R of the axis), background ``qcd-dijet`` jets with ``label_QCD == 1``;
    both with pT-hat in [500, 700] GeV; anti-kt R = 0.8 on particle-flow candidates (ATLAS-
    like card); jet pT in [550, 650] GeV, |eta| < 2; up to 200 constituents, pT-ordered.
``qg``
    Quark/gluon as in the Energy Flow Networks paper (Komiske, Metodiev, Thaler,
    arXiv:1810.05165): 14 TeV ``z-nunu-jet`` with pT-hat > 450 GeV, the quark sample from
    ``qg -> Z q`` only and the gluon sample from ``q qbar -> Z g`` only (as the reference
    generated them); anti-kt R = 0.4; jet pT in [500, 550] GeV, |y| < 2 (true rapidity,
    from the jet four-momentum); quark jets are light (u, d, s: ``|jet_parton_pid|`` in
    1..3, the reference's default sample without c and b), gluon jets ``jet_parton_pid ==
    21``; jets matched to c or b (or to nothing) are dropped. Extra columns ``label_q``,
    ``label_g``.

Every selected jet of an event is used (not only the leading one). Layout of ``out``::

    build.json                         configuration, generation runs, counts
    runs/<split>/<source>/events[-K]   events runs (round K > 0: further rounds)
    runs/<split>/<source>/jets[-K]     their jets runs
    train/jets.parquet, val/jets.parquet, test/jets.parquet

Every generation run has its own seed derived from (build seed, split, source, round) and
the Pythia seeds of all chunks of a build are checked to be distinct, so no event is
shared between splits. Each final row carries ``gen_seed`` (the seed of the generation run
it comes from) beside ``event_id`` (its index in that run).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import awkward as ak
import numpy as np

from heplab import __version__
from heplab.errors import ConfigError, DataError, OutputExistsError
from heplab.events.manifest import atomic_write_bytes
from heplab.parallel import local_cluster

__all__ = ["BUILD_FILE", "KINDS", "SPLITS", "TaskSpec", "build_dataset", "split_sizes"]

log = logging.getLogger(__name__)

BUILD_FILE: Final = "build.json"
SPLITS: Final = ("train", "val", "test")
DATASET_FILE: Final = "jets.parquet"
_MAX_ROUNDS: Final = 12
_SPLIT_SEED_STRIDE: Final = 1_000_003


@dataclass(frozen=True)
class Source:
    """A generation run per split: catalogue process, parameters, extra Pythia settings."""

    name: str
    process: str
    params: dict[str, Any]
    pythia: tuple[str, ...] = ()
    prior_yield: float = 0.1  # selected jets per event of its class(es), first-round guess


@dataclass(frozen=True)
class ClassSpec:
    """A class of the dataset: the jets of ``source`` passing ``select``; ``label`` value."""

    name: str
    source: str
    label: int
    select: Callable[[ak.Array], np.ndarray]
    description: str


@dataclass(frozen=True)
class TaskSpec:
    """The published setting of a jet-tagging task."""

    kind: str
    reference: str
    R: float
    pt_range: tuple[float, float]
    abs_max: float
    abs_var: str  # "eta" or "y"
    max_constituents: int
    sources: tuple[Source, ...]
    classes: tuple[ClassSpec, ...]
    extra_labels: dict[str, str] = field(default_factory=dict)  # column -> class name

    def selection(self) -> dict[str, Any]:
        return {
            "algorithm": "antikt",
            "R": self.R,
            "inputs": "pfcands",
            "jet_pt": list(self.pt_range),
            f"abs_{self.abs_var}_max": self.abs_max,
            "max_constituents": self.max_constituents,
            "classes": {
                c.name: {"label": c.label, "source": c.source, "jets": c.description}
                for c in self.classes
            },
        }


def _col(jets: ak.Array, name: str) -> np.ndarray:
    return np.asarray(ak.to_numpy(jets[name]))


def _is(name: str) -> Callable[[ak.Array], np.ndarray]:
    def select(jets: ak.Array) -> np.ndarray:
        return _col(jets, name) == 1

    return select


def _light_quark(jets: ak.Array) -> np.ndarray:
    return np.isin(np.abs(_col(jets, "jet_parton_pid")), (1, 2, 3))


def _gluon(jets: ak.Array) -> np.ndarray:
    return _col(jets, "jet_parton_pid") == 21


_TOP_WINDOW = {"pthat_min": 500, "pthat_max": 700}

#: The tasks that ``heplab jets build`` implements.
KINDS: Final[dict[str, TaskSpec]] = {
    "top": TaskSpec(
        kind="top",
        reference="arXiv:1902.09914",
        R=0.8,
        pt_range=(550.0, 650.0),
        abs_max=2.0,
        abs_var="eta",
        max_constituents=200,
        sources=(
            Source("ttbar", "ttbar-boosted", _TOP_WINDOW, prior_yield=0.35),
            Source("qcd", "qcd-dijet", _TOP_WINDOW, prior_yield=0.6),
        ),
        classes=(
            ClassSpec("signal", "ttbar", 1, _is("label_Tbqq"), "label_Tbqq == 1"),
            ClassSpec("background", "qcd", 0, _is("label_QCD"), "label_QCD == 1"),
        ),
    ),
    "qg": TaskSpec(
        kind="qg",
        reference="arXiv:1810.05165",
        R=0.4,
        pt_range=(500.0, 550.0),
        abs_max=2.0,
        abs_var="y",
        max_constituents=200,
        sources=(
            Source(
                "zq",
                "z-nunu-jet",
                {"pthat_min": 450},
                ("WeakBosonAndParton:qqbar2gmZg = off",),
                prior_yield=0.1,
            ),
            Source(
                "zg",
                "z-nunu-jet",
                {"pthat_min": 450},
                ("WeakBosonAndParton:qg2gmZq = off",),
                prior_yield=0.08,
            ),
        ),
        classes=(
            ClassSpec("quark", "zq", 1, _light_quark, "|jet_parton_pid| in 1..3 (u, d, s)"),
            ClassSpec("gluon", "zg", 0, _gluon, "jet_parton_pid == 21"),
        ),
        extra_labels={"label_q": "quark", "label_g": "gluon"},
    ),
}

_NOT_YET: Final = ("jetclass", "flavour")


def split_sizes(
    jets: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> dict[str, int]:
    """Jets per split (``val`` and ``test`` rounded, ``train`` the rest), each even."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ConfigError(
            f"split fractions must be three positive numbers summing to 1, not {fractions}"
        )
    val = 2 * round(jets * fractions[1] / 2)
    test = 2 * round(jets * fractions[2] / 2)
    train = 2 * ((jets - val - test) // 2)
    sizes = {"train": train, "val": val, "test": test}
    if min(sizes.values()) < 2:
        raise ConfigError(
            f"--jets {jets} is too small: every split needs at least one jet per class "
            f"(got {sizes})"
        )
    return sizes


def _rapidity(jets: ak.Array) -> np.ndarray:
    pt = _col(jets, "jet_pt").astype(np.float64)
    eta = _col(jets, "jet_eta").astype(np.float64)
    energy = _col(jets, "jet_energy").astype(np.float64)
    pz = pt * np.sinh(eta)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 0.5 * np.log((energy + pz) / (energy - pz))


def _in_window(spec: TaskSpec, jets: ak.Array) -> np.ndarray:
    pt = _col(jets, "jet_pt")
    lo, hi = spec.pt_range
    var = _rapidity(jets) if spec.abs_var == "y" else _col(jets, "jet_eta")
    return (pt > lo) & (pt < hi) & (np.abs(var) < spec.abs_max)


def _run_seed(seed: int, split: int, source: int, rnd: int) -> int:
    """Seed of the generation run of (split, source, round): distinct for distinct inputs
    as long as fewer than 1000 rounds and sources (checked by the caller)."""
    return int(seed + _SPLIT_SEED_STRIDE * (1 + split) + 1000 * rnd + source)


def _read_build(out: Path) -> dict[str, Any] | None:
    path = out / BUILD_FILE
    if not path.is_file():
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: corrupt build file ({exc})") from exc


def _write_build(out: Path, data: dict[str, Any]) -> None:
    atomic_write_bytes(out / BUILD_FILE, (json.dumps(data, indent=2) + "\n").encode())


def _prepare(out: Path, config: dict[str, Any], force: bool) -> None:
    """Create ``out`` or reopen it for the same build; refuse another unless ``force``."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a directory")
    old = _read_build(out)
    if old is not None:
        if old.get("config") == config:
            return
        if not force:
            diff = sorted(
                k
                for k in set(old.get("config", {})) | set(config)
                if old.get("config", {}).get(k) != config.get(k)
            )
            raise OutputExistsError(
                f"{out} holds a jets build with a different configuration (differs in: "
                f"{', '.join(diff)}); choose another --out, or pass --force to delete it"
            )
        log.warning("--force: removing the previous build in %s", out)
        for name in ("runs", *SPLITS):
            if (out / name).is_dir():
                shutil.rmtree(out / name)
        (out / BUILD_FILE).unlink()
    elif out.is_dir() and any(out.iterdir()):
        raise OutputExistsError(f"{out} is not empty and is not a jets build; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    _write_build(out, {"config": config, "complete": False, "heplab_version": __version__})


def _events_for(
    need: dict[str, int], have: dict[str, int], generated: int, prior: float, min_events: int
) -> int:
    """Events of the next round: enough for the missing jets at the measured yield (the
    prior before any event), with a 20 % margin."""
    n = 0
    for name, k in need.items():
        missing = k - have.get(name, 0)
        if missing <= 0:
            continue
        yld = have.get(name, 0) / generated if generated and have.get(name, 0) else 0.0
        if generated and yld == 0:
            n = max(n, 2 * generated)  # nothing yet: double
            continue
        n = max(n, math.ceil(1.2 * missing / (yld or prior)))
    return max(n, min_events) if n else 0


def build_dataset(
    kind: str,
    jets: int,
    out: str | os.PathLike[str],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    seed: int = 1,
    force: bool = False,
    progress: bool = True,
    chunk_size: int = 1000,
    min_events: int = 100,
) -> Path:
    """Build (or finish) the ``kind`` dataset of ``jets`` jets in ``out``; returns ``out``.

    Parameters
    ----------
    kind
        ``"top"`` or ``"qg"`` (see the module docstring); ``"jetclass"`` and
        ``"flavour"`` are not implemented yet (:class:`ConfigError`).
    jets
        Total number of jets over the three splits (0.8 / 0.1 / 0.1), half per class.
    out
        The build directory (layout in the module docstring).
    workers, scheduler
        Local Dask worker processes (0: in this process) or a scheduler's address.
    seed
        Build seed; the generation runs' seeds are derived from it.
    force
        Delete a build with a different configuration in ``out`` first.
    chunk_size
        Events per generation chunk (part of the configuration).
    min_events
        Fewest events a generation round makes (part of the configuration).

    Raises
    ------
    ConfigError
        Unknown or unimplemented kind, too few jets, negative seed.
    OutputExistsError
        ``out`` holds a different build (without ``force``) or foreign files.
    DataError
        The selection stays empty after many generation rounds.
    """
    from heplab.generation.production import build_config, chunk_seeds, n_chunks, produce
    from heplab.reconstruction.jets.production import cluster_run

    if kind in _NOT_YET:
        raise ConfigError(f"jets build {kind!r} is not implemented yet (available: top, qg)")
    if kind not in KINDS:
        raise ConfigError(f"unknown dataset kind {kind!r}; choose one of top, qg")
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, not {seed}")
    if chunk_size < 1 or min_events < 1:
        raise ConfigError("chunk_size and min_events must be >= 1")
    spec = KINDS[kind]
    sizes = split_sizes(int(jets))
    per_class = {s: n // 2 for s, n in sizes.items()}
    config = {
        "kind": kind,
        "reference": spec.reference,
        "jets": int(jets),
        "splits": sizes,
        "jets_per_class": per_class,
        "seed": int(seed),
        "chunk_size": int(chunk_size),
        "min_events": int(min_events),
        "selection": spec.selection(),
        "sources": {
            s.name: {"process": s.process, "params": s.params, "pythia": list(s.pythia)}
            for s in spec.sources
        },
    }
    root = Path(out)
    _prepare(root, config, force)

    runs: list[dict[str, Any]] = []
    counts: dict[str, dict[str, int]] = {}
    datasets: dict[str, ak.Array] = {}
    with ExitStack() as stack:
        address = stack.enter_context(local_cluster(workers, scheduler))
        for isplit, split in enumerate(SPLITS):
            selected: dict[str, list[ak.Array]] = {c.name: [] for c in spec.classes}
            for isrc, source in enumerate(spec.sources):
                classes = [c for c in spec.classes if c.source == source.name]
                need = {c.name: per_class[split] for c in classes}
                have = dict.fromkeys(need, 0)
                generated = 0
                for rnd in range(_MAX_ROUNDS):
                    n_ev = _events_for(need, have, generated, source.prior_yield, min_events)
                    if n_ev == 0:
                        break
                    run_seed = _run_seed(int(seed), isplit, isrc, rnd)
                    suffix = f"-{rnd}" if rnd else ""
                    base = root / "runs" / split / source.name
                    ev_dir, jet_dir = base / f"events{suffix}", base / f"jets{suffix}"
                    gen = build_config(
                        source.process,
                        events=n_ev,
                        seed=run_seed,
                        chunk_size=int(chunk_size),
                        params=source.params,
                        pythia=source.pythia,
                    )
                    produce(gen, ev_dir, workers=workers, scheduler=address, progress=progress)
                    jman = cluster_run(
                        ev_dir,
                        jet_dir,
                        R=spec.R,
                        ptmin=spec.pt_range[0],
                        max_constituents=spec.max_constituents,
                        inputs="pfcands",
                        workers=workers,
                        scheduler=address,
                        progress=progress,
                    )
                    from heplab.events.parquet import read_parquet

                    files = jman.files(jet_dir)
                    jets_arr = read_parquet(files) if files else None
                    generated += n_ev
                    if jets_arr is not None and len(jets_arr):
                        window = _in_window(spec, jets_arr)
                        jets_arr = ak.with_field(
                            jets_arr,
                            np.full(len(jets_arr), run_seed, dtype=np.int64),
                            "gen_seed",
                        )
                        for c in classes:
                            mask = window & c.select(jets_arr)
                            have[c.name] += int(mask.sum())
                            selected[c.name].append(jets_arr[mask])
                    runs.append(
                        {
                            "split": split,
                            "source": source.name,
                            "process": source.process,
                            "round": rnd,
                            "seed": run_seed,
                            "events": n_ev,
                            "events_dir": str(ev_dir.relative_to(root)),
                            "jets_dir": str(jet_dir.relative_to(root)),
                            "pythia_seeds": [
                                chunk_seeds(run_seed, i)["pythia"] for i in range(n_chunks(gen))
                            ],
                            "selected": dict(have),
                        }
                    )
                else:
                    raise DataError(
                        f"{split}/{source.name}: only {have} of {need} jets after "
                        f"{_MAX_ROUNDS} generation rounds ({generated} events)"
                    )
                counts.setdefault(split, {}).update(
                    {f"{c}_events": generated for c in need}
                    | {f"{c}_selected": have[c] for c in need}
                )
            datasets[split] = _assemble(spec, selected, per_class[split], int(seed), isplit)

    _check_disjoint(runs)
    for split, data in datasets.items():
        from heplab.events.parquet import write_parquet

        (root / split).mkdir(exist_ok=True)
        write_parquet(data, root / split / DATASET_FILE, overwrite=True)
    _write_build(
        root,
        {
            "config": config,
            "complete": True,
            "heplab_version": __version__,
            "yields": {
                split: {
                    c.name: counts[split][f"{c.name}_selected"] / counts[split][f"{c.name}_events"]
                    for c in spec.classes
                }
                for split in SPLITS
            },
            "counts": counts,
            "runs": runs,
        },
    )
    return root


def _assemble(
    spec: TaskSpec, selected: dict[str, list[ak.Array]], n: int, seed: int, isplit: int
) -> ak.Array:
    """Balanced (first ``n`` jets of each class, in run order), labelled, shuffled."""
    parts = []
    for c in spec.classes:
        arr = ak.concatenate(selected[c.name]) if selected[c.name] else None
        if arr is None or len(arr) < n:
            raise DataError(f"class {c.name}: {0 if arr is None else len(arr)} of {n} jets")
        arr = arr[:n]
        arr = ak.with_field(arr, np.full(n, c.label, dtype=np.int8), "label")
        for column, cname in spec.extra_labels.items():
            arr = ak.with_field(arr, np.full(n, int(cname == c.name), dtype=np.int8), column)
        parts.append(arr)
    data = ak.concatenate(parts)
    rng = np.random.default_rng(np.random.SeedSequence([seed, isplit, 7]))
    return ak.to_packed(data[rng.permutation(len(data))])


def _check_disjoint(runs: list[dict[str, Any]]) -> None:
    seeds = [r["seed"] for r in runs]
    pythia = [s for r in runs for s in r["pythia_seeds"]]
    if len(set(seeds)) != len(seeds) or len(set(pythia)) != len(pythia):
        raise DataError("two generation runs of this build share a seed; choose another --seed")
