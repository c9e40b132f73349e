"""Convolutional jet taggers: jet-image CNNs and the 1-D particle CNN.

Registered names (all :class:`~heplab.reconstruction.jets.taggers.neural.NeuralTagger`\\ s,
trained and saved like the other neural taggers):

``cnn``
    A small DeepTop-like CNN (Kasieczka, Plehn, Russell, Schell, arXiv:1701.08784;
    Macaluso, Shih, arXiv:1803.00107): conv-pool blocks (``conv``: the channels of the
    ``kernel x kernel`` convolutions of each block, each Conv-GroupNorm-ReLU, then a 2 x 2
    max-pool) and a dense head (``fc``) on the flattened feature map. Default: 21,737
    parameters on one 40 x 40 channel.
``resnext``
    A ResNeXt-style CNN (Xie et al., arXiv:1611.05431; the ResNeXt of the top-tagging
    landscape, arXiv:1902.09914): a 3 x 3 stem (``stem`` channels) and a 2 x 2 max-pool,
    then one stage per entry of ``widths`` with ``blocks`` bottleneck residual blocks each
    (1 x 1 reduce, 3 x 3 *grouped* convolution with ``cardinality`` groups of
    ``group_width`` channels, doubled at every stage as in the paper, 1 x 1 expand;
    GroupNorm after each; identity or projection shortcut; the last GroupNorm of a block
    starts at zero scale, so that the block starts as the identity); stages after the
    first halve the resolution; global average pooling and a head (``fc``). Default:
    75,121 parameters.
``pcnn``
    A 1-D CNN over the pT-ordered constituents (DeepAK8's particle CNN, CMS-DP-2017-049,
    CMS arXiv:2004.08262): residual blocks of two ``kernel``-wide 1-D convolutions
    (``channels``: the width of each block; projection shortcut where it changes) on the
    standardised particle features ``x`` of :func:`heplab.ml.data.jet_arrays`, masked
    global average pooling over the real constituents, dense head (``fc``). No
    normalisation layers: their statistics would see the padding. Every convolution's input
    is zero on the padding, so a jet's score does not depend on how much padding its batch
    carries. Default: 42,145 parameters (13 input features).

The image taggers read jet images of :func:`heplab.ml.images.jet_images` (see there for
the preprocessing and the channel names), set by the keys ``npix`` (40), ``half_width``
(1.0), ``channels`` (``["pt"]``; e.g. ``["pt", "charged_pt", "neutral_pt",
"charged_n"]`` for the colour images of Komiske, Metodiev, Schwartz, arXiv:1612.01551),
``centre`` (``"centroid"``, ``"hardest"`` or ``"none"``), ``rotate``, ``flip`` and
``normalise`` (True); the hardest ``max_particles`` constituents of each jet enter the image.
The images are the networks' only input (``input_names = ("img",)``, added by
:meth:`ImageTagger._arrays` to the arrays of ``jet_arrays``, whose particle arrays are then
kept to one constituent: unused). They need no standardisation beyond the normalisation:
the :class:`~heplab.ml.data.Standardiser` leaves them as they are, and every (bias-free)
convolution of the image networks is followed by a GroupNorm (:data:`_NORM_GROUPS` groups),
which makes them blind to the overall scale. GroupNorm rather than BatchNorm: it keeps no
running statistics, so a jet's score does not depend on its batch and training and
evaluation behave alike; BatchNorm's running averages lag far behind the weights in short
trainings (a few hundred steps), which spoiled the validation loss that early stopping
watches.

The networks (``JetCNN``, ``ResNeXt``, ``ParticleCNN``, attributes of this module) are
defined on first use: PyTorch is imported then, not when the tagger registry loads.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar, Final

import awkward as ak
import numpy as np

from heplab.errors import ConfigError
from heplab.ml.images import check_image_settings, jet_images
from heplab.reconstruction.jets.taggers import register_tagger
from heplab.reconstruction.jets.taggers.neural import TRAIN_DEFAULTS, NeuralTagger

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "IMAGE_DEFAULTS",
    "CNNTagger",
    "ImageTagger",
    "PCNNTagger",
    "ResNeXtTagger",
]

#: Image settings of the image taggers (YAML keys; :func:`heplab.ml.images.jet_images`).
IMAGE_DEFAULTS: Final[dict[str, Any]] = {
    "npix": 40,
    "half_width": 1.0,
    "channels": ["pt"],
    "centre": "centroid",
    "rotate": True,
    "flip": True,
    "normalise": True,
}
_NETWORKS: Final = ("JetCNN", "ResNeXt", "ParticleCNN")
#: Groups of the GroupNorm after every image convolution (their greatest common divisor
#: with the channels when these are not a multiple).
_NORM_GROUPS: Final = 4


@functools.cache
def _networks() -> SimpleNamespace:
    """The network classes, defined on first use so that importing the registry does not
    import PyTorch."""
    import torch
    from torch import nn

    from heplab.reconstruction.jets.taggers.nets import mlp

    def head(n_in: int, hidden: Sequence[int], n_out: int, dropout: float) -> nn.Sequential:
        sizes = [n_in, *hidden]
        return nn.Sequential(mlp(sizes, dropout=dropout), nn.Linear(sizes[-1], n_out))

    def out(logits: torch.Tensor) -> torch.Tensor:
        return logits.squeeze(-1) if logits.shape[-1] == 1 else logits

    def conv_norm(
        c_in: int, c_out: int, kernel: int, *, stride: int = 1, groups: int = 1
    ) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.GroupNorm(math.gcd(c_out, _NORM_GROUPS), c_out),
        )

    class JetCNN(nn.Module):
        """Conv-pool blocks + dense head on jet images ``(batch, C, npix, npix)``."""

        input_names: ClassVar[tuple[str, ...]] = ("img",)

        def __init__(
            self,
            n_channels: int,
            npix: int,
            conv: Sequence[Sequence[int]] = ((8, 8), (16, 16), (16, 16)),
            fc: Sequence[int] = (32,),
            *,
            kernel: int = 3,
            dropout: float = 0.1,
            n_out: int = 1,
        ) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            c_in = n_channels
            for block in conv:
                for c_out in block:
                    layers += [conv_norm(c_in, c_out, kernel), nn.ReLU()]
                    c_in = c_out
                layers.append(nn.MaxPool2d(2))
            side = npix // 2 ** len(conv)
            self.features = nn.Sequential(*layers)
            self.head = head(c_in * side * side, fc, n_out, dropout)

        def forward(self, img: torch.Tensor) -> torch.Tensor:
            return out(self.head(self.features(img).flatten(1)))

    class Bottleneck(nn.Module):
        """ResNeXt block: 1x1 reduce, grouped 3x3, 1x1 expand, plus the shortcut."""

        def __init__(self, c_in: int, c_out: int, mid: int, groups: int, stride: int) -> None:
            super().__init__()
            expand = conv_norm(mid, c_out, 1)
            norm = expand[1]
            assert isinstance(norm, nn.GroupNorm)
            nn.init.zeros_(norm.weight)  # each block starts as the identity
            self.body = nn.Sequential(
                conv_norm(c_in, mid, 1),
                nn.ReLU(),
                conv_norm(mid, mid, 3, stride=stride, groups=groups),
                nn.ReLU(),
                expand,
            )
            self.shortcut = (
                nn.Identity()
                if c_in == c_out and stride == 1
                else conv_norm(c_in, c_out, 1, stride=stride)
            )

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.body(h) + self.shortcut(h))

    class ResNeXt(nn.Module):
        """Stem + stages of ResNeXt bottleneck blocks + global average pooling + head."""

        input_names: ClassVar[tuple[str, ...]] = ("img",)

        def __init__(
            self,
            n_channels: int,
            stem: int = 16,
            widths: Sequence[int] = (32, 64, 128),
            blocks: int = 2,
            cardinality: int = 4,
            group_width: int = 4,
            fc: Sequence[int] = (),
            *,
            dropout: float = 0.1,
            n_out: int = 1,
        ) -> None:
            super().__init__()
            layers: list[nn.Module] = [conv_norm(n_channels, stem, 3), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = stem
            for s, width in enumerate(widths):
                mid = cardinality * group_width * 2**s
                for b in range(blocks):
                    stride = 2 if s > 0 and b == 0 else 1
                    layers.append(Bottleneck(c_in, width, mid, cardinality, stride))
                    c_in = width
            self.features = nn.Sequential(*layers)
            self.head = head(c_in, fc, n_out, dropout)

        def forward(self, img: torch.Tensor) -> torch.Tensor:
            return out(self.head(self.features(img).mean(dim=(2, 3))))

    class ResBlock1d(nn.Module):
        """Two masked 1-D convolutions along the particle sequence, plus the shortcut."""

        def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2)
            self.conv2 = nn.Conv1d(c_out, c_out, kernel, padding=kernel // 2)
            self.shortcut = nn.Identity() if c_in == c_out else nn.Conv1d(c_in, c_out, 1)

        def forward(self, h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
            # ``h`` is zero on the padding (``m`` = 0) on entry and on exit
            a = torch.relu(self.conv1(h)) * m
            return torch.relu(self.conv2(a) + self.shortcut(h)) * m

    class ParticleCNN(nn.Module):
        """Residual 1-D CNN on the pT-ordered constituents + masked average pooling."""

        input_names: ClassVar[tuple[str, ...]] = ("x", "mask")

        def __init__(
            self,
            n_in: int,
            channels: Sequence[int] = (32, 32, 32, 64),
            fc: Sequence[int] = (64,),
            *,
            kernel: int = 3,
            dropout: float = 0.1,
            n_out: int = 1,
        ) -> None:
            super().__init__()
            blocks = []
            c_in = n_in
            for c_out in channels:
                blocks.append(ResBlock1d(c_in, c_out, kernel))
                c_in = c_out
            self.blocks = nn.ModuleList(blocks)
            self.head = head(c_in, fc, n_out, dropout)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            m = mask.unsqueeze(1).to(x.dtype)  # (B, 1, P)
            h = x.transpose(1, 2) * m  # (B, features, P)
            for block in self.blocks:
                h = block(h, m)
            pooled = h.sum(dim=2) / m.sum(dim=2).clamp_min(1)
            return out(self.head(pooled))

    for cls in (JetCNN, ResNeXt, ParticleCNN):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
    return SimpleNamespace(JetCNN=JetCNN, ResNeXt=ResNeXt, ParticleCNN=ParticleCNN)


def __getattr__(name: str) -> Any:
    """The network classes (:data:`_NETWORKS`), made on first access."""
    if name in _NETWORKS:
        return getattr(_networks(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _sizes(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


class ImageTagger(NeuralTagger):
    """A network on jet images (the image keys of :data:`IMAGE_DEFAULTS`)."""

    defaults: ClassVar[dict[str, Any]] = {**TRAIN_DEFAULTS, **IMAGE_DEFAULTS}
    name_lists: ClassVar[frozenset[str]] = frozenset({"features", "channels"})

    def validate(self) -> None:
        c = self.config
        check_image_settings(c["npix"], c["half_width"], c["channels"], c["centre"], who=self.name)
        super().validate()

    @property
    def n_channels(self) -> int:
        """Channels of the images (``len(channels)``)."""
        return len(self.config["channels"])

    def images(self, jets: ak.Array) -> np.ndarray:
        """The tagger's jet images ``(n, C, npix, npix)`` of ``jets`` (float32)."""
        c = self.config
        return jet_images(
            jets,
            npix=int(c["npix"]),
            half_width=float(c["half_width"]),
            channels=list(c["channels"]),
            centre=str(c["centre"]),
            rotate=bool(c["rotate"]),
            flip=bool(c["flip"]),
            normalise=bool(c["normalise"]),
            max_particles=int(c["max_particles"]),
        )

    def _arrays(self, jets: ak.Array) -> dict[str, np.ndarray]:
        from heplab.ml.data import jet_arrays

        # the particle arrays are unused by the image networks: one constituent suffices
        arrays = jet_arrays(jets, max_particles=1)
        arrays["img"] = self.images(jets)
        return arrays


