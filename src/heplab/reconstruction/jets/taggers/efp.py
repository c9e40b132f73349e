"""Energy Flow Polynomials and a linear discriminant: the ``efp`` tagger.

Energy Flow Polynomials (EFPs; Komiske, Metodiev, Thaler, arXiv:1712.07124) are the
multiparticle correlators of the jet's constituents indexed by multigraphs ``G``: with ``N``
vertices and edges ``(k, l)``::

    EFP_G = sum_{i_1 .. i_N} z_{i_1} ... z_{i_N}  prod_{(k, l) in G} theta_{i_k i_l}

with the momentum fractions ``z_i = pT_i / sum_j pT_j`` and, for the hadronic measures,

``hadr``
    ``theta_ij = (dy_ij^2 + dphi_ij^2)^(beta/2)`` (rapidity-azimuth distance, dphi wrapped);
``hadrdot``
    ``theta_ij = (2 p_i.p_j / (pT_i pT_j))^(beta/2)`` (Lorentz dot product of the four-momenta;
    it sees the constituents' masses, ``theta_ii = (2 m_i^2 / pT_i^2)^(beta/2)``, and so the
    rounding noise of ``m^2 = E^2 - p^2`` of massless constituents stored in float32).

Every EFP is linear in each ``z_i`` and its angular factors vanish for collinear pairs, so it
is infrared and collinear safe (``beta > 0``); the EFPs of all multigraphs are a linear basis
of the IRC-safe observables, which is why a *linear* classifier on them is already a strong
tagger as the degree ``d`` (number of edges) grows. The paper tags with Fisher's linear
discriminant on the EFPs up to ``d <= 7`` (1000 EFPs) and ``beta = 0.5``; here the default
is ``d <= 5`` (101 EFPs, as in the energyflow package's own EFP + LDA example), since the
cost of an EFP grows as ``M^chi`` in the constituent multiplicity ``M`` (``chi``: its
variable elimination complexity, the ``c`` column of the EFP specs; ``cmax`` caps it).

The multigraphs, their order (the connected graphs, then the products that make the
disconnected ones) and their einsum contraction strings come from the ``energyflow``
package's ``EFPSet`` (``('d<=', dmax)``, the trivial ``d = 0`` graph, identically 1, left
out). The per-jet input is ``(pT, y, phi)`` (plus ``m`` for ``hadrdot``) from the
constituents' four-momenta ``part_px, part_py, part_pz, part_energy``; ``z`` is normalised per
jet (``normed=True``, ``kappa = 1``). Two evaluation ``engine`` choices give the same numbers
(to ~1e-15 relative for ``hadr``; for ``hadrdot`` see below):

``batched`` (default)
    The jets are sorted by multiplicity, cut into chunks of ``batch_size`` and padded with
    ``z = 0`` constituents (which drop out of every EFP: IRC safety); each connected graph is
    one ``numpy.einsum`` over the chunk with a leading jet index (contraction path found once
    per graph), so the Python overhead is per chunk, not per jet. ``n_jobs`` threads work on
    different chunks (einsum releases the GIL). For ``hadrdot`` the angles are summed from
    non-negative terms, accurate to ~1e-15 where energyflow's four-vector dot products lose
    ~1e-8 (relative, ``beta = 1``; more for smaller ``beta``) to cancellation at small
    angles and masses.
``energyflow``
    ``EFPSet.batch_compute`` of the package itself, jet by jet; ``n_jobs > 1`` uses its
    ``fork`` process pool.

On synthetic top/QCD jets of ~40 constituents, ``d <= 5`` (101 EFPs), one busy CPU core:
``batched`` ~650 jets/s, ``energyflow`` ~70 jets/s; ``d <= 7`` with ``cmax: 3`` (994 EFPs)
~25 jets/s. Both log their rate (jets/s) at INFO. The classifier is scikit-learn's
``LinearDiscriminantAnalysis`` (solver ``lsqr``; ``shrinkage: null`` is Fisher's
discriminant, ``auto`` the Ledoit-Wolf estimate, a number in [0, 1] a fixed shrinkage) on
the EFPs standardised with the training means and standard deviations. ``score`` is the
discriminant's decision function (float64; working point 0, where the two classes' posterior
probabilities are equal); ``n_params`` counts its coefficients and intercept. The fitted
state (EFP specs, means, scales, coefficients, intercept) is saved as JSON, without pickle.

Installing energyflow: ``pip install --no-deps "energyflow==1.4.0"`` (its EFPs need only
numpy and h5py, both heplab dependencies). Its declared dependency ``wasserstein`` (the
Energy Mover's Distance backend, not used here) caps ``numpy < 2`` in its wheels, which
breaks pyarrow, and energyflow 1.4.0 imports it unconditionally: when ``wasserstein`` is not
installed, :func:`load_energyflow` imports energyflow with a placeholder module in its place,
whose use (energyflow's EMD functions) raises an ImportError that says so.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import sys
import time
import types
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Final

import awkward as ak
import numpy as np

from heplab.errors import ConfigError, DataError
from heplab.reconstruction.jets.taggers import register_tagger
from heplab.reconstruction.jets.taggers.base import Tagger, labels

__all__ = ["EFPTagger", "efp_set", "efp_values", "jet_ptyphim", "load_energyflow"]

log = logging.getLogger(__name__)

#: The pip command that installs energyflow next to NumPy 2 (see the module docstring).
INSTALL_HINT: Final = (
    "the efp tagger needs the energyflow package: "
    'pip install --no-deps "energyflow==1.4.0" (do not install its wasserstein dependency: '
    "its wheels need NumPy < 2, which breaks pyarrow)"
)
MEASURES: Final = ("hadr", "hadrdot")
ENGINES: Final = ("batched", "energyflow")
#: The degrees of the EFP file shipped with energyflow.
DMAX_LIMIT: Final = 10
_PART_COLUMNS: Final = ("part_px", "part_py", "part_pz", "part_energy")


# -- energyflow ------------------------------------------------------------------------
class _MissingWasserstein(types.ModuleType):
    """Stands in for the ``wasserstein`` package while energyflow is imported without it."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(
            "the wasserstein package (energyflow's Energy Mover's Distance backend) is not "
            "installed; heplab's EFPs do not need it"
        )


