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
``jetclass``
    The ten JetClass classes (Qu, Li, Qian, arXiv:2202.03772), ``label`` = 0..9 in the
    order of :data:`~heplab.reconstruction.jets.labels.LABELS` (QCD, H->bb, H->cc, H->gg,
    H->4q, H->lqq, Z->qq, W->qq, t->bqq, t->blnu), each class the jets with that JetClass
    label equal to 1 from its own source: ``qcd-dijet`` (pT-hat 450-1100 GeV); boosted
    ``h-bb`` (H + parton, pT-hat > 450 GeV) with the Higgs decay forced per source (b b-bar;
    c c-bar; g g; W W* or Z Z* with the Z hadronic and the W inclusive, which gives both
    H->4q and H->lqq); ``z-qq`` and ``w-qq`` (pT-hat > 450 GeV); ``ttbar-boosted``
    (pT-hat 450-1100 GeV) all-hadronic for t->bqq and with both W leptonic (e, mu, tau) for
    t->blnu. Anti-kt R = 0.8, jet pT in [500, 1000] GeV, |eta| < 2, up to 128 constituents.
``flavour``
    b / c / light jets for DeepCSV/DeepJet-style taggers (CMS, arXiv:1712.07158): anti-kt
    R = 0.4, jet pT in [30, 250] GeV, |eta| < 2.5 (the tracker), up to 100 constituents.
    Truth flavour by the hard-process parton nearest to the axis within R
    (``jet_parton_pid``, the "physics" parton definition): b jets (``|pid| == 5``) and c
    jets (``|pid| == 4``, from W -> c s) from inclusive ``ttbar``, light jets (u, d, s,
    gluon) from ``qcd-dijet`` with pT-hat in [40, 250] GeV; ``label`` 0 light, 1 c, 2 b
    with the one-hots ``label_l, label_c, label_b``. Jets matched to a whole resonance
    (a W inside one jet), to a lepton, or to nothing are dropped. Extra columns from
    :func:`impact_parameter_features`: signed impact parameters of the tracks and
    secondary-vertex-like jet features.

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

__all__ = [
    "BUILD_FILE",
    "KINDS",
    "SPLITS",
    "TaskSpec",
    "build_dataset",
    "impact_parameter_features",
    "split_sizes",
]

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
    #: adds derived columns to the final jets (applied to each split before shuffling)
    features: Callable[[ak.Array], ak.Array] | None = None
    features_doc: str = ""

    def selection(self) -> dict[str, Any]:
        extra = {"features": self.features_doc} if self.features is not None else {}
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
            **extra,
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


def _parton(*apids: int) -> Callable[[ak.Array], np.ndarray]:
    def select(jets: ak.Array) -> np.ndarray:
        return np.isin(np.abs(_col(jets, "jet_parton_pid")), apids)

    return select


#: Displaced-track threshold of the flavour features: signed 2D IP significance above it.
DISPLACED_SIG: Final = 3.0


_IP_INPUTS: Final = (
    "jet_eta",
    "part_px",
    "part_py",
    "part_pz",
    "part_energy",
    "part_dphi",
    "part_charge",
    "part_d0val",
    "part_d0err",
    "part_dzval",
    "part_dzerr",
)


def _flat(jets: ak.Array, name: str) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.flatten(jets[name], axis=1)), dtype=np.float64)


def _top3(values: np.ndarray, jet: np.ndarray, n_jets: int) -> np.ndarray:
    """The three largest ``values`` of every jet (descending), 0 where a jet has fewer."""
    out = np.zeros((n_jets, 3))
    order = np.lexsort((-values, jet))
    jet_s, val_s = jet[order], values[order]
    start = np.searchsorted(jet_s, np.arange(n_jets))
    rank = np.arange(len(jet_s)) - start[jet_s]
    top = rank < 3
    out[jet_s[top], rank[top]] = val_s[top]
    return out


