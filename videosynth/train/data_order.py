"""The data order: seeded, sharded over ranks, and a pure function of the step (exact resume)."""

from __future__ import annotations

from typing import Iterator

import torch

from videosynth.errors import ConfigError
from videosynth.train.config import TrainConfig


class ResumableSampler(torch.utils.data.Sampler):
    """Seeded shuffled indices per epoch, sharded over ranks, startable mid-epoch.

    Epoch ``e`` uses the permutation of ``seed + e``; rank ``r`` takes every ``world``-th index
    (like ``DistributedSampler``) so ``step -> (epoch, batch)`` is a pure function of the step.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.epoch, self.start_batch = 0, 0
        self.batches_per_epoch = n // (batch_size * world)
        if self.batches_per_epoch == 0:
            raise ConfigError(
                f"dataset has {n} clips, fewer than one batch of train.batch_size={batch_size} x {world} rank(s);"
                " lower train.batch_size or add data"
            )

    def set_position(self, epoch: int, start_batch: int) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        perm = torch.randperm(self.n, generator=g)[: self.batches_per_epoch * self.batch_size * self.world]
        mine = perm[self.rank :: self.world]
        return iter(mine[self.start_batch * self.batch_size :].tolist())

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size


def batches(dataset, sampler: ResumableSampler, cfg: TrainConfig, step: int, device: torch.device,
            keys: tuple[str, ...], num_workers: int = 0) -> Iterator[dict]:
    """Batches from ``step`` on, forever, epoch after epoch, in a resume-exact order.

    The entries named by ``keys`` (the objective's ``batch_keys``) are moved to ``device``.
    """
    while True:
        epoch, start = divmod(step, sampler.batches_per_epoch)
        sampler.set_position(epoch, start)
        dataset.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            sampler=sampler,
            num_workers=num_workers,
            drop_last=True,
            pin_memory=device.type == "cuda",
            # an own generator: creating an iterator must not consume the global RNG
            generator=torch.Generator().manual_seed(cfg.seed * 1000003 + epoch),
            persistent_workers=False,
        )
        for batch in loader:
            for key in keys:
                if key not in batch:
                    raise ConfigError(f"the training data gives no '{key}' (it gives {', '.join(batch)})")
                batch[key] = batch[key].to(device, non_blocking=True)
            yield batch
            step += 1