@register_tagger("cnn")
class CNNTagger(ImageTagger):
    """DeepTop-like CNN: ``conv`` (channels per conv-pool block), ``kernel``, ``fc``."""

    defaults: ClassVar[dict[str, Any]] = {
        **ImageTagger.defaults,
        "conv": [[8, 8], [16, 16], [16, 16]],
        "kernel": 3,
        "fc": [32],
    }

    def validate(self) -> None:
        super().validate()
        c = self.config
        conv = c["conv"]
        if not conv or not all(isinstance(b, list) and b and all(map(_sizes, b)) for b in conv):
            raise ConfigError("cnn: conv must be a list of non-empty lists of channel counts")
        if c["npix"] >> len(conv) < 1:
            raise ConfigError(
                f"cnn: {len(conv)} conv-pool blocks halve {c['npix']} pixels below one; "
                "use fewer blocks or more pixels"
            )
        if c["kernel"] < 1 or c["kernel"] % 2 == 0:
            raise ConfigError(f"cnn: kernel must be an odd size >= 1, not {c['kernel']}")
        if not all(map(_sizes, c["fc"])):
            raise ConfigError(f"cnn: fc must be a list of layer sizes, not {c['fc']!r}")

    def build(self, n_x: int, n_hl: int) -> nn.Module:
        c = self.config
        net: nn.Module = _networks().JetCNN(
            self.n_channels,
            int(c["npix"]),
            c["conv"],
            c["fc"],
            kernel=int(c["kernel"]),
            dropout=float(c["dropout"]),
        )
        return net