def impact_parameter_features(jets: ak.Array) -> ak.Array:
    """Signed impact parameters of the tracks and secondary-vertex-like jet features.

    Tracks are the charged constituents with an impact-parameter resolution
    (``part_d0err > 0``). The sign of an impact parameter is that of the projection of the
    track's point of closest approach on the jet axis (positive: the track crosses the jet
    axis downstream of the primary vertex, as tracks from a b- or c-hadron decay do): with
    the tracker's convention (closest approach at ``d0 (sin phi, -cos phi, z0)``) the 2D
    sign is that of ``d0 sin(part_dphi)`` and the 3D sign that of
    ``d0 sin(part_dphi) + z0 sinh(jet_eta)``. Columns added (0 for neutral constituents and
    for jets without tracks):

    ``part_sip2dval``, ``part_sip2dsig``
        signed transverse impact parameter [mm] and its significance ``|d0| / sigma_d0``
    ``part_sip3dval``, ``part_sip3dsig``
        signed 3D impact parameter ``hypot(d0, z0)`` [mm] and its significance (errors
        propagated from ``sigma_d0`` and ``sigma_z0``)
    ``jet_ntracks``
        number of tracks
    ``jet_ndisplaced``
        tracks with ``part_sip2dsig > 3`` (:data:`DISPLACED_SIG`)
    ``jet_sv_mass``
        invariant mass [GeV] of those displaced tracks (a secondary-vertex-mass proxy)
    ``jet_sv_efrac``
        their energy over the energy of all tracks of the jet
    ``jet_sip2dsig_1..3``, ``jet_sip3dsig_1..3``
        the three highest signed significances (DeepCSV-like track inputs)
    """
    missing = [name for name in _IP_INPUTS if name not in ak.fields(jets)]
    if missing:
        raise DataError(f"jets lack {missing}, needed for the impact-parameter features")
    counts = ak.to_numpy(ak.num(jets.part_d0val, axis=1)).astype(np.int64)
    n_jets = len(counts)
    jet = np.repeat(np.arange(n_jets), counts)
    d0, d0err = _flat(jets, "part_d0val"), _flat(jets, "part_d0err")
    dz, dzerr = _flat(jets, "part_dzval"), _flat(jets, "part_dzerr")
    dphi, charge = _flat(jets, "part_dphi"), _flat(jets, "part_charge")
    jet_eta = np.asarray(ak.to_numpy(jets.jet_eta), dtype=np.float64)[jet]
    track = (charge != 0) & (d0err > 0) & (dzerr > 0)
    sign2 = np.where(d0 * np.sin(dphi) >= 0, 1.0, -1.0)
    sign3 = np.where(d0 * np.sin(dphi) + dz * np.sinh(jet_eta) >= 0, 1.0, -1.0)
    val3 = np.hypot(d0, dz)
    with np.errstate(divide="ignore", invalid="ignore"):
        err3 = np.where(val3 > 0, np.hypot(d0 * d0err, dz * dzerr) / val3, np.hypot(d0err, dzerr))
        sip2dval = np.where(track, sign2 * np.abs(d0), 0.0)
        sip2dsig = np.where(track, sip2dval / d0err, 0.0)
        sip3dval = np.where(track, sign3 * val3, 0.0)
        sip3dsig = np.where(track, sip3dval / err3, 0.0)

    displaced = track & (sip2dsig > DISPLACED_SIG)
    p4 = np.stack([_flat(jets, f"part_{k}") for k in ("px", "py", "pz", "energy")], axis=1)
    sv = np.zeros((n_jets, 4))
    np.add.at(sv, jet[displaced], p4[displaced])
    e_tracks = np.bincount(jet[track], weights=p4[track, 3], minlength=n_jets)
    sv_mass = np.sqrt(np.maximum(sv[:, 3] ** 2 - (sv[:, :3] ** 2).sum(axis=1), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        sv_efrac = np.where(e_tracks > 0, sv[:, 3] / e_tracks, 0.0)
    ip2 = _top3(sip2dsig[track], jet[track], n_jets)
    ip3 = _top3(sip3dsig[track], jet[track], n_jets)

    out = jets
    for name, values in (
        ("part_sip2dval", sip2dval),
        ("part_sip2dsig", sip2dsig),
        ("part_sip3dval", sip3dval),
        ("part_sip3dsig", sip3dsig),
    ):
        out = ak.with_field(out, ak.unflatten(values.astype(np.float32), counts), name)
    columns: dict[str, np.ndarray] = {
        "jet_ntracks": np.bincount(jet[track], minlength=n_jets).astype(np.int32),
        "jet_ndisplaced": np.bincount(jet[displaced], minlength=n_jets).astype(np.int32),
        "jet_sv_mass": sv_mass.astype(np.float32),
        "jet_sv_efrac": sv_efrac.astype(np.float32),
    }
    for k in range(3):
        columns[f"jet_sip2dsig_{k + 1}"] = ip2[:, k].astype(np.float32)
        columns[f"jet_sip3dsig_{k + 1}"] = ip3[:, k].astype(np.float32)
    for name, values in columns.items():
        out = ak.with_field(out, values, name)
    return out


_TOP_WINDOW = {"pthat_min": 500, "pthat_max": 700}
_BOOSTED = {"pthat_min": 450}
_BOOSTED_WINDOW = {"pthat_min": 450, "pthat_max": 1100}
_H_BOOSTED = {"boosted": 1, "pthat_min": 450}
_FLAVOUR_QCD = {"pthat_min": 40, "pthat_max": 250}

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
    "jetclass": TaskSpec(
        kind="jetclass",
        reference="arXiv:2202.03772",
        R=0.8,
        pt_range=(500.0, 1000.0),
        abs_max=2.0,
        abs_var="eta",
        max_constituents=128,
        sources=(
            Source("qcd", "qcd-dijet", _BOOSTED_WINDOW, prior_yield=0.85),
            Source("hbb", "h-bb", _H_BOOSTED, prior_yield=0.45),
            Source(
                "hcc",
                "h-bb",
                _H_BOOSTED,
                ("25:onMode = off", "25:onIfMatch = 4 -4"),
                prior_yield=0.45,
            ),
            Source(
                "hgg",
                "h-bb",
                _H_BOOSTED,
                ("25:onMode = off", "25:onIfMatch = 21 21"),
                prior_yield=0.45,
            ),
            Source(
                "hvv",
                "h-bb",
                _H_BOOSTED,
                (
                    "25:onMode = off",
                    "25:onIfMatch = 24 -24",
                    "25:onIfMatch = 23 23",
                    "23:onMode = off",
                    "23:onIfAny = 1 2 3 4 5",
                ),
                prior_yield=0.1,
            ),
            Source("zqq", "z-qq", _BOOSTED, prior_yield=0.5),
            Source("wqq", "w-qq", _BOOSTED, prior_yield=0.5),
            Source("ttbar", "ttbar-boosted", _BOOSTED_WINDOW, prior_yield=0.45),
            Source(
                "ttbar-lep",
                "ttbar-boosted",
                _BOOSTED_WINDOW,
                ("24:onMode = off", "24:onIfAny = 11 13 15"),
                prior_yield=0.22,
            ),
        ),
        classes=(
            ClassSpec("QCD", "qcd", 0, _is("label_QCD"), "label_QCD == 1"),
            ClassSpec("Hbb", "hbb", 1, _is("label_Hbb"), "label_Hbb == 1"),
            ClassSpec("Hcc", "hcc", 2, _is("label_Hcc"), "label_Hcc == 1"),
            ClassSpec("Hgg", "hgg", 3, _is("label_Hgg"), "label_Hgg == 1"),
            ClassSpec("H4q", "hvv", 4, _is("label_H4q"), "label_H4q == 1"),
            ClassSpec("Hqql", "hvv", 5, _is("label_Hqql"), "label_Hqql == 1"),
            ClassSpec("Zqq", "zqq", 6, _is("label_Zqq"), "label_Zqq == 1"),
            ClassSpec("Wqq", "wqq", 7, _is("label_Wqq"), "label_Wqq == 1"),
            ClassSpec("Tbqq", "ttbar", 8, _is("label_Tbqq"), "label_Tbqq == 1"),
            ClassSpec("Tbl", "ttbar-lep", 9, _is("label_Tbl"), "label_Tbl == 1"),
        ),
    ),
    "flavour": TaskSpec(
        kind="flavour",
        reference="arXiv:1712.07158",
        R=0.4,
        pt_range=(30.0, 250.0),
        abs_max=2.5,
        abs_var="eta",
        max_constituents=100,
        sources=(
            Source("ttbar", "ttbar", {}, prior_yield=0.35),
            Source("qcd", "qcd-dijet", _FLAVOUR_QCD, prior_yield=0.65),
        ),
        classes=(
            ClassSpec("light", "qcd", 0, _parton(1, 2, 3, 21), "|jet_parton_pid| in 1..3, 21"),
            ClassSpec("c", "ttbar", 1, _parton(4), "|jet_parton_pid| == 4"),
            ClassSpec("b", "ttbar", 2, _parton(5), "|jet_parton_pid| == 5"),
        ),
        extra_labels={"label_b": "b", "label_c": "c", "label_l": "light"},
        features=impact_parameter_features,
        features_doc=(
            "signed impact parameters part_sip2d/3d val/sig; jet_ntracks, jet_ndisplaced "
            f"(sip2dsig > {DISPLACED_SIG:g}), jet_sv_mass, jet_sv_efrac, jet_sip2d/3dsig_1..3"
        ),
    ),
}


def split_sizes(
    jets: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), n_classes: int = 2
) -> dict[str, int]:
    """Jets per split (``val`` and ``test`` rounded, ``train`` the rest), each a multiple
    of ``n_classes`` (so that every split holds the same number of jets of each class)."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ConfigError(
            f"split fractions must be three positive numbers summing to 1, not {fractions}"
        )
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ConfigError(f"a dataset needs at least two classes, not {n_classes!r}")
    k = n_classes
    val = k * round(jets * fractions[1] / k)
    test = k * round(jets * fractions[2] / k)
    train = k * ((jets - val - test) // k)
    sizes = {"train": train, "val": val, "test": test}
    if min(sizes.values()) < k:
        raise ConfigError(
            f"--jets {jets} is too small: every split needs at least one jet per class "
            f"({k} classes; got {sizes})"
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
        ``"top"``, ``"qg"``, ``"jetclass"`` or ``"flavour"`` (see the module docstring).
    jets
        Total number of jets over the three splits (0.8 / 0.1 / 0.1, each a multiple of
        the number of classes), the same number per class.
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
        Unknown kind, too few jets, negative seed.
    OutputExistsError
        ``out`` holds a different build (without ``force``) or foreign files.
    DataError
        The selection stays empty after many generation rounds.
    """
    from heplab.generation.production import build_config, chunk_seeds, n_chunks, produce
    from heplab.reconstruction.jets.production import cluster_run

    if kind not in KINDS:
        raise ConfigError(f"unknown dataset kind {kind!r}; choose one of {', '.join(KINDS)}")
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, not {seed}")
    if chunk_size < 1 or min_events < 1:
        raise ConfigError("chunk_size and min_events must be >= 1")
    spec = KINDS[kind]
    sizes = split_sizes(int(jets), n_classes=len(spec.classes))
    per_class = {s: n // len(spec.classes) for s, n in sizes.items()}
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
    if spec.features is not None:
        data = spec.features(data)
    rng = np.random.default_rng(np.random.SeedSequence([seed, isplit, 7]))
    return ak.to_packed(data[rng.permutation(len(data))])


def _check_disjoint(runs: list[dict[str, Any]]) -> None:
    seeds = [r["seed"] for r in runs]
    pythia = [s for r in runs for s in r["pythia_seeds"]]
    if len(set(seeds)) != len(seeds) or len(set(pythia)) != len(pythia):
        raise DataError("two generation runs of this build share a seed; choose another --seed")
