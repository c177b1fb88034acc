"""A tiny objective and dataset for testing the shared loop without any model family."""

from __future__ import annotations

import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from videosynth.train.ema import EMA

from videosynth.train.context import Context

from videosynth.train.objective import Objective, adam

from videosynth.train.config import RunConfig, TrainConfig

from videosynth.checkpoint import unwrap
from videosynth.data.base import ClipDataset


class TinyClips(ClipDataset):
    """Deterministic random clips float [3, 2, 4, 4] in [-1, 1]; a per-epoch jitter checks set_epoch."""

    def __init__(self, n: int = 24):
        g = torch.Generator().manual_seed(0)
        self.videos = torch.rand(n, 3, 2, 4, 4, generator=g) * 2 - 1
        self.epoch = 0
        self.class_names = ["a", "b"]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self):
        return len(self.videos)

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(1000 * self.epoch + i)
        noise = 0.01 * torch.randn(self.videos[i].shape, generator=g)
        return {"video": self.videos[i] + noise, "label": torch.tensor(i % 2), "caption": ""}


@dataclass
class TinyRunConfig(RunConfig):
    family: str = "tiny"
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=6, batch_size=4, log_every=1, ckpt_every=3, sample_every=0, keep_last=2, device="cpu"))
    nan_steps: list[int] = field(default_factory=list)  # steps whose loss is made NaN
    fused: bool = True  # the fused Adam of the families (the NaN guard without a sync); False: torch's default


class TinyObjective(Objective):
    """A linear autoencoder with dropout (uses the global RNG) and an EMA copy."""

    def __init__(self, cfg: TinyRunConfig, ctx: Context):
        super().__init__(cfg, ctx)
        torch.manual_seed(123)  # identical init on every rank and every run
        net = nn.Sequential(nn.Flatten(), nn.Linear(96, 16), nn.Dropout(0.2), nn.Linear(16, 96))
        self.net = ctx.wrap(net)
        if cfg.fused:
            self.opt = adam(self.net.parameters(), 1e-2, (0.9, 0.999))
        else:
            self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-2)
        self.ema = EMA(self.net, cfg.train.ema_decay)

    def modules(self):
        return {"net": self.net}

    def ema_modules(self):
        return {"net": self.ema.module}

    def optimizers(self):
        return {"net": self.opt}

    def train_step(self, batch, step):
        x = batch["video"]
        loss = ((self.net(x) - x.flatten(1)) ** 2).mean()
        if step in self.cfg.nan_steps:
            loss = loss * float("nan")
        self.ctx.backward_step(loss, self.opt, self.net, name="net")
        self.ema.update(self.net)
        return {"loss": loss.detach()}

    def sample(self, n, generator):
        x = torch.rand(n, 3, 2, 4, 4, generator=generator) * 2 - 1
        return self.ema.module(x).reshape(n, 3, 2, 4, 4).clamp(-1, 1)


def weights(objective: TinyObjective) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in unwrap(objective.net).state_dict().items()}


def _caller() -> str:
    """``file:line function`` of the innermost frame in the project's package on the current stack."""
    for frame in reversed(traceback.extract_stack()):
        if "/videosynth/" in frame.filename.replace("\\", "/"):
            return f"{frame.filename.rsplit('/videosynth/', 1)[-1]}:{frame.lineno} {frame.name}"
    return "?"


HOST_SYNCS = ("item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy", "cpu")


class HostSyncs:
    """Records the tensor calls that make the host wait for a value on the device (``.item()``,
    ``bool()``, ``float()``, ``.tolist()``, ``.cpu()``, ...) made inside :meth:`watch`; ``calls``
    lists their names and ``where`` the line of the project's code that made each. Installed on
    ``torch.Tensor`` with pytest's ``monkeypatch``."""

    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        self.where: list[str] = []
        self.watching = False
        for name in HOST_SYNCS:
            original = getattr(torch.Tensor, name)

            def counted(tensor, *args, _original=original, _name=name, **kwargs):
                if self.watching:
                    self.calls.append(_name)
                    self.where.append(_caller())
                return _original(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, counted)

    @contextmanager
    def watch(self):
        self.watching = True
        try:
            yield self
        finally:
            self.watching = False
