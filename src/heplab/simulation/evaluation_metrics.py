"""Sample-based metrics of generative shower models: the classifier test, FPD and KPD.

**Classifier test** (CaloChallenge, arXiv:2410.21611 section 4.2; arXiv:2106.05285): a deep
neural network is trained to tell generated showers (label 0) from reference showers
(label 1), on disjoint train / validation / test splits (60 / 20 / 20 % of each class). A
perfect generator leaves it guessing: AUC = 0.5. The network is the challenge's: three
hidden layers of 512 units with LeakyReLU (its ``DNN`` with ``num_layer=2``), trained with
binary cross-entropy; here through heplab's engine (:func:`heplab.ml.engine.fit`: AdamW,
learning rate 1e-3, batches of 256, cosine schedule, at most 50 epochs with early stopping
on the validation loss, best epoch kept) rather than the challenge's 50 epochs of Adam
(2e-4, batches of 1000) with the model chosen by validation accuracy.
Its outputs are calibrated with isotonic regression on the validation split (as the
challenge) and scored on the test split:

- ``auc``: :func:`sklearn.metrics.roc_auc_score` of the raw scores;
- ``jsd``: the Jensen-Shannon divergence estimated from the calibrated binary cross-entropy
  ``BCE`` on the balanced test split, ``JSD = (ln 2 - BCE) / ln 2`` (in bits: 0 for
  indistinguishable samples, 1 for disjoint ones; the optimal classifier's BCE on balanced
  classes is ``ln 2 - JSD [nats]``). Finite test sets can make it slightly negative.

Inputs: low level, ``log10(E_inc / GeV)`` and every cell's energy over the incident energy
``E_i / E_inc`` (the challenge's ``cls-low``); high level, the feature set of
:mod:`heplab.simulation.evaluation_features` (``cls-high``). Both are standardised per
column with the training split's mean and standard deviation. Generated showers may carry
weights (e.g. from :mod:`heplab.simulation.reweight`): they enter the loss, the calibration,
the AUC and the BCE, each class normalised to the same total weight per split.

**Frechet physics distance** (FPD, arXiv:2211.10295, the definition of the ``jetnet``
library): the Frechet distance between Gaussians fitted to the two feature sets,

    FD = |mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)),

measured on ``num_batches`` random batches (drawn with replacement) at ``num_points`` batch
sizes spaced evenly in 1/N, averaged per size, and extrapolated linearly in 1/N to infinite
sample size (FD is biased by ~ 1/N); the value is the fitted intercept (>= 0) and the error
its standard error. ``Tr (S_1 S_2)^(1/2)`` is computed as ``sum sqrt(eig(A S_2 A))`` with
``A = S_1^(1/2)`` from symmetric eigen-decompositions, which equals the trace of
:func:`scipy.linalg.sqrtm` of ``S_1 S_2`` without its complex round-off.

**Kernel physics distance** (KPD, same reference): the unbiased estimator of the squared
maximum mean discrepancy with the polynomial kernel ``k(x, y) = (x.y / d + 1)^degree``,

    MMD^2 = sum_{i!=j} k(x_i, x_j) / (m (m-1)) + sum_{i!=j} k(y_i, y_j) / (n (n-1))
            - 2 sum_{i,j} k(x_i, y_j) / (m n),

on ``num_batches`` batches of ``batch_size`` (with replacement); the value is the median over
batches and the error half the 16.275-83.725 % interquantile range (jetnet's choices;
jetnet's kernel degree is 4, KID's, arXiv:1801.01401, is 3; ``degree`` chooses).

Both distances are computed on features divided by the reference's largest absolute value
per feature (``normalise="maxabs"``, jetnet's normalisation); ``normalise="standard"``
standardises with the reference's mean and standard deviation instead, which inflates
near-constant features with rare outliers (a layer's sparsity that is almost always 1).
FPD's error is the extrapolation's fit error only: it does not contain the statistical
noise of the two finite samples, so two samples of one distribution give a small positive
FPD outside that error; the floor (:func:`heplab.simulation.evaluation.evaluate`) measures
that noise.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import linalg
from scipy.optimize import curve_fit
from scipy.stats import iqr

from heplab.errors import ConfigError, DataError

__all__ = [
    "ClassifierConfig",
    "ClassifierResult",
    "TrainedClassifier",
    "classifier_test",
    "fpd",
    "frechet_distance",
    "kpd",
    "low_level_inputs",
    "mmd_poly_unbiased",
    "normalise_features",
    "train_classifier",
]

_P_CLIP = 1e-6  # calibrated probabilities live in [1e-6, 1 - 1e-6] (the challenge's clip)


# ---------------------------------------------------------------------------- inputs
def low_level_inputs(showers: np.ndarray, energies: np.ndarray) -> np.ndarray:
    """Low-level classifier inputs: ``[log10(E_inc / GeV), E_i / E_inc ...]``, float32."""
    e = np.asarray(energies, dtype=np.float64)
    data = np.asarray(showers)
    out = np.empty((data.shape[0], data.shape[1] + 1), dtype=np.float32)
    out[:, 0] = np.log10(e)
    np.divide(data, e[:, None], out=out[:, 1:], casting="unsafe")
    return out


def normalise_features(
    reference: np.ndarray, other: np.ndarray, how: str = "maxabs"
) -> tuple[np.ndarray, np.ndarray]:
    """Both feature sets scaled with the reference's statistics (see the module doc)."""
    ref = np.asarray(reference, dtype=np.float64)
    oth = np.asarray(other, dtype=np.float64)
    if how == "standard":
        mean = ref.mean(axis=0)
        scale = ref.std(axis=0)
    elif how == "maxabs":
        mean = np.zeros(ref.shape[1])
        scale = np.abs(ref).max(axis=0)
    elif how == "none":
        return ref, oth
    else:
        raise ConfigError(f"normalise must be 'standard', 'maxabs' or 'none', not {how!r}")
    scale = np.where(scale > 0, scale, 1.0)
    return (ref - mean) / scale, (oth - mean) / scale