@functools.cache
def load_energyflow() -> Any:
    """The ``energyflow`` module; :class:`ConfigError` with the install command if absent.

    energyflow 1.4.0 imports ``wasserstein`` (for its EMD functions only) at package import;
    when that is not installed a placeholder takes its place during the import and is then
    removed from ``sys.modules`` again (see the module docstring).
    """
    if "energyflow" not in sys.modules and importlib.util.find_spec("energyflow") is None:
        raise ConfigError(INSTALL_HINT)
    placeholder = None
    if "wasserstein" not in sys.modules and importlib.util.find_spec("wasserstein") is None:
        placeholder = _MissingWasserstein("wasserstein")
        sys.modules["wasserstein"] = placeholder
    try:
        import energyflow
    except ImportError as exc:
        raise ConfigError(f"{INSTALL_HINT}; importing energyflow failed: {exc}") from exc
    finally:
        if placeholder is not None and sys.modules.get("wasserstein") is placeholder:
            del sys.modules["wasserstein"]
    return energyflow


@functools.lru_cache(maxsize=16)
def efp_set(
    dmax: int = 5, measure: str = "hadr", beta: float = 0.5, cmax: int | None = None
) -> Any:
    """energyflow's ``EFPSet`` of the EFPs with ``1 <= d <= dmax`` (and ``chi <= cmax``).

    Its measure: ``measure`` (``hadr`` or ``hadrdot``) with ``beta``, ``kappa = 1``, ``z``
    normalised, coordinates ``(pT, y, phi[, m])``. Cached: one object per setting.
    """
    if measure not in MEASURES:
        raise ConfigError(f"efp: measure must be one of {', '.join(MEASURES)}, not {measure!r}")
    if not 1 <= dmax <= DMAX_LIMIT:
        raise ConfigError(f"efp: dmax must be in 1..{DMAX_LIMIT}, not {dmax}")
    if beta <= 0:
        raise ConfigError(f"efp: beta must be > 0 (IRC safety), not {beta}")
    ef = load_energyflow()
    selection: list[tuple[str, int]] = [("d<=", int(dmax)), ("d>=", 1)]
    if cmax is not None:
        selection.append(("c<=", int(cmax)))
    return ef.EFPSet(
        *selection, measure=measure, beta=float(beta), kappa=1, normed=True, coords="ptyphim"
    )


