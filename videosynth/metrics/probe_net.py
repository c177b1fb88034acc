"""Probe network for the built-in data: a tiny 3D-conv classifier whose features give FPD.

FPD — *probe Fréchet distance, built-in data only; not FVD*. The Fréchet distance
(Heusel et al., 2017) is computed on the penultimate features of a small C3D-style
network (Tran et al., "Learning Spatiotemporal Features with 3D Convolutional
Networks", ICCV 2015) trained here, reproducibly (fixed seed), on the training
split of a built-in dataset to predict its class and the direction of motion of
its first object. It needs no downloaded weights, so it can run inside training
loops, but its numbers are only comparable between runs that use the same probe
file (its sha256 is part of the protocol).

Reading order: blocks -> :class:`ProbeConfig` -> :class:`ProbeNet` -> training ->
save/load -> :class:`ProbeDetector` (the detector interface of
:mod:`videosynth.metrics.detectors`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from videosynth.errors import CheckpointError, VideoSynthError

log = logging.getLogger(__name__)

NUM_MOTIONS = 4  # quadrant of the first object's velocity: (+x,+y), (-x,+y), (+x,-y), (-x,-y)


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """3×3×3 conv, GroupNorm, SiLU, then halve H and W (time is kept)."""
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, kernel_size=3, padding=1),
        nn.GroupNorm(min(8, c_out), c_out),
        nn.SiLU(),
        nn.AvgPool3d(kernel_size=(1, 2, 2)),
    )


@dataclass
class ProbeConfig:
    """Probe size and input convention; stored in the weights file's metadata."""

    frames: int = 16  # clips are cut (or stretched) to this many frames
    size: int = 32  # frames are area-resized to size × size
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    feature_dim: int = 64  # penultimate features used for FPD
    num_classes: int = 10


PRESETS = {"tiny": ProbeConfig(), "test": ProbeConfig(frames=8, size=16, channels=[4, 8], feature_dim=8)}


