"""Local resolution of pretrained metric weights (never downloads).

A weights file is looked up, in order, at

1. an explicit path (a file, or a folder holding the expected file name),
2. ``$VIDEOSYNTH_WEIGHTS/<file>``,
3. ``$XDG_CACHE_HOME/videosynth/weights/<file>`` (default ``~/.cache/videosynth/weights``).

The first hit wins and its sha256 is recorded in every metric protocol. A miss
raises :class:`MissingWeightsError` naming the file, every place searched and
the upstream address to fetch it from by hand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from videosynth.checkpoint import sha256
from videosynth.errors import MissingWeightsError

ENV_VAR = "VIDEOSYNTH_WEIGHTS"


@dataclass(frozen=True)
class WeightSpec:
    """A known weights file: short name, file name, upstream address (text only) and use."""

    name: str
    filename: str
    url: str
    description: str


KNOWN_WEIGHTS: dict[str, WeightSpec] = {
    "i3d": WeightSpec(
        "i3d", "i3d_torchscript.pt",
        "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt",
        "Kinetics-400 I3D, TorchScript from the StyleGAN-V metrics (FVD, KVD)"),
    "c3d": WeightSpec(
        "c3d", "c3d_ucf101.pt",
        "https://www.dropbox.com/s/jxpu7avzdc9n97q/c3d_ucf101.pt",
        "UCF-101 C3D, TorchScript from the StyleGAN-V metrics (video Inception Score)"),
    "inception": WeightSpec(
        "inception", "inception-2015-12-05.pt",
        "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
        "Inception-v3 (2015-12-05), TorchScript from the StyleGAN2-ADA metrics (per-frame FID)"),
    "lpips": WeightSpec(
        "lpips", "lpips_alex.safetensors",
        "the lpips package (v0.1 'alex': torchvision AlexNet 'features.*' + its 'lin{0..4}.model.1.weight'), "
        "merged and saved with safetensors",
        "LPIPS-alex (perceptual loss and the lpips reconstruction metric)"),
}


def probe_spec(dataset: str) -> WeightSpec:
    """Spec of the probe network for a built-in dataset (made locally by ``videosynth eval train-probe``)."""
    return WeightSpec(f"probe-{dataset}", f"probe-{dataset}.safetensors",
                      f"videosynth eval train-probe {dataset} --out <weights dir>/probe-{dataset}.safetensors",
                      f"probe network trained on the built-in '{dataset}' training split (FPD)")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/videosynth/weights`` or ``~/.cache/videosynth/weights``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "videosynth" / "weights"


def search_places(filename: str, explicit: str | Path | None = None) -> list[Path]:
    """Candidate paths for ``filename`` in resolution order (explicit, env var dir, cache dir)."""
    places: list[Path] = []
    if explicit is not None:
        p = Path(explicit).expanduser()
        places.append(p / filename if p.is_dir() else p)
    env = os.environ.get(ENV_VAR)
    if env:
        places.append(Path(env).expanduser() / filename)
    places.append(default_cache_dir() / filename)
    return places


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file (memoised on path, size and mtime)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = sha256(path)
    return _HASH_CACHE[key]


@dataclass(frozen=True)
class ResolvedWeights:
    """Where a weights file was found, how (``explicit``/``env``/``cache``) and its sha256."""

    spec: WeightSpec
    path: Path
    source: str
    sha256: str


def resolve_weights(spec: WeightSpec | str, explicit: str | Path | None = None) -> ResolvedWeights:
    """Find a weights file on local disk.

    Args:
        spec: a :class:`WeightSpec` or a key of :data:`KNOWN_WEIGHTS`.
        explicit: a file or folder given by the user; when given it must hold the
            file (no silent fallback to other places).

    Raises:
        MissingWeightsError: not found; the message names the file, every place
            searched and where the file comes from upstream.
    """
    if isinstance(spec, str):
        if spec not in KNOWN_WEIGHTS:
            raise MissingWeightsError(f"unknown weights '{spec}'; known: {', '.join(sorted(KNOWN_WEIGHTS))}")
        spec = KNOWN_WEIGHTS[spec]
    places = search_places(spec.filename, explicit)
    if explicit is not None:
        places = places[:1]
    sources = (["explicit"] if explicit is not None else []) + (["env"] if os.environ.get(ENV_VAR) else []) + ["cache"]
    for place, source in zip(places, sources):
        if place.is_file():
            return ResolvedWeights(spec, place, source, sha256_file(place))
    raise MissingWeightsError(missing_message(spec, places, explicit is not None))


def missing_message(spec: WeightSpec, places: list[Path], explicit: bool = False) -> str:
    """One-line explanation of a missing weights file (file, places searched, upstream source)."""
    where = ", ".join(str(p) for p in places)
    hint = "" if explicit else f" or set ${ENV_VAR} to a folder holding it"
    return (f"{spec.description}: weights file '{spec.filename}' not found (searched: {where}); "
            f"videosynth never downloads — get it from {spec.url} and put it in {default_cache_dir()}"
            f"{hint}, or pass --weights PATH")


BUILTIN_DATASETS = ("moving-digits", "bouncing-shapes")


def describe_weights() -> list[dict]:
    """One row per known weights file (detectors, then built-in probes): name, file, description,
    upstream, and either the found path/source/sha256 or the places searched."""
    rows = []
    for spec in [*KNOWN_WEIGHTS.values(), *(probe_spec(d) for d in BUILTIN_DATASETS)]:
        row = {"name": spec.name, "file": spec.filename, "description": spec.description, "upstream": spec.url}
        try:
            found = resolve_weights(spec)
            row.update(found=str(found.path), source=found.source, sha256=found.sha256)
        except MissingWeightsError:
            row.update(found=None, searched=[str(p) for p in search_places(spec.filename)])
        rows.append(row)
    return rows