# -- the constituents ------------------------------------------------------------------
def jet_ptyphim(jets: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """The constituents' ``(pT, y, phi, m)`` as a flat ``(n_particles, 4)`` float64 array and
    the ``(n_jets + 1)`` offsets of each jet's rows.

    From ``part_px, part_py, part_pz, part_energy``; ``y = asinh(pz / mT)`` with
    ``mT^2 = pT^2 + max(m^2, 0)`` (stable for massless constituents stored in float32).
    Constituents with ``mT = 0`` (no momentum) get ``y = 0`` (their ``z`` is 0).
    """
    missing = [c for c in _PART_COLUMNS if c not in ak.fields(jets)]
    if missing:
        raise DataError(f"efp: the jets lack the constituent column(s) {', '.join(missing)}")
    counts = np.asarray(ak.to_numpy(ak.num(jets["part_px"], axis=1)), dtype=np.int64)
    px, py, pz, e = (
        np.asarray(ak.to_numpy(ak.flatten(jets[c], axis=1)), dtype=np.float64)
        for c in _PART_COLUMNS
    )
    pt = np.hypot(px, py)
    m2 = np.maximum(e * e - pt * pt - pz * pz, 0.0)
    mt = np.sqrt(pt * pt + m2)
    y = np.zeros_like(pt)
    np.divide(pz, mt, out=y, where=mt > 0)
    y = np.arcsinh(y)
    phi = np.arctan2(py, px)
    values = np.column_stack([pt, y, phi, np.sqrt(m2)])
    if not np.isfinite(values).all():
        raise DataError("efp: the constituents' four-momenta hold NaN or infinite values")
    return values, np.concatenate([[0], np.cumsum(counts)])


# -- the EFPs --------------------------------------------------------------------------
def _batch_letter(einstr: str) -> str:
    return next(c for c in "ZYXWVUTSRQPONMLKJIHGFEDCBA" if c not in einstr)


@functools.lru_cache(maxsize=16)
def _contractions(efpset: Any) -> list[tuple[str, list[Any], tuple[int, ...], int]]:
    """``(subscripts with a leading jet index, einsum path, edge weights, vertices)`` of each
    connected EFP of ``efpset``; the greedy contraction path is found once, for 64 jets of 40
    constituents, and reused for every chunk."""
    out = []
    theta, z = np.ones((64, 40, 40)), np.ones((64, 40))
    for efp in efpset.efps:
        operands = efp.einstr.split("->")[0].split(",")
        b = _batch_letter(efp.einstr)
        subscripts = ",".join(b + s for s in operands) + "->" + b
        weights = tuple(int(w) for w in efp.weights)
        args = [theta] * len(weights) + [z] * int(efp.n)
        path = np.einsum_path(subscripts, *args, optimize="greedy")[0]
        out.append((subscripts, path, weights, int(efp.n)))
    return out


def _padded(
    values: np.ndarray, offsets: np.ndarray, jets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(z, ptyphim)`` of the jets ``jets``, padded to their largest multiplicity."""
    counts = offsets[jets + 1] - offsets[jets]
    width = max(int(counts.max(initial=0)), 1)
    row = np.repeat(np.arange(len(jets)), counts)
    col = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    src = np.repeat(offsets[jets], counts) + col
    p = np.zeros((len(jets), width, 4))
    p[row, col] = values[src]
    total = p[:, :, 0].sum(axis=1, keepdims=True)
    z = np.zeros_like(p[:, :, 0])
    np.divide(p[:, :, 0], total, out=z, where=total > 0)
    return z, p


def _thetas(p: np.ndarray, measure: str, beta: float) -> np.ndarray:
    """The ``(jets, M, M)`` angles ``theta_ij`` (the measure's, to the power ``beta``)."""
    dy = p[:, :, None, 1] - p[:, None, :, 1]
    dphi = np.pi - np.abs(np.abs(p[:, :, None, 2] - p[:, None, :, 2]) - np.pi)
    if measure == "hadr":
        theta2 = dy * dy + dphi * dphi
    else:
        # hadrdot: 2 p_i.p_j / (pT_i pT_j) = 2 (a_i a_j cosh dy - cos dphi), a = mT / pT, as a
        # sum of non-negative terms (no cancellation at small angles or small masses):
        # 2 [(a_i a_j - 1) cosh dy + 2 sinh^2(dy / 2) + 2 sin^2(dphi / 2)]
        pt = np.where(p[:, :, 0] > 0, p[:, :, 0], 1.0)  # padding: any finite value (z = 0)
        r = (p[:, :, 3] / pt) ** 2  # a^2 = 1 + r
        ri, rj = r[:, :, None], r[:, None, :]
        aa1 = (ri + rj + ri * rj) / (np.sqrt((1.0 + ri) * (1.0 + rj)) + 1.0)
        theta2 = 2.0 * (
            aa1 * np.cosh(dy) + 2.0 * np.sinh(0.5 * dy) ** 2 + 2.0 * np.sin(0.5 * dphi) ** 2
        )
    return np.asarray(theta2 ** (0.5 * beta))


def _chunk_values(efpset: Any, z: np.ndarray, p: np.ndarray) -> np.ndarray:
    contractions = _contractions(efpset)
    theta = _thetas(p, efpset.measure, float(efpset.beta))
    powers = {w: theta**w for w in sorted({w for _, _, ws, _ in contractions for w in ws})}
    connected = np.empty((len(z), len(contractions)))
    for k, (subscripts, path, weights, n) in enumerate(contractions):
        operands = [powers[w] for w in weights] + [z] * n
        connected[:, k] = np.einsum(subscripts, *operands, optimize=path)
    return np.asarray(efpset.calc_disc(connected), dtype=np.float64).reshape(len(z), -1)


def _chunks(offsets: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    counts = np.diff(offsets)
    order = np.argsort(counts, kind="stable")
    for lo in range(0, len(order), batch_size):
        yield order[lo : lo + batch_size]


def efp_values(
    jets: ak.Array,
    efpset: Any,
    *,
    engine: str = "batched",
    batch_size: int = 64,
    n_jobs: int = 1,
) -> np.ndarray:
    """The ``(n_jets, n_efps)`` float64 EFPs of ``efpset`` (see :func:`efp_set`) on ``jets``.

    ``engine``: ``batched`` (padded einsums over chunks of ``batch_size`` jets, ``n_jobs``
    threads) or ``energyflow`` (``EFPSet.batch_compute``, ``n_jobs`` processes); see the
    module docstring. Jets without constituents get all EFPs 0.
    """
    if engine not in ENGINES:
        raise ConfigError(f"efp: engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    start = time.perf_counter()
    values, offsets = jet_ptyphim(jets)
    n = len(offsets) - 1
    out = np.zeros((n, len(efpset.specs)))
    if engine == "batched":

        def run(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            z, p = _padded(values, offsets, idx)
            return idx, _chunk_values(efpset, z, p)

        chunks = list(_chunks(offsets, max(int(batch_size), 1)))
        if n_jobs > 1 and len(chunks) > 1:
            with ThreadPoolExecutor(max_workers=int(n_jobs)) as pool:
                results = list(pool.map(run, chunks))
        else:
            results = [run(idx) for idx in chunks]
        for idx, x in results:
            out[idx] = x
    else:
        cols = 4 if efpset.measure == "hadrdot" else 3
        nonempty = np.flatnonzero(np.diff(offsets) > 0)
        events = [values[offsets[i] : offsets[i + 1], :cols] for i in nonempty]
        if events:
            x = efpset.batch_compute(events, n_jobs=int(n_jobs))
            out[nonempty] = np.asarray(x, dtype=np.float64).reshape(len(events), -1)
    elapsed = time.perf_counter() - start
    log.info(
        "efp: %d EFPs of %d jets in %.2f s (%.0f jets/s, engine %s)",
        out.shape[1],
        n,
        elapsed,
        n / max(elapsed, 1e-9),
        engine,
    )
    return out


# -- the tagger ------------------------------------------------------------------------
@register_tagger("efp")
class EFPTagger(Tagger):
    """Linear discriminant on standardised Energy Flow Polynomials (module docstring).

    Configuration: ``dmax`` (highest degree, 1..10), ``cmax`` (``null`` or the highest
    variable-elimination complexity chi), ``measure`` (``hadr`` or ``hadrdot``), ``beta``
    (> 0; the paper: 0.5), ``shrinkage`` (``null``: Fisher's discriminant, ``auto`` or a
    number in [0, 1]), ``engine`` (``batched`` or ``energyflow``), ``batch_size`` (jets per
    einsum chunk), ``n_jobs`` (threads, or energyflow's processes).
    """

    defaults: ClassVar[dict[str, Any]] = {
        "dmax": 5,
        "cmax": None,
        "measure": "hadr",
        "beta": 0.5,
        "shrinkage": None,
        "engine": "batched",
        "batch_size": 64,
        "n_jobs": 1,
    }

    def validate(self) -> None:
        c = self.config
        if not 1 <= c["dmax"] <= DMAX_LIMIT:
            raise ConfigError(f"efp: dmax must be in 1..{DMAX_LIMIT}, not {c['dmax']}")
        cmax = c["cmax"]
        if cmax is not None and (
            not isinstance(cmax, (int, np.integer)) or isinstance(cmax, bool) or cmax < 1
        ):
            raise ConfigError(f"efp: cmax must be null or an integer >= 1, not {cmax!r}")
        if c["measure"] not in MEASURES:
            raise ConfigError(
                f"efp: measure must be one of {', '.join(MEASURES)}, not {c['measure']!r}"
            )
        if not c["beta"] > 0:
            raise ConfigError(f"efp: beta must be > 0 (IRC safety), not {c['beta']}")
        s = c["shrinkage"]
        number = isinstance(s, (int, float)) and not isinstance(s, bool)
        if not (s is None or s == "auto" or (number and 0 <= s <= 1)):
            raise ConfigError(f"efp: shrinkage must be null, auto or in [0, 1], not {s!r}")
        if c["engine"] not in ENGINES:
            raise ConfigError(
                f"efp: engine must be one of {', '.join(ENGINES)}, not {c['engine']!r}"
            )
        for key in ("batch_size", "n_jobs"):
            if c[key] < 1:
                raise ConfigError(f"efp: {key} must be >= 1, not {c[key]}")

    def _efpset(self) -> Any:
        c = self.config
        cmax = None if c["cmax"] is None else int(c["cmax"])
        return efp_set(int(c["dmax"]), str(c["measure"]), float(c["beta"]), cmax)

    def features(self, jets: ak.Array) -> np.ndarray:
        """The ``(n_jets, n_efps)`` EFPs of this tagger's configuration."""
        c = self.config
        efpset = self._efpset()
        if hasattr(self, "specs_"):
            specs = np.asarray(efpset.specs, dtype=np.int64)
            if specs.shape != self.specs_.shape or not np.array_equal(specs, self.specs_):
                raise DataError(
                    "efp: this energyflow's EFP set differs from the one the tagger was fitted with"
                )
        return efp_values(
            jets,
            efpset,
            engine=str(c["engine"]),
            batch_size=int(c["batch_size"]),
            n_jobs=int(c["n_jobs"]),
        )

    def fit(self, train: ak.Array, val: ak.Array | None = None) -> EFPTagger:
        """Fit the discriminant on ``train``'s EFPs; ``val`` is not used."""
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        y = labels(train)
        if len(np.unique(y)) < 2:
            raise DataError("efp: the training split needs both signal and background jets")
        x = self.features(train)
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=self.config["shrinkage"])
        lda.fit((x - mean) / scale, y)
        self.specs_ = np.asarray(self._efpset().specs, dtype=np.int64)
        self.mean_ = mean
        self.scale_ = scale
        self.coef_ = np.asarray(lda.coef_, dtype=np.float64).reshape(-1)
        self.intercept_ = float(np.asarray(lda.intercept_).reshape(-1)[0])
        self.threshold = 0.0
        return self

    def score(self, jets: ak.Array) -> np.ndarray:
        self._check_fitted()
        x = self.features(jets)
        return np.asarray(((x - self.mean_) / self.scale_) @ self.coef_ + self.intercept_)

    @property
    def n_params(self) -> int:
        """The discriminant's coefficients (one per EFP) and its intercept."""
        self._check_fitted()
        return int(self.coef_.size) + 1

    def state(self) -> dict[str, Any]:
        return {
            "specs": self.specs_.tolist(),
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "coef": self.coef_.tolist(),
            "intercept": self.intercept_,
        }

    def set_state(self, state: dict[str, Any], directory: Path) -> None:
        try:
            specs = np.asarray(state["specs"], dtype=np.int64)
            mean = np.asarray(state["mean"], dtype=np.float64)
            scale = np.asarray(state["scale"], dtype=np.float64)
            coef = np.asarray(state["coef"], dtype=np.float64)
            intercept = float(state["intercept"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{directory}: incomplete efp-tagger state ({exc})") from exc
        n = coef.size
        if specs.ndim != 2 or len(specs) != n or mean.shape != (n,) or scale.shape != (n,):
            raise DataError(f"{directory}: inconsistent efp-tagger state (shapes)")
        self.specs_ = specs
        self.mean_ = mean
        self.scale_ = scale
        self.coef_ = coef
        self.intercept_ = intercept