def _check_features(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise DataError(f"feature sets must be (N, d) with the same d, not {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise DataError("feature sets contain NaN or infinite values")
    return a, b


def _probabilities(weights: np.ndarray | None, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise DataError(f"weights must be {n} finite, non-negative numbers with a positive sum")
    return w / w.sum()


# ---------------------------------------------------------------------------- FPD
def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    m1, m2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    s1, s2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if m1.shape != m2.shape or s1.shape != s2.shape or s1.shape != (m1.size, m1.size):
        raise ValueError("means and covariances have incompatible shapes")
    root = _sqrt_psd(s1)
    cross = linalg.eigvalsh(root @ s2 @ root)
    trace_sqrt = float(np.sum(np.sqrt(np.clip(cross, 0.0, None))))
    diff = m1 - m2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt)


def _linear(x: np.ndarray, intercept: float, slope: float) -> np.ndarray:
    return intercept + slope * x


def fpd(
    reference: np.ndarray,
    generated: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    min_samples: int | None = None,
    max_samples: int | None = None,
    num_batches: int = 10,
    num_points: int = 5,
    normalise: str = "maxabs",
    seed: int = 0,
) -> tuple[float, float]:
    """Frechet physics distance and its error (see the module doc).

    Batch sizes run from ``min_samples`` (default ``0.4 * max_samples``, jetnet's 20k/50k
    ratio) to ``max_samples`` (default the smaller sample size), ``num_points`` sizes with
    ``num_batches`` batches each (jetnet: 10 and 20; the defaults here are 5 and 10, a
    quarter of the cost: the covariances of ~300 ds2 features dominate it); ``weights`` weight the
    generated rows (weighted mean and covariance of each uniformly drawn batch).
    """
    ref, gen = _check_features(reference, generated)
    p_gen = _probabilities(weights, len(gen))
    ref, gen = normalise_features(ref, gen, normalise)
    n_max = int(max_samples or min(len(ref), len(gen)))
    n_min = int(min_samples or max(int(0.4 * n_max), 2))
    if not 2 <= n_min <= n_max:
        raise ConfigError(f"need 2 <= min_samples <= max_samples, not {n_min}, {n_max}")
    if num_points < 2 or num_batches < 1:
        raise ConfigError("fpd needs num_points >= 2 and num_batches >= 1")
    sizes = np.unique((1.0 / np.linspace(1.0 / n_min, 1.0 / n_max, num_points)).astype(np.int64))
    rng = np.random.default_rng(seed)
    means = []
    for size in sizes:
        values = []
        for _ in range(num_batches):
            a = ref[rng.integers(0, len(ref), size)]
            pick = rng.integers(0, len(gen), size)
            b = gen[pick]
            w_b = None if p_gen is None else p_gen[pick]
            values.append(
                frechet_distance(
                    a.mean(axis=0),
                    np.cov(a, rowvar=False),
                    np.average(b, axis=0, weights=w_b),
                    np.cov(b, rowvar=False, aweights=w_b),
                )
            )
        means.append(float(np.mean(values)))
    if len(sizes) < 2:
        return means[0], float("nan")
    params, cov = curve_fit(
        _linear, 1.0 / sizes, np.asarray(means), bounds=([0.0, 0.0], [np.inf, np.inf])
    )
    return float(params[0]), float(np.sqrt(np.diag(cov)[0]))


# ---------------------------------------------------------------------------- KPD
def _kernel_sum(
    a: np.ndarray,
    b: np.ndarray,
    degree: int,
    *,
    skip_diagonal: bool,
    wa: np.ndarray | None = None,
    wb: np.ndarray | None = None,
) -> float:
    """Sum of ``wa_i wb_j (a_i.b_j / d + 1)^degree`` over all pairs (without the diagonal
    when asked; weights default to 1)."""
    k = a @ b.T
    k /= a.shape[1]
    k += 1.0
    out = np.ones_like(k) if degree & 1 == 0 else k.copy()
    base, power = k, degree >> 1
    while power:  # exponentiation by squaring, in place (numpy's ** is slow for ints > 2)
        base *= base
        if power & 1:
            out *= base
        power >>= 1
    ones_a = np.ones(len(a)) if wa is None else wa
    ones_b = np.ones(len(b)) if wb is None else wb
    total = float(ones_a @ out @ ones_b)
    if skip_diagonal:
        total -= float(np.sum(np.diagonal(out) * ones_a * ones_b))
    return total


def mmd_poly_unbiased(
    x: np.ndarray, y: np.ndarray, degree: int = 4, *, y_weights: np.ndarray | None = None
) -> float:
    """Unbiased MMD^2 of samples ``x`` (m, d) and ``y`` (n, d) with the kernel
    ``(x.y / d + 1)^degree``; ``y_weights`` make the ``y`` terms weighted U-statistics
    (pair sums normalised by the sums of the pair weights)."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError("the unbiased MMD needs at least two points per sample")
    w = np.ones(n) if y_weights is None else np.asarray(y_weights, dtype=np.float64)
    pairs_yy = w.sum() ** 2 - np.sum(w * w)
    return (
        _kernel_sum(x, x, degree, skip_diagonal=True) / (m * (m - 1))
        + _kernel_sum(y, y, degree, skip_diagonal=True, wa=w, wb=w) / pairs_yy
        - 2.0 * _kernel_sum(x, y, degree, skip_diagonal=False, wb=w) / (m * w.sum())
    )


def kpd(
    reference: np.ndarray,
    generated: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    num_batches: int = 10,
    batch_size: int = 5000,
    degree: int = 4,
    normalise: str = "maxabs",
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel physics distance (median over batches) and its error (see the module doc).

    ``batch_size`` is capped at the smaller sample size; ``weights`` weight the generated
    rows (weighted U-statistics on uniformly drawn batches; drawing batches with
    probabilities proportional to the weights would repeat heavy showers and bias the
    unbiased estimator upwards).
    """
    ref, gen = _check_features(reference, generated)
    p_gen = _probabilities(weights, len(gen))
    ref, gen = normalise_features(ref, gen, normalise)
    size = min(int(batch_size), len(ref), len(gen))
    if size < 2 or num_batches < 1 or degree < 1:
        raise ConfigError("kpd needs batch_size >= 2, num_batches >= 1 and degree >= 1")
    values = []
    for index in range(num_batches):
        rng = np.random.default_rng([seed, index])
        a = ref[rng.integers(0, len(ref), size)]
        pick = rng.integers(0, len(gen), size)
        w_b = None if p_gen is None else p_gen[pick]
        values.append(mmd_poly_unbiased(a, gen[pick], degree, y_weights=w_b))
    return float(np.median(values)), float(iqr(values, rng=(16.275, 83.725)) / 2.0)


# ---------------------------------------------------------------------------- classifier
@dataclass
class ClassifierConfig:
    """Settings of the classifier test (defaults: the CaloChallenge's network, heplab's
    engine; see the module doc)."""

    hidden: tuple[int, ...] = (512, 512, 512)
    epochs: int = 50
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 5
    splits: tuple[float, float, float] = (0.6, 0.2, 0.2)
    progress: bool = False

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        self.splits = (float(self.splits[0]), float(self.splits[1]), float(self.splits[2]))
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"hidden layers must be positive sizes, not {self.hidden}")
        if min(self.splits) <= 0 or abs(sum(self.splits) - 1.0) > 1e-6:
            raise ConfigError(
                f"splits must be three positive fractions summing to 1, not {self.splits}"
            )
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1 or self.lr <= 0:
            raise ConfigError("epochs, batch_size, patience must be >= 1 and lr > 0")


@dataclass
class ClassifierResult:
    """Outcome of :func:`classifier_test` on its test split."""

    auc: float
    jsd: float
    bce: float
    n_train: int
    n_val: int
    n_test: int
    epochs_run: int
    best_epoch: int
    test_labels: np.ndarray = field(repr=False)
    test_scores: np.ndarray = field(repr=False)  # calibrated probabilities of "reference"
    test_weights: np.ndarray = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """The numbers (no arrays), for JSON."""
        d = asdict(self)
        for key in ("test_labels", "test_scores", "test_weights"):
            d.pop(key)
        return d


def _splits(
    n: int, fractions: tuple[float, float, float], rng: np.random.Generator
) -> list[np.ndarray]:
    order = rng.permutation(n)
    n_train = round(fractions[0] * n)
    n_val = round(fractions[1] * n)
    return [order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]]


