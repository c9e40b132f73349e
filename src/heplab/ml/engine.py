"""The one training engine of every heplab network (Lightning).

:func:`fit` trains any ``nn.Module`` whose ``forward`` takes the batch tensors named in
its ``input_names`` attribute (default ``("x", "mask")``) and returns logits: shape
``(batch,)`` for two classes (binary cross-entropy with logits) or ``(batch, C)`` for
``C > 2`` classes (cross-entropy). Batches are dicts of tensors with the target under
``"y"`` (e.g. :class:`heplab.ml.data.JetDataset`). A network with its own objective
(a generative model, a weighted edge classifier, a contrastive embedding) defines
``training_loss(batch) -> scalar tensor`` instead; the engine then minimises that, on the
training and the validation batches alike. Batches that are not padded particle lists
(graphs, showers) come with their own ``collate_fn``.

A network that needs several optimisers and its own update sequence (a GAN: ``n_critic``
critic steps per generator step) defines ``make_optimizers(config: TrainConfig) ->
list[Optimizer]`` and ``manual_training_step(batch, optimizers, backward) -> scalar
tensor``: the engine then switches Lightning to manual optimisation
(``automatic_optimization = False``), hands the network its optimisers (Lightning's
wrappers, so ``opt.step()`` / ``opt.zero_grad()`` work as usual) and Lightning's
``manual_backward`` as ``backward``, and logs the returned tensor as the training loss;
no learning-rate schedule is applied then. Validation still uses ``training_loss``.
Checkpoints, resume, early stopping and best weights work as for every other network.

What it does, all through Lightning:

- AdamW, a cosine (per step) or one-cycle learning-rate schedule;
- early stopping on the validation loss (``patience`` epochs);
- checkpoints in ``out_dir/checkpoints``: ``best.ckpt`` (lowest val loss) and
  ``last.ckpt``; a re-run of :func:`fit` with the same ``out_dir`` resumes from
  ``last.ckpt`` (Lightning's ``ckpt_path``; loaded with ``weights_only=True``). When
  training ends, the best weights are loaded back into the module (``torch.load(...,
  weights_only=True)``; nothing is ever unpickled) and saved as ``out_dir/best.pt``
  (the module's ``state_dict``);
- ``seed_everything(seed)`` and ``deterministic=True`` on CPU (on GPUs deterministic
  kernels need ``CUBLAS_WORKSPACE_CONFIG``, so it is left off there);
- ``bf16-mixed`` precision when CUDA is available, else ``32-true``;
  ``accelerator="auto"``, ``devices="auto"`` (several GPUs: Lightning's DDP strategy);
- Lightning's progress bar (``progress_bar``), no logger and no files outside ``out_dir``;
  Lightning's info messages are lowered to WARNING and its "few dataloader workers" hint
  is silenced (``num_workers=0`` is deliberate: the tensors are in memory), as is the
  ``LeafSpec`` FutureWarning of Lightning 2.6's pytree helper on recent torch.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from heplab.errors import ConfigError
from heplab.ml.data import trim_collate

__all__ = ["FitResult", "TrainConfig", "fit", "make_loader"]


@dataclass
class TrainConfig:
    """Settings of :func:`fit` (epochs, batch size, optimiser, schedule, stopping)."""

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    schedule: str = "cosine"  # "cosine", "onecycle" or "none"
    patience: int = 5
    num_classes: int = 2
    seed: int = 0
    progress_bar: bool = True
    resume: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ConfigError("epochs, batch_size and patience must be >= 1")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError(
                f"lr must be > 0 and weight_decay >= 0 ({self.lr}, {self.weight_decay})"
            )
        if self.schedule not in ("cosine", "onecycle", "none"):
            raise ConfigError(f"schedule must be cosine, onecycle or none, not {self.schedule!r}")
        if self.num_classes < 2:
            raise ConfigError(f"num_classes must be >= 2, not {self.num_classes}")


@dataclass
class FitResult:
    """What :func:`fit` did: best val loss, its epoch, epochs run, per-epoch val losses."""

    best_val_loss: float
    best_epoch: int
    epochs_run: int
    val_losses: list[float] = field(default_factory=list)
    weights: Path | None = None


def _inputs(net: nn.Module, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    names = getattr(net, "input_names", ("x", "mask"))
    return [batch[n] for n in names]


def loss_fn(logits: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """BCE with logits (two classes) or cross-entropy (more)."""
    if num_classes == 2:
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), y.float())
    return nn.functional.cross_entropy(logits.float(), y.long())


class _Module(L.LightningModule):
    def __init__(self, net: nn.Module, config: TrainConfig) -> None:
        super().__init__()
        self.net = net
        self.cfg = config
        self._manual = callable(getattr(net, "manual_training_step", None))
        self.automatic_optimization = not self._manual

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(*_inputs(self.net, batch))

    def _step(self, batch: dict[str, torch.Tensor], name: str) -> torch.Tensor:
        own = getattr(self.net, "training_loss", None)
        if callable(own):
            loss = own(batch)
        else:
            loss = loss_fn(self(batch), batch["y"], self.cfg.num_classes)
        size = len(batch["y"]) if "y" in batch else len(next(iter(batch.values())))
        self.log(name, loss, on_step=False, on_epoch=True, batch_size=size)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self._manual:
            opts = self.optimizers()
            opt_list = list(opts) if isinstance(opts, list | tuple) else [opts]
            net: Any = self.net  # its hooks are plain methods, not submodules
            loss: torch.Tensor = net.manual_training_step(batch, opt_list, self.manual_backward)
            size = len(next(iter(batch.values())))
            self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=size)
            return loss
        return self._step(batch, "train_loss")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val_loss")

    def configure_optimizers(self) -> Any:
        c = self.cfg
        if self._manual:
            net: Any = self.net
            return net.make_optimizers(c)
        opt = torch.optim.AdamW(self.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        steps = max(int(self.trainer.estimated_stepping_batches), 1)
        if c.schedule == "none":
            return opt
        sched: torch.optim.lr_scheduler.LRScheduler
        if c.schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        else:
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=c.lr, total_steps=steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class _History(L.Callback):
    def __init__(self) -> None:
        self.val_losses: list[float] = []

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get("val_loss")
        if value is not None:
            self.val_losses.append(float(value))

    def state_dict(self) -> dict[str, Any]:
        return {"val_losses": list(self.val_losses)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.val_losses = [float(v) for v in state_dict.get("val_losses", [])]


@contextmanager
def _quiet() -> Iterator[None]:
    """Lightning's info messages -> WARNING; its "few workers" hint silenced (narrowly)."""
    loggers = [logging.getLogger(n) for n in ("lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=r".*Consider setting `persistent_workers.*")
            # a re-run resumes from the checkpoints already there, by design
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* is not empty")
            # lightning 2.6's pytree helper on torch >= 2.10 (upstream; harmless)
            warnings.filterwarnings(
                "ignore", message=r".*LeafSpec.*is deprecated.*", category=FutureWarning
            )
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def make_loader(
    data: Dataset[Any],
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    collate_fn: Callable[[Any], Any] | None = None,
) -> DataLoader[Any]:
    """A DataLoader of batches trimmed to their longest jet (:func:`trim_collate`).

    ``collate_fn`` replaces :func:`trim_collate` for batches of other shapes.
    """
    gen = torch.Generator()
    gen.manual_seed(seed)
    return DataLoader(
        data,
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=collate_fn or trim_collate,  # type: ignore[arg-type]
        num_workers=0,
        generator=gen if shuffle else None,
    )


def fit(
    module: nn.Module,
    train_data: Dataset[Any],
    val_data: Dataset[Any],
    *,
    config: TrainConfig | None = None,
    out_dir: str | os.PathLike[str],
    collate_fn: Callable[[Any], Any] | None = None,
) -> FitResult:
    """Train ``module`` (in place) and leave its best weights in it; see the module doc.

    ``collate_fn`` builds batches of datasets that are not padded particle lists.
    """
    cfg = config or TrainConfig()
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    cuda = torch.cuda.is_available()
    with _quiet():
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        lit = _Module(module, cfg)
        history = _History()
        best_cb = L.pytorch.callbacks.ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="best",
            monitor="val_loss",
            mode="min",
            save_top_k=1,
            save_last=True,
            enable_version_counter=False,
        )
        stop_cb = L.pytorch.callbacks.EarlyStopping(
            monitor="val_loss", mode="min", patience=cfg.patience
        )
        trainer = L.Trainer(
            default_root_dir=out,
            max_epochs=cfg.epochs,
            accelerator="auto",
            devices="auto",
            precision="bf16-mixed" if cuda else "32-true",
            deterministic=not cuda,
            logger=False,
            callbacks=[best_cb, stop_cb, history],
            enable_progress_bar=cfg.progress_bar,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        last = ckpt_dir / "last.ckpt"
        trainer.fit(
            lit,
            train_dataloaders=make_loader(
                train_data, cfg.batch_size, shuffle=True, seed=cfg.seed, collate_fn=collate_fn
            ),
            val_dataloaders=make_loader(
                val_data, cfg.batch_size, shuffle=False, collate_fn=collate_fn
            ),
            ckpt_path=last if cfg.resume and last.is_file() else None,
            weights_only=True,
        )
    best_path = best_cb.best_model_path
    if best_path:
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict({k.removeprefix("net."): v for k, v in state.items()})
    module.cpu()
    weights = out / "best.pt"
    if trainer.is_global_zero:
        torch.save(module.state_dict(), weights)
    losses = history.val_losses
    best_epoch = int(min(range(len(losses)), key=losses.__getitem__)) if losses else -1
    return FitResult(
        best_val_loss=min(losses) if losses else float("nan"),
        best_epoch=best_epoch,
        epochs_run=len(losses),
        val_losses=losses,
        weights=weights,
    )