class ProbeNet(nn.Module):
    """Clip classifier: ``float [B, 3, T, H, W]`` in ``[-1, 1]`` -> features, class logits, motion logits."""

    def __init__(self, cfg: ProbeConfig) -> None:
        super().__init__()
        self.cfg = cfg
        chans = [3, *cfg.channels]
        self.blocks = nn.Sequential(*[conv_block(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.proj = nn.Linear(chans[-1], cfg.feature_dim)
        self.class_head = nn.Linear(cfg.feature_dim, cfg.num_classes)
        self.motion_head = nn.Linear(cfg.feature_dim, NUM_MOTIONS)

    def prepare(self, videos: torch.Tensor) -> torch.Tensor:
        """Cut/stretch to ``cfg.frames`` and area-resize to ``cfg.size``: ``[B, 3, frames, size, size]``."""
        b, c, t, h, w = videos.shape
        if c == 1:
            videos = videos.expand(-1, 3, -1, -1, -1)  # grey -> RGB
        videos = videos[:, :, : self.cfg.frames].float()
        target = (self.cfg.frames, self.cfg.size, self.cfg.size)
        if tuple(videos.shape[2:]) != target:
            videos = F.interpolate(videos, size=target, mode="area")  # (B, 3, frames, size, size)
        return videos

    def features(self, videos: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``float [B, feature_dim]`` of videos ``[B, C, T, H, W]`` in ``[-1, 1]``."""
        h = self.blocks(self.prepare(videos))  # (B, C', frames, s, s)
        return self.proj(h.mean(dim=(2, 3, 4)))  # (B, feature_dim)

    def forward(self, videos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.features(videos)
        return f, self.class_head(F.silu(f)), self.motion_head(F.silu(f))


# ---------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------


def motion_target(velocity: np.ndarray) -> int:
    """Quadrant index of a velocity ``(vx, vy)``: 0 (+,+), 1 (−,+), 2 (+,−), 3 (−,−)."""
    return int(velocity[0] < 0) + 2 * int(velocity[1] < 0)


def _motion_of(dataset, index: int) -> int:
    """Motion label of an item from ``dataset.factors(index)['velocities'][0, 0]``, or −1 without factors."""
    if not dataset.has_factors:
        return -1
    vel = np.asarray(dataset.factors(index)["velocities"])  # (T, K, 2)
    return motion_target(vel[0, 0])


def train_probe(dataset, cfg: ProbeConfig, steps: int = 300, batch_size: int = 16, lr: float = 2e-3,
                seed: int = 0) -> ProbeNet:
    """Train a probe on a built-in dataset, reproducibly.

    Args:
        dataset: a map-style dataset whose items follow the contract (``video``
            ``float [C, T, H, W]`` in ``[-1, 1]``, ``label`` int64); if it has
            ``factors(index)`` the motion head is trained too.
        cfg: probe config (``num_classes`` must cover the labels).
        steps, batch_size, lr: AdamW schedule (cosine decay).
        seed: fixes the initialisation and the order of the samples.

    Returns:
        The trained :class:`ProbeNet` in eval mode.
    """
    if len(dataset) == 0:
        raise VideoSynthError("train_probe got an empty dataset")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = ProbeNet(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    net.train()
    for step in range(steps):
        idx = torch.randint(len(dataset), (batch_size,), generator=gen).tolist()
        items = [dataset[i] for i in idx]
        video = torch.stack([it["video"] for it in items])  # (B, C, T, H, W)
        label = torch.stack([torch.as_tensor(it["label"]) for it in items]).long()  # (B,)
        motion = torch.tensor([_motion_of(dataset, i) for i in idx])  # (B,)
        _, class_logits, motion_logits = net(video)
        loss = video.new_zeros(())
        if (label >= 0).any():
            if int(label.max()) >= cfg.num_classes:
                raise VideoSynthError(f"label {int(label.max())} ≥ probe num_classes {cfg.num_classes}")
            loss = loss + F.cross_entropy(class_logits, label, ignore_index=-1)
        if (motion >= 0).any():
            loss = loss + F.cross_entropy(motion_logits, motion, ignore_index=-1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            log.info("probe step %d/%d loss %.4f", step + 1, steps, float(loss.detach()))
    return net.eval()


# ---------------------------------------------------------------------------------------
# Save / load
# ---------------------------------------------------------------------------------------


def probe_bytes(net: ProbeNet, meta: dict | None = None) -> bytes:
    """Weights + config (+ ``meta``, e.g. dataset, seed, steps) as the bytes of a ``.safetensors`` file."""
    from safetensors.torch import save

    # One metadata key: safetensors writes metadata from a hash map, so several keys would make the
    # file bytes (and its sha256, part of the FPD protocol) vary between identical saves.
    metadata = {"videosynth_probe": json.dumps({"config": asdict(net.cfg), "meta": meta or {}}, sort_keys=True)}
    return save({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, metadata=metadata)


def save_probe(net: ProbeNet, path: str | Path, meta: dict | None = None) -> None:
    """Write :func:`probe_bytes` to ``path`` atomically."""
    from videosynth.checkpoint import atomic_write_bytes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, probe_bytes(net, meta))


def load_probe(path: str | Path, device: str | torch.device = "cpu") -> tuple[ProbeNet, dict]:
    """Read a probe written by :func:`save_probe`; returns ``(net in eval mode, meta)``.

    Raises:
        CheckpointError: unreadable file or mismatching tensors.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            header = json.loads((f.metadata() or {})["videosynth_probe"])
        cfg = ProbeConfig(**header["config"])
        state = load_file(str(path), device=str(device))
    except (OSError, KeyError, ValueError, TypeError, SafetensorError) as exc:
        raise CheckpointError(f"{path} is not a probe weights file ({exc}); recreate it with "
                              "'videosynth eval train-probe DATASET --out PATH'")
    from videosynth.checkpoint import check_finite

    check_finite(state, str(path))
    net = ProbeNet(cfg).to(device)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: probe tensors do not match its config ({str(exc).splitlines()[0]})")
    return net.eval(), header.get("meta", {})


class ProbeDetector:
    """Detector interface around a :class:`ProbeNet`: ``float [B, C, T, H, W]`` in ``[-1, 1]`` -> ``[B, feature_dim]``."""

    output = "features"
    per_frame = False
    label = "FPD (probe Fréchet distance, built-in data only) — not FVD"

    def __init__(self, net: ProbeNet, name: str, sha256: str, device: torch.device | str = "cpu") -> None:
        self.net = net.to(device).eval()
        self.name = name
        self.sha256 = sha256
        self.device = torch.device(device)
        self.min_frames = net.cfg.frames
        self.resize = f"area to {net.cfg.size}x{net.cfg.size}, first {net.cfg.frames} frames, float [-1,1]"

    def __call__(self, videos: torch.Tensor) -> torch.Tensor:
        if videos.ndim != 5:
            raise VideoSynthError(f"probe expects videos [B, C, T, H, W], got {tuple(videos.shape)}")
        with torch.inference_mode():
            return self.net.features(videos.to(self.device)).float().cpu()  # (B, feature_dim)


def load_probe_detector(dataset: str, weights: str | None = None, device: str = "cpu") -> ProbeDetector:
    """Probe detector for a built-in dataset, resolved like every other weights file.

    Raises:
        MissingWeightsError: no ``probe-<dataset>.safetensors`` in the searched places.
    """
    from videosynth.metrics.weights import probe_spec, resolve_weights

    found = resolve_weights(probe_spec(dataset), weights)
    net, _ = load_probe(found.path, device)
    return ProbeDetector(net, f"probe-{dataset}", found.sha256, device)
