"""Class accuracy of a class-conditional run: does each sample show the class it was asked for?

A small probe (:mod:`videosynth.metrics.probe_net`) is trained on the run's own training data
(same frames, size, colours) and kept in the user cache (``$XDG_CACHE_HOME/videosynth/probes``),
keyed by that data config and the class names, so a reader never writes into the run. The probe
is first checked on real validation clips (its ceiling), then judges ``num`` samples of every
class. A conditional model whose samples follow their label scores near the real-clip accuracy;
chance is 1 / classes. A probe can be fooled by clips unlike any real one: look at the samples too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Callable

import torch

from videosynth.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

REAL_CLIPS = 300  # real validation clips the probe is checked on before it judges samples
PROBE_BATCH = 64  # clips per probe forward


def class_probe(data, names: list[str], device: str, path: str | Path | None = None, steps: int = 300):
    """The probe judging clips of ``data`` (a DataConfig) into ``names``: loaded from ``path`` (default: the
    user cache's, keyed by data and classes) or trained on the data's train split and saved there.

    Returns ``(probe, path)``.

    Raises:
        CheckpointError: an explicit ``path`` that does not load. ConfigError: a probe of other classes.
    """
    from videosynth.data import build_dataset
    from videosynth.metrics.probe_net import ProbeConfig, load_probe, probe_bytes, save_probe, train_probe
    from videosynth.usercache import cache_home, write_cache_file

    data_meta = dataclasses.asdict(data)
    if not data_meta.get("holdout_combinations"):
        data_meta.pop("holdout_combinations", None)  # the key of every probe cached before the option existed
    key = hashlib.sha256(json.dumps({"data": data_meta, "classes": names}, sort_keys=True).encode()).hexdigest()
    explicit = path is not None
    path = Path(path) if explicit else cache_home() / "probes" / f"class-acc-{key[:24]}.safetensors"
    net = None
    if path.exists():
        try:
            net, _ = load_probe(path, device)
        except CheckpointError as exc:
            if explicit:
                raise
            log.warning("cached probe unreadable (%s); training a new one", exc)
    if net is None:
        cfg = ProbeConfig(frames=data.frames, size=data.size, num_classes=len(names))
        print(f"training a probe on the run's data ({steps} steps) -> {path}")
        net = train_probe(build_dataset(data, "train"), cfg, steps=steps, seed=0).to(device)
        meta = {"data": data_meta, "steps": steps}
        if explicit:
            save_probe(net, path, meta)
        else:
            write_cache_file(path, probe_bytes(net, meta))
    if net.cfg.num_classes != len(names):
        raise ConfigError(f"probe {path} has {net.cfg.num_classes} classes, the run {len(names)}")
    return net, path


@torch.inference_mode()
def probe_predictions(probe, videos: torch.Tensor, device: str) -> torch.Tensor:
    """The probe's class of each of ``videos`` (float ``[N, C, T, H, W]`` in ``[-1, 1]``): int64 ``[N]``."""
    return torch.cat([probe(v.to(device))[1].argmax(1).cpu() for v in videos.split(PROBE_BATCH)])


def probe_accuracy(probe, videos: torch.Tensor, labels: torch.Tensor, device: str) -> float:
    """Share of ``videos`` (float ``[N, C, T, H, W]`` in ``[-1, 1]``) the probe gives ``labels`` (int64 ``[N]``)."""
    return float((probe_predictions(probe, videos, device) == labels).float().mean())


def window_classes(probe, videos: torch.Tensor, window: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The probe's class of the first and of the last ``window`` frames of each of ``videos``
    (float ``[N, C, T, H, W]`` in ``[-1, 1]``, ``T >= window``): two int64 ``[N]``."""
    return (probe_predictions(probe, videos[:, :, :window], device),
            probe_predictions(probe, videos[:, :, -window:], device))


def class_kept(first: torch.Tensor, last: torch.Tensor) -> dict[str, float]:
    """From :func:`window_classes`: ``class_kept``, the share of clips whose last window shows the class of
    their first, and its control ``class_kept_shuffled``, the last window of the clip before (chance)."""
    return {"class_kept": float((first == last).float().mean()),
            "class_kept_shuffled": float((first == last.roll(1)).float().mean())}


def class_accuracy(run, num: int, seed: int, device: str, options: dict, probe_path: str | Path | None = None,
                   probe_steps: int = 300, ema: bool = True,
                   on_progress: Callable[[int], None] | None = None) -> dict:
    """Probe accuracy on real validation clips, then on ``num`` samples of each class of ``run`` (a pipeline).

    Sample ``k`` of class ``k`` uses seed ``seed + k``; ``options`` are the family's sampling options.
    Returns a dict with ``accuracy`` (mean over classes), ``per_class``, ``real_accuracy``, ``chance``,
    the probe's path and the protocol, and the shuffled-label control: ``shuffled_accuracy``, the
    samples made for class ``k + 1`` (mod K) scored against class ``k`` (a run that ignores its label
    scores as high there as on ``accuracy``; one that follows it near 0), and
    ``real_shuffled_accuracy``, each real clip scored against the label of the clip before it (chance).

    Raises:
        ConfigError: a run that is not class-conditional, or ``num`` below 1.
    """
    from videosynth.data import build_dataset

    if num < 1:
        raise ConfigError("--num must be at least 1")
    if run.condition_kind != "class":
        raise ConfigError(f"{run.run_dir} is not class-conditional (condition.kind={run.condition_kind}); "
                          "class-acc needs a run trained with condition.kind: class")
    names = run.class_names
    # every class is judged, also those a run on some of the built-in classes (data.classes) never saw
    data = dataclasses.replace(run.data, classes=[])
    probe, path = class_probe(data, names, device, probe_path, probe_steps)
    val = build_dataset(data, "val")
    items = [val[i] for i in range(min(REAL_CLIPS, len(val)))]  # each item renders or decodes a clip: once
    real = torch.stack([item["video"] for item in items])  # (N, C, T, H, W)
    real_labels = torch.tensor([int(item["label"]) for item in items])
    real_pred = probe_predictions(probe, real, device)
    result = {"run": str(run.run_dir), "step": run.step, "probe": str(path), "clips_per_class": num,
              "real_accuracy": float((real_pred == real_labels).float().mean()),
              "real_shuffled_accuracy": float((real_pred == real_labels.roll(1)).float().mean()),
              "chance": 1 / len(names), "per_class": {}, "options": options}
    predicted = []  # per class k: the probe's classes of the samples made for k
    for k, name in enumerate(names):
        predicted.append(probe_predictions(probe, run(num, seed=seed + k, label=k, ema=ema, **options), device))
        result["per_class"][name] = float((predicted[k] == k).float().mean())
        if on_progress is not None:
            on_progress(num)
    result["accuracy"] = sum(result["per_class"].values()) / len(names)
    result["shuffled_accuracy"] = sum(float((predicted[(k + 1) % len(names)] == k).float().mean())
                                      for k in range(len(names))) / len(names)
    return result
