"""The recurrent jet tagger ``rnn``: an LSTM / GRU over the jet's particle sequence.

The ATLAS RNNIP family (ATL-PHYS-PUB-2017-003; the predecessor of the DIPS deep-sets
tagger, ATL-PHYS-PUB-2020-014): the jet is read as an ordered sequence of its constituents
by a recurrent cell (``cell: lstm`` (Hochreiter, Schmidhuber 1997) or ``gru`` (Cho et al.,
arXiv:1406.1078); ``hidden`` units, ``layers`` stacked layers, ``bidirectional``), and the
final hidden state of the last layer (both directions' when bidirectional) goes through a
dense head (``fc`` sizes) to one logit. The LSTM's forget-gate biases start at 1
(Jozefowicz, Zaremba, Sutskever 2015; Keras' default, in which RNNIP was written), so that
the cell remembers the first particles from the start: with 0 it needs several more epochs.

Ordering (``order``):

``pt`` (default)
    hardest first, as :func:`heplab.ml.data.jet_arrays` gives them; the inputs are its 13
    standardised particle features ``x``.
``d0sig``
    descending transverse impact-parameter significance ``|d0| / sigma_d0`` (RNNIP's
    ordering: the most displaced tracks, the ones a b-hadron decay leaves, are read first;
    particles without a positive ``part_d0err`` -- neutrals -- have significance 0 and come
    last, ties keep the pT order). It needs the JetClass impact-parameter columns
    ``part_d0val, part_d0err, part_dzval, part_dzerr`` (values [mm] and their
    uncertainties) and adds four features to ``x`` (columns 13-16, standardised with the
    rest): ``psi(d0 / 1 um)``, ``psi(d0 / sigma_d0)``, ``psi(dz / 1 um)``,
    ``psi(dz / sigma_dz)`` with the signed log ``psi(u) = sgn(u) ln(1 + |u|)`` (significance
    0 where the uncertainty is not positive). With more than ``max_particles`` constituents
    the ``max_particles`` most significant ones are kept: RNNIP reads 15 tracks
    (``max_particles: 15``), which also spares a one-directional cell from carrying the
    decisive first steps through a long tail of prompt tracks (on the tests' b-like jets it
    learns in 2 epochs with 15, in ~8 with all 20-60). Jets without those columns raise
    :class:`~heplab.errors.DataError` naming them.

Padding is never read: the batch goes through the cell as a packed sequence
(``nn.utils.rnn.pack_padded_sequence`` with the lengths of ``mask``; real particles always
precede the padding), so a jet's score does not depend on the jets it is batched with. A
jet without constituents is read as one all-zero step. Training, scoring and persistence
are those of :class:`~heplab.reconstruction.jets.taggers.neural.NeuralTagger`; ``n_params``
with the defaults: 24,449. The network class ``RNN`` imports from this module as usual;
it is defined on first access, so that loading the tagger registry needs no torch.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, ClassVar, Final

import awkward as ak
import numpy as np

from heplab.errors import ConfigError, DataError
from heplab.reconstruction.jets.taggers import register_tagger
from heplab.reconstruction.jets.taggers.neural import TRAIN_DEFAULTS, NeuralTagger

if TYPE_CHECKING:
    from torch import nn

__all__ = ["IP_COLUMNS", "IP_FEATURES", "RNNTagger", "sequence_arrays"]

#: The JetClass impact-parameter columns that ``order: d0sig`` needs ([mm]).
IP_COLUMNS: Final = ("part_d0val", "part_d0err", "part_dzval", "part_dzerr")
#: The features ``order: d0sig`` appends to ``x`` (columns 13-16), in column order.
IP_FEATURES: Final = ("ip_d0", "ip_d0sig", "ip_dz", "ip_dzsig")
_UM_PER_MM: Final = 1000.0


def _psi(u: np.ndarray) -> np.ndarray:
    return np.sign(u) * np.log1p(np.abs(u))


def _significance(value: np.ndarray, error: np.ndarray) -> np.ndarray:
    ok = error > 0
    return np.where(ok, value / np.where(ok, error, 1.0), 0.0)


def sequence_arrays(
    jets: ak.Array, *, order: str = "pt", max_particles: int = 128
) -> dict[str, np.ndarray]:
    """The padded arrays of :func:`heplab.ml.data.jet_arrays`, in the sequence ``order``.

    ``order="pt"``: exactly :func:`~heplab.ml.data.jet_arrays` (hardest first).
    ``order="d0sig"``: every per-particle array (``x, v, coords, mask``) reordered by
    descending ``|d0| / sigma_d0`` (padding stays at the end), the ``max_particles`` most
    significant particles kept and the four :data:`IP_FEATURES` appended to ``x`` (module
    doc); :class:`DataError` naming the missing :data:`IP_COLUMNS`.
    """
    from heplab.ml.data import jet_arrays

    if order == "pt":
        return jet_arrays(jets, max_particles=max_particles)
    if order != "d0sig":
        raise ConfigError(f"unknown particle order {order!r}; choose pt or d0sig")
    fields = ak.fields(jets)
    missing = [c for c in IP_COLUMNS if c not in fields]
    if missing:
        raise DataError(
            f"order 'd0sig' needs the impact-parameter column(s) {', '.join(missing)} "
            f"(JetClass's {', '.join(IP_COLUMNS)}); use order 'pt' for jets without them"
        )
    n = int(max_particles)
    # every constituent first (the clipping happens after the significance ordering) ...
    counts = np.asarray(ak.to_numpy(ak.num(jets["part_px"], axis=1)))
    n_all = max(int(counts.max(initial=0)), n, 1)
    arrays = jet_arrays(jets, max_particles=n_all)
    # ... with the IP columns padded in jet_arrays' own pT order, aligned with its mask
    pt_order = ak.argsort(np.hypot(jets["part_px"], jets["part_py"]), axis=1, ascending=False)
    ip = {}
    for c in IP_COLUMNS:
        col = ak.fill_none(ak.pad_none(jets[c][pt_order], n_all, axis=1, clip=True), 0.0)
        ip[c] = np.nan_to_num(np.asarray(ak.to_numpy(col), dtype=np.float64))
    d0sig = _significance(ip["part_d0val"], ip["part_d0err"])
    dzsig = _significance(ip["part_dzval"], ip["part_dzerr"])
    mask = arrays["mask"]
    key = np.where(mask, -np.abs(d0sig), np.inf)  # padding last
    perm = np.argsort(key, axis=1, kind="stable")[:, :n]
    extra = np.stack(
        [
            _psi(ip["part_d0val"] * _UM_PER_MM),
            _psi(d0sig),
            _psi(ip["part_dzval"] * _UM_PER_MM),
            _psi(dzsig),
        ],
        axis=-1,
    )
    extra[~mask] = 0.0
    out = dict(arrays)
    out["x"] = np.concatenate([arrays["x"], extra.astype(np.float32)], axis=-1)
    for k in ("x", "v", "coords", "mask"):
        a = out[k]
        idx = perm if a.ndim == 2 else perm[..., None]
        out[k] = np.take_along_axis(a, idx, axis=1)
    return out


@functools.cache
def _networks() -> dict[str, type[nn.Module]]:
    """The network classes (defined on first use, so that the registry needs no torch)."""
    import torch
    from torch import nn

    from heplab.reconstruction.jets.taggers.nets import mlp

    class RNN(nn.Module):
        """LSTM / GRU over the packed particle sequence + dense head (module doc).

        Parameters
        ----------
        n_in
            Particle features per step.
        cell
            ``"lstm"`` or ``"gru"``.
        hidden, layers, bidirectional
            Size, depth and directions of the recurrent cell.
        fc
            Hidden sizes of the dense head on the final state.
        dropout
            Dropout of the head (and between stacked recurrent layers).
        n_out
            Logits per jet (1: binary).
        """

        input_names: ClassVar[tuple[str, ...]] = ("x", "mask")

        def __init__(
            self,
            n_in: int,
            cell: str = "lstm",
            hidden: int = 64,
            layers: int = 1,
            bidirectional: bool = False,
            fc: tuple[int, ...] | list[int] = (64,),
            dropout: float = 0.1,
            n_out: int = 1,
        ) -> None:
            super().__init__()
            kind = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
            self.directions = 2 if bidirectional else 1
            self.rnn = kind(
                n_in,
                hidden,
                num_layers=layers,
                batch_first=True,
                bidirectional=bidirectional,
                dropout=dropout if layers > 1 else 0.0,
            )
            if cell == "lstm":  # forget-gate bias 1 (Keras' unit_forget_bias, as in RNNIP)
                with torch.no_grad():
                    for name, p in self.rnn.named_parameters():
                        if name.startswith("bias_ih"):
                            p[hidden : 2 * hidden].fill_(1.0)
                        elif name.startswith("bias_hh"):
                            p[hidden : 2 * hidden].fill_(0.0)
            sizes = [hidden * self.directions, *fc]
            self.head = nn.Sequential(mlp(sizes, dropout=dropout), nn.Linear(sizes[-1], n_out))

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            lengths = mask.sum(dim=1).clamp_min(1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(
                x, lengths, batch_first=True, enforce_sorted=False
            )
            _, state = self.rnn(packed)
            h_n = state[0] if isinstance(state, tuple) else state  # (layers*dirs, B, H)
            last = h_n[-self.directions :].transpose(0, 1).reshape(x.shape[0], -1)
            logits = self.head(last)
            return logits.squeeze(-1) if logits.shape[-1] == 1 else logits

    return {"RNN": RNN}


def __getattr__(name: str) -> Any:
    if name == "RNN":
        return _networks()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@register_tagger("rnn")
class RNNTagger(NeuralTagger):
    """Recurrent tagger: ``cell`` (lstm | gru), ``hidden``, ``layers``, ``bidirectional``,
    ``order`` (pt | d0sig) and the head sizes ``fc`` (module doc)."""

    defaults: ClassVar[dict[str, Any]] = {
        **TRAIN_DEFAULTS,
        "cell": "lstm",
        "hidden": 64,
        "layers": 1,
        "bidirectional": False,
        "order": "pt",
        "fc": [64],
    }

    def validate(self) -> None:
        super().validate()
        c = self.config
        if c["cell"] not in ("lstm", "gru"):
            raise ConfigError(f"rnn: cell must be lstm or gru, not {c['cell']!r}")
        if c["order"] not in ("pt", "d0sig"):
            raise ConfigError(f"rnn: order must be pt or d0sig, not {c['order']!r}")
        if c["hidden"] < 1 or c["layers"] < 1:
            raise ConfigError("rnn: hidden and layers must be >= 1")
        if any(s < 1 for s in c["fc"]):
            raise ConfigError(f"rnn: fc sizes must be >= 1, not {c['fc']!r}")

    def _arrays(self, jets: ak.Array) -> dict[str, np.ndarray]:
        c = self.config
        return sequence_arrays(jets, order=str(c["order"]), max_particles=int(c["max_particles"]))

    def build(self, n_x: int, n_hl: int) -> nn.Module:
        c = self.config
        return _networks()["RNN"](
            n_x,
            str(c["cell"]),
            int(c["hidden"]),
            int(c["layers"]),
            bool(c["bidirectional"]),
            list(c["fc"]),
            dropout=float(c["dropout"]),
        )
