"""Pinned evaluation protocols and metric results.

A number like "FVD 123" means nothing without how it was measured, so every
result carries a frozen :class:`Protocol` (detector and weights sha256, clip
length, stride, clips per video, input size, resize rule, value range, sample
count, seed), prints it next to the value and stores it in its JSON. Reference
statistics (``.npz``) store the protocol too and are refused when it differs
from the one asked for.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from videosynth.errors import VideoSynthError

log = logging.getLogger(__name__)

DEFAULT_FRAMES = 16
DEFAULT_NUM_SAMPLES = 2048  # the StyleGAN-V protocol
MIN_RELIABLE_SAMPLES = 256  # below this the Fréchet estimate is strongly biased; warn
VALUE_RANGE = "float32 [-1, 1]"

# Fields that define the feature distribution of a set of statistics: two stats
# files are comparable only when all of them agree. The seed and the metric are
# left out (real and fake sides are drawn with different seeds; FVD and KVD share I3D stats).
STATS_FIELDS = ("detector", "detector_sha256", "frames", "stride", "clips_per_video", "size",
                "resize", "value_range", "num_samples")


@dataclass(frozen=True)
class Protocol:
    """How a metric was measured.

    Attributes:
        metric: ``fvd``, ``kvd``, ``is``, ``fid``, ``fpd``, ...
        detector: detector key (``i3d``, ``c3d``, ``inception``, ``probe-<dataset>``).
        detector_sha256: sha256 of the weights file used.
        frames: frames per clip; stride: step between them.
        clips_per_video: clips taken from each real video.
        size: side of the clips handed to the detector (0 = as produced).
        resize: the detector's resize/conversion rule.
        value_range: range and dtype of the clips handed to the detector.
        num_samples: clips per side.
        seed: seed of sampling (generator noise / clip choice).
    """

    metric: str
    detector: str
    detector_sha256: str
    frames: int = DEFAULT_FRAMES
    stride: int = 1
    clips_per_video: int = 1
    size: int = 0
    resize: str = ""
    value_range: str = VALUE_RANGE
    num_samples: int = DEFAULT_NUM_SAMPLES
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Protocol":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise VideoSynthError(f"protocol has unknown fields {sorted(unknown)}; was it written by another tool?")
        return cls(**data)

    def describe(self) -> str:
        """One line: ``detector=i3d(sha256 1a2b3c4d5e6f) frames=16 stride=1 ...``."""
        return (f"detector={self.detector}(sha256 {self.detector_sha256[:12]}) frames={self.frames} "
                f"stride={self.stride} clips/video={self.clips_per_video} size={self.size or 'native'} "
                f"resize='{self.resize}' range='{self.value_range}' n={self.num_samples} seed={self.seed}")


def protocol_differences(stored: dict, wanted: Protocol) -> list[str]:
    """Human-readable list of :data:`STATS_FIELDS` on which stored and wanted protocols differ."""
    want = wanted.to_dict()
    return [f"{k}: stats have {stored.get(k)!r}, asked for {want[k]!r}"
            for k in STATS_FIELDS if stored.get(k) != want[k]]


def check_compatible(stored: dict, wanted: Protocol, path: str | Path) -> None:
    """Refuse statistics whose protocol differs from the one asked for.

    Raises:
        VideoSynthError: naming the file and every differing field.
    """
    diffs = protocol_differences(stored, wanted)
    if diffs:
        raise VideoSynthError(f"reference statistics {path} were made with another protocol ("
                              + "; ".join(diffs) + "); recompute them with --save-stats or match the options")


def sample_warnings(num_real: int | None, num_fake: int | None, asked: int | None = None) -> list[str]:
    """Warnings for sample counts below :data:`MIN_RELIABLE_SAMPLES` or below what was asked for."""
    out = []
    for side, n in (("real", num_real), ("fake", num_fake)):
        if n is None:
            continue
        if n < MIN_RELIABLE_SAMPLES:
            out.append(f"only {n} {side} samples (< {MIN_RELIABLE_SAMPLES}): the estimate is strongly biased "
                       f"and not comparable to published numbers (which use {DEFAULT_NUM_SAMPLES})")
        if asked is not None and n < asked:
            out.append(f"asked for {asked} {side} samples but only {n} were available")
    return out


@dataclass
class MetricResult:
    """A metric value with its protocol, warnings and details (e.g. per-seed values)."""

    metric: str
    value: float
    protocol: Protocol | None = None
    std: float | None = None
    num_real: int | None = None
    num_fake: int | None = None
    warnings: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    label: str = ""

    def to_dict(self) -> dict:
        return jsonable({
            "metric": self.metric, "label": self.label or self.metric.upper(), "value": self.value,
            "std": self.std, "num_real": self.num_real, "num_fake": self.num_fake,
            "protocol": self.protocol.to_dict() if self.protocol else None,
            "warnings": list(self.warnings), "details": self.details,
        })

    def format(self) -> str:
        """Multi-line text: value (± std), protocol line, warnings."""
        value = f"{self.value:.4f}" + (f" ± {self.std:.4f}" if self.std is not None else "")
        lines = [f"{self.label or self.metric.upper()}: {value}"]
        if self.protocol is not None:
            lines.append(f"  protocol: {self.protocol.describe()}")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def write_json(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


def jsonable(obj):
    """Replace non-finite floats by strings (``"inf"``, ``"nan"``) so the JSON stays standard."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def mean_std_over_seeds(values: list[float]) -> tuple[float, float | None]:
    """Mean and (population) std of per-seed values; std is None for a single seed."""
    if not values:
        raise VideoSynthError("no values to average")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