def _dnn(n_in: int, hidden: tuple[int, ...]) -> Any:
    import torch
    from torch import nn

    class _DNN(nn.Module):
        input_names = ("x",)

        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            width = n_in
            for h in hidden:
                layers += [nn.Linear(width, h), nn.LeakyReLU()]
                width = h
            layers.append(nn.Linear(width, 1))
            self.layers = nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layers(x).squeeze(-1)

        def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            logits = self(batch["x"])
            loss = nn.functional.binary_cross_entropy_with_logits(
                logits.float(), batch["y"].float(), reduction="none"
            )
            w = batch["w"].float()
            return (loss * w).sum() / w.sum().clamp_min(1e-12)

    return _DNN()


def _balanced(labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weights rescaled so that both classes carry the same total (the reference's count)."""
    out = weights.astype(np.float64).copy()
    n_ref = float(np.count_nonzero(labels == 1))
    gen = labels == 0
    total = out[gen].sum()
    if total > 0:
        out[gen] *= n_ref / total
    return out


@dataclass
class TrainedClassifier:
    """A DNN trained generated (0) vs reference (1), with its input standardisation."""

    net: Any = field(repr=False)
    mean: np.ndarray = field(repr=False)
    std: np.ndarray = field(repr=False)
    epochs_run: int = 0
    best_epoch: int = -1

    def scaled(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float64) - self.mean) / self.std).astype(np.float32)

    def predict(self, x: np.ndarray, batch: int = 4096) -> np.ndarray:
        """Probability that each row of ``x`` is a reference shower (raw sigmoid)."""
        import torch

        self.net.eval()
        out = [np.zeros(0)]
        with torch.no_grad():
            for start in range(0, len(x), batch):
                chunk = torch.from_numpy(self.scaled(x[start : start + batch]))
                out.append(torch.sigmoid(self.net(chunk)).double().numpy())
        return np.concatenate(out)


