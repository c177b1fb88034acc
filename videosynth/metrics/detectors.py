"""Feature networks for FVD/KVD (I3D), video IS (C3D) and per-frame FID (Inception), from local TorchScript files.

- I3D: Carreira & Zisserman, "Quo Vadis, Action Recognition?" (CVPR 2017), the
  Kinetics-400 model of the FVD reference code (Unterthiner et al., 2018) as
  distributed in TorchScript form with the StyleGAN-V metrics (Skorokhodov et al.,
  CVPR 2022). Called as ``model(x, rescale=False, resize=False, return_features=True)``
  on ``float [B, 3, T, 224, 224]`` in ``[-1, 1]``; returns 400-d logits-layer features.
- C3D: Tran et al., "Learning Spatiotemporal Features with 3D Convolutional
  Networks" (ICCV 2015), fine-tuned on UCF-101 (TGAN2 / StyleGAN-V). Called as
  ``model(x)`` on ``uint8 [B, 3, 16, H, W]``; returns class probabilities ``[B, 101]``.
- Inception-v3 (Szegedy et al., CVPR 2016), the TensorFlow FID graph translated to
  TorchScript by StyleGAN2-ADA. Called as ``model(x, return_features=True)`` on
  ``uint8 [N, 3, H, W]`` (it resizes to 299 itself); returns 2048-d pool features.

Every detector takes videos in the library layout ``float [B, C, T, H, W]`` in
``[-1, 1]`` and does its own resizing/conversion; its ``resize`` string is recorded
in the protocol. Nothing is downloaded: weights come from :mod:`videosynth.metrics.weights`.
"""

from __future__ import annotations

import logging
import warnings as pywarnings
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F

from videosynth.device import select_device
from videosynth.errors import VideoSynthError
from videosynth.io import to_uint8_truncating
from videosynth.metrics.frechet import FeatureStats
from videosynth.metrics.weights import ResolvedWeights, resolve_weights

log = logging.getLogger(__name__)

I3D_SIZE = 224  # input resolution of the Kinetics I3D
I3D_MIN_FRAMES = 10  # its temporal pooling needs about this many frames to give meaningful features
C3D_SIZE = 112  # input resolution of the UCF-101 C3D
C3D_FRAMES = 16  # C3D is trained on 16-frame clips
PROB_SUM_TOL = 1e-3