@register_tagger("resnext")
class ResNeXtTagger(ImageTagger):
    """ResNeXt CNN: ``stem``, ``widths`` (per stage), ``blocks`` per stage,
    ``cardinality``, ``group_width``, ``fc``."""

    defaults: ClassVar[dict[str, Any]] = {
        **ImageTagger.defaults,
        "stem": 16,
        "widths": [32, 64, 128],
        "blocks": 2,
        "cardinality": 4,
        "group_width": 4,
        "fc": [],
    }

    def validate(self) -> None:
        super().validate()
        c = self.config
        for key in ("stem", "blocks", "cardinality", "group_width"):
            if not _sizes(c[key]):
                raise ConfigError(f"resnext: {key} must be >= 1, not {c[key]}")
        if not c["widths"] or not all(map(_sizes, c["widths"])):
            raise ConfigError(
                f"resnext: widths must be a non-empty list of sizes, not {c['widths']!r}"
            )
        if not all(map(_sizes, c["fc"])):
            raise ConfigError(f"resnext: fc must be a list of layer sizes, not {c['fc']!r}")

    def build(self, n_x: int, n_hl: int) -> nn.Module:
        c = self.config
        net: nn.Module = _networks().ResNeXt(
            self.n_channels,
            int(c["stem"]),
            c["widths"],
            int(c["blocks"]),
            int(c["cardinality"]),
            int(c["group_width"]),
            c["fc"],
            dropout=float(c["dropout"]),
        )
        return net


@register_tagger("pcnn")
class PCNNTagger(NeuralTagger):
    """1-D particle CNN: ``channels`` (width of each residual block), ``kernel``, ``fc``."""

    defaults: ClassVar[dict[str, Any]] = {
        **TRAIN_DEFAULTS,
        "channels": [32, 32, 32, 64],
        "kernel": 3,
        "fc": [64],
    }

    def validate(self) -> None:
        super().validate()
        c = self.config
        if not c["channels"] or not all(map(_sizes, c["channels"])):
            raise ConfigError(
                f"pcnn: channels must be a non-empty list of sizes, not {c['channels']!r}"
            )
        if c["kernel"] < 1 or c["kernel"] % 2 == 0:
            raise ConfigError(f"pcnn: kernel must be an odd size >= 1, not {c['kernel']}")
        if not all(map(_sizes, c["fc"])):
            raise ConfigError(f"pcnn: fc must be a list of layer sizes, not {c['fc']!r}")

    def build(self, n_x: int, n_hl: int) -> nn.Module:
        c = self.config
        net: nn.Module = _networks().ParticleCNN(
            n_x, c["channels"], c["fc"], kernel=int(c["kernel"]), dropout=float(c["dropout"])
        )
        return net