def train_classifier(
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray, np.ndarray],
    config: ClassifierConfig | None = None,
    *,
    seed: int = 0,
) -> TrainedClassifier:
    """Train the DNN on ``(x, y, w)`` (labels 1 = reference) with early stopping on ``val``,
    inputs standardised with the training rows' mean and standard deviation."""
    import torch

    from heplab.ml.data import JetDataset
    from heplab.ml.engine import TrainConfig, fit

    cfg = config or ClassifierConfig()
    x_tr = np.asarray(train[0], dtype=np.float32)
    mean = x_tr.mean(axis=0, dtype=np.float64)
    std = x_tr.std(axis=0, dtype=np.float64)
    std = np.where(std > 1e-12, std, 1.0)
    torch.manual_seed(seed)
    model = TrainedClassifier(_dnn(x_tr.shape[1], cfg.hidden), mean, std)

    def dataset(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> JetDataset:
        return JetDataset(
            {
                "x": model.scaled(x),
                "y": np.asarray(y, np.float32),
                "w": np.asarray(w, np.float32),
            }
        )

    train_cfg = TrainConfig(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        patience=cfg.patience,
        seed=seed,
        progress_bar=cfg.progress,
        resume=False,
    )
    with tempfile.TemporaryDirectory(prefix="heplab-cls-") as tmp:
        result = fit(model.net, dataset(*train), dataset(*val), config=train_cfg, out_dir=tmp)
    model.net.eval()
    model.epochs_run, model.best_epoch = result.epochs_run, result.best_epoch
    return model


def classifier_test(
    generated: np.ndarray,
    reference: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    config: ClassifierConfig | None = None,
    seed: int = 0,
) -> ClassifierResult:
    """Train generated (label 0) vs reference (label 1) on ``generated`` and ``reference``
    input rows (see the module doc) and score AUC and JSD on the held-out test split.

    ``weights`` are per-row weights of ``generated`` (default 1).
    """
    from sklearn.isotonic import IsotonicRegression
    from sklearn.metrics import roc_auc_score

    cfg = config or ClassifierConfig()
    gen = np.asarray(generated, dtype=np.float32)
    ref = np.asarray(reference, dtype=np.float32)
    if gen.ndim != 2 or ref.ndim != 2 or gen.shape[1] != ref.shape[1]:
        raise DataError(
            f"classifier inputs must be (N, d) with the same d: {gen.shape}, {ref.shape}"
        )
    if not (np.isfinite(gen).all() and np.isfinite(ref).all()):
        raise DataError("classifier inputs contain NaN or infinite values")
    w_gen = np.ones(len(gen)) if weights is None else np.asarray(weights, dtype=np.float64)
    _probabilities(w_gen, len(gen))  # validates
    rng = np.random.default_rng(seed)
    parts_gen = _splits(len(gen), cfg.splits, rng)
    parts_ref = _splits(len(ref), cfg.splits, rng)
    if min(len(p) for p in parts_gen + parts_ref) < 10:
        raise DataError(
            f"too few showers for the classifier test ({len(gen)} generated, {len(ref)} reference)"
        )

    def split(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = np.concatenate([gen[parts_gen[k]], ref[parts_ref[k]]])
        y = np.concatenate([np.zeros(len(parts_gen[k])), np.ones(len(parts_ref[k]))])
        w = np.concatenate([w_gen[parts_gen[k]], np.ones(len(parts_ref[k]))])
        return x, y.astype(np.float32), _balanced(y, w)

    train, val, (x_te, y_te, w_te) = split(0), split(1), split(2)
    model = train_classifier(train, val, cfg, seed=seed)
    s_va, s_te = model.predict(val[0]), model.predict(x_te)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=_P_CLIP, y_max=1.0 - _P_CLIP)
    iso.fit(s_va, val[1], sample_weight=val[2])
    p_te = np.clip(iso.predict(s_te), _P_CLIP, 1.0 - _P_CLIP)
    auc = float(roc_auc_score(y_te, s_te, sample_weight=w_te))
    losses = -(y_te * np.log(p_te) + (1.0 - y_te) * np.log(1.0 - p_te))
    bce = float(np.sum(w_te * losses) / np.sum(w_te))
    return ClassifierResult(
        auc=auc,
        jsd=(math.log(2.0) - bce) / math.log(2.0),
        bce=bce,
        n_train=len(train[0]),
        n_val=len(val[0]),
        n_test=len(x_te),
        epochs_run=model.epochs_run,
        best_epoch=model.best_epoch,
        test_labels=y_te,
        test_scores=p_te,
        test_weights=w_te,
    )