def protocol_resize(videos: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Resize every frame: shorter side to ``size``, then centre crop to ``size × size``.

    Not :func:`videosynth.data.transforms.resize_crop`, which crops first and resizes only the
    window: this resizes the whole frame and then crops, as the reference FVD/IS code does, so
    features match reference statistics computed with it (the rule is recorded in each
    detector's ``resize`` string, and statistics of another rule are refused).

    Args:
        videos: ``float [B, C, T, H, W]``.
        mode: ``"bilinear"`` (antialiased when shrinking) or ``"area"``.

    Returns:
        ``float [B, C, T, size, size]``.
    """
    b, c, t, h, w = videos.shape
    if (h, w) == (size, size):
        return videos
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    frames = videos.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w).float()  # (B*T, C, H, W)
    if mode == "area":
        frames = F.interpolate(frames, size=(nh, nw), mode="area")
    else:
        frames = F.interpolate(frames, size=(nh, nw), mode=mode, align_corners=False, antialias=scale < 1)
    top, left = (nh - size) // 2, (nw - size) // 2
    frames = frames[:, :, top:top + size, left:left + size]  # (B*T, C, size, size)
    return frames.reshape(b, t, c, size, size).permute(0, 2, 1, 3, 4)  # (B, C, T, size, size)


def _check_videos(videos: torch.Tensor) -> None:
    if videos.ndim != 5 or videos.shape[1] not in (1, 3):
        raise VideoSynthError(f"detectors expect videos [B, C, T, H, W] with C in (1, 3), got {tuple(videos.shape)}")


# ---------------------------------------------------------------------------------------
# Detectors
# ---------------------------------------------------------------------------------------


class Detector:
    """A TorchScript feature network plus the exact input convention it was trained with.

    Attributes:
        name: key in :data:`DETECTORS` (``i3d``, ``c3d``, ``inception``).
        weights: where the file was found and its sha256.
        min_frames: shorter clips produce a warning (they are not dropped).
        output: ``"features"`` or ``"probabilities"``.
        resize: the resize rule, recorded in the protocol.
        per_frame: True if each frame is one sample (FID), False if each clip is.
    """

    name = ""
    min_frames = 1
    output = "features"
    resize = ""
    per_frame = False

    def __init__(self, model: torch.jit.ScriptModule | torch.nn.Module, weights: ResolvedWeights | None,
                 device: torch.device) -> None:
        self.model = model
        self.weights = weights
        self.device = device

    @property
    def sha256(self) -> str:
        return self.weights.sha256 if self.weights is not None else "unknown"

    def prepare(self, videos: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def run(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, videos: torch.Tensor) -> torch.Tensor:
        """Features or probabilities of ``float [B, C, T, H, W]`` videos in ``[-1, 1]``.

        Returns ``float32 [B, D]`` on the CPU (``[B*T, D]`` for per-frame detectors).
        """
        _check_videos(videos)
        if videos.shape[1] == 1:
            videos = videos.expand(-1, 3, -1, -1, -1)  # grey -> RGB
        with torch.inference_mode():
            x = self.prepare(videos.to(self.device))
            out = self.run(x)
        if out.ndim != 2 or out.shape[0] != x.shape[0]:
            raise VideoSynthError(f"detector '{self.name}' returned shape {tuple(out.shape)} for input "
                                  f"{tuple(x.shape)}; is {self.weights.path if self.weights else 'the file'} "
                                  "the right network?")
        return out.float().cpu()


class I3DDetector(Detector):
    """Kinetics-400 I3D (FVD/KVD): 400-d features of clips resized to 224×224, float in [-1, 1]."""

    name = "i3d"
    min_frames = I3D_MIN_FRAMES
    resize = f"bilinear shorter side to {I3D_SIZE}, centre crop {I3D_SIZE}x{I3D_SIZE}, float [-1,1]"

    def prepare(self, videos: torch.Tensor) -> torch.Tensor:
        return protocol_resize(videos, I3D_SIZE).clamp(-1, 1).contiguous()  # (B, 3, T, 224, 224)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, rescale=False, resize=False, return_features=True)  # (B, 400)


class C3DDetector(Detector):
    """UCF-101 C3D (video IS): class probabilities of 16-frame clips at 112×112, uint8."""

    name = "c3d"
    min_frames = C3D_FRAMES
    output = "probabilities"
    resize = (f"area to {C3D_SIZE}x{C3D_SIZE} (time stretched to {C3D_FRAMES} if shorter), "
              "uint8 x*127.5+128")

    def prepare(self, videos: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = videos.shape
        x = protocol_resize(videos, C3D_SIZE, mode="area")  # (B, 3, T, 112, 112)
        if t < C3D_FRAMES:
            x = F.interpolate(x, size=(C3D_FRAMES, C3D_SIZE, C3D_SIZE), mode="area")  # (B, 3, 16, 112, 112)
        return to_uint8_truncating(x[:, :, :C3D_FRAMES]).contiguous()

    def run(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x).float()  # (B, 101)
        looks_like_probs = bool((out >= 0).all()) and bool(((out.sum(dim=1) - 1).abs() < PROB_SUM_TOL).all())
        return out if looks_like_probs else out.softmax(dim=1)


class InceptionDetector(Detector):
    """Inception-v3 (per-frame FID): 2048-d features of every frame, uint8 at native resolution."""

    name = "inception"
    per_frame = True
    resize = "none (network resizes to 299 internally), uint8 x*127.5+128, every frame one sample"

    def prepare(self, videos: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = videos.shape
        frames = videos.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)  # (B*T, 3, H, W)
        return to_uint8_truncating(frames).contiguous()

    def run(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, return_features=True)  # (B*T, 2048)


DETECTORS: dict[str, type[Detector]] = {"i3d": I3DDetector, "c3d": C3DDetector, "inception": InceptionDetector}

_LOADED: dict[tuple[str, str, str], Detector] = {}


def load_detector(name: str, weights: str | None = None, device: str | torch.device = "auto") -> Detector:
    """Load a detector from local TorchScript weights.

    Args:
        name: ``"i3d"``, ``"c3d"`` or ``"inception"``.
        weights: explicit file or folder (see :func:`videosynth.metrics.weights.resolve_weights`).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ... or a ``torch.device``.

    Raises:
        MissingWeightsError: the file is not on disk (message lists every place searched).
        VideoSynthError: unknown name, or the file is not a TorchScript archive.
    """
    if name not in DETECTORS:
        raise VideoSynthError(f"unknown detector '{name}'; choose one of {sorted(DETECTORS)}")
    dev = device if isinstance(device, torch.device) else select_device(device)
    found = resolve_weights(name, weights)
    key = (name, found.sha256, str(dev))
    if key not in _LOADED:
        try:
            with pywarnings.catch_warnings():  # TorchScript is deprecated upstream, but it is the format these files use
                pywarnings.simplefilter("ignore", DeprecationWarning)
                model = torch.jit.load(str(found.path), map_location=dev).eval()
        except (RuntimeError, ValueError) as exc:
            raise VideoSynthError(f"{found.path} is not a loadable TorchScript file for '{name}' ({exc}); "
                                  "re-fetch it (sha256 now " + found.sha256[:12] + ")")
        _LOADED[key] = DETECTORS[name](model, found, dev)
    return _LOADED[key]


# ---------------------------------------------------------------------------------------
# Streaming feature extraction
# ---------------------------------------------------------------------------------------


def rebatch(batches: Iterable[torch.Tensor], batch_size: int, limit: int | None = None) -> Iterator[torch.Tensor]:
    """Re-chunk an iterable of ``[b, ...]`` tensors into ``[batch_size, ...]`` (last one smaller), stopping after ``limit`` rows."""
    pending: list[torch.Tensor] = []
    have, seen = 0, 0
    for batch in batches:
        if limit is not None and seen >= limit:
            break
        if limit is not None:
            batch = batch[: limit - seen]
        seen += batch.shape[0]
        pending.append(batch)
        have += batch.shape[0]
        while have >= batch_size:
            cat = torch.cat(pending, dim=0)
            yield cat[:batch_size]
            rest = cat[batch_size:]
            pending, have = ([rest] if rest.shape[0] else []), rest.shape[0]
    if have:
        yield torch.cat(pending, dim=0)


def extract_features(detector, batches: Iterable[torch.Tensor], num: int | None = None, batch_size: int = 8,
                     keep_features: bool = False, warnings: list[str] | None = None,
                     stats: FeatureStats | None = None) -> FeatureStats:
    """Run a detector over video batches and stream its outputs into :class:`FeatureStats`.

    Args:
        detector: a :class:`Detector` (or any callable with ``min_frames`` and ``name``
            mapping ``[B, C, T, H, W]`` to ``[B', D]``).
        batches: iterable of ``float [b, C, T, H, W]`` in ``[-1, 1]``; any b.
        num: stop after this many clips (``None``: all).
        batch_size: clips per detector call; the result does not depend on it.
        keep_features: keep every row (needed for KVD/KID and IS).
        warnings: list that receives human-readable warnings (also logged).

    Raises:
        VideoSynthError: the detector fails on the input (with the input shape).
    """
    stats = stats if stats is not None else FeatureStats(keep_features=keep_features)
    warned_short = False
    for clips in rebatch(batches, batch_size, num):
        t = clips.shape[2]
        min_frames = getattr(detector, "min_frames", 1)
        if t < min_frames and not warned_short:
            msg = (f"clips have {t} frames but detector '{getattr(detector, 'name', '?')}' needs at least "
                   f"{min_frames} for reliable features; the number is not comparable to published ones")
            log.warning(msg)
            if warnings is not None:
                warnings.append(msg)
            warned_short = True
        try:
            out = detector(clips)
        except RuntimeError as exc:
            raise VideoSynthError(f"detector '{getattr(detector, 'name', '?')}' failed on clips of shape "
                                  f"{tuple(clips.shape)}: {str(exc).splitlines()[0]}")
        stats.update(out)
    return stats
