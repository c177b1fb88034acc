"""How much of a soundtrack survives the log-mel representation and its vocoder (:mod:`~videosynth.conditioning.melcodec`).

Sounds are encoded to log-mel frames and decoded back; the rebuilt sound is compared with the
original by

- **spectral convergence** (Arik et al. 2019): ``|| |S| - |S'| ||_F / || |S| ||_F`` of STFT magnitudes
  (the codec's window and hop), 0 for the same magnitudes;
- **log-mel L1**: the mean absolute difference of the two sounds' log-mel energies (natural log);
- on built-in one-object data, the **sync scores** read back from each sound
  (:func:`videosynth.metrics.sound.truth_scores`: bounce F1 of the clicks, pitch-height and
  loudness-x correlations) for the original (the analysers' ceiling) and the rebuilt sound.

:func:`spectrogram_figure` draws log-mel spectrograms of sounds side by side (real beside rebuilt
or generated), to look at.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from videosynth.conditioning.melcodec import MelCodec, spectral_convergence
from videosynth.errors import ConfigError
from videosynth.metrics.sound import truth_scores
from videosynth.metrics.sync import DEFAULT_TOLERANCE

RECON_SIDES = ("original", "reconstructed")


def codec_scores(sounds: torch.Tensor, codec: MelCodec, truths: list[dict] | None = None,
                 tolerance: int = DEFAULT_TOLERANCE) -> tuple[dict, torch.Tensor]:
    """``(scores, rebuilt sounds [N, S])`` of sounds ``float32 [N, S]`` through ``codec`` and back.

    ``scores``: ``spectral_convergence``, ``log_mel_l1`` and, with ``truths`` (see
    :func:`~videosynth.metrics.sound.truth_scores`), ``{"original": {...}, "reconstructed": {...}}``.
    """
    rebuilt = codec.decode(codec.encode(sounds))
    scores = {"spectral_convergence": spectral_convergence(sounds, rebuilt, codec.fft, codec.hop),
              "log_mel_l1": float((codec.log_mel(rebuilt) - codec.log_mel(sounds)).abs().mean())}
    if truths is not None:
        for side, audio in zip(RECON_SIDES, (sounds, rebuilt)):
            scores[side] = truth_scores(audio, truths, codec.rate, codec.fps, tolerance)
    return scores, rebuilt


def audio_recon_protocol(data, codec_cfg, num: int, split: str = "val", tolerance: int = DEFAULT_TOLERANCE
                         ) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Codec reconstruction of the first ``num`` soundtracks of ``data`` (a :class:`~videosynth.data.DataConfig`
    with ``audio`` set) under ``codec_cfg`` (a :class:`~videosynth.conditioning.melcodec.JointAudioConfig`; its
    rate and fps default to the data's). Returns ``(result, sounds [N, S], rebuilt [N, S])`` with
    ``result = {"metric", "scores", "protocol"}``; sync scores only on built-in one-object data.

    Raises:
        ConfigError: data without sound, fewer clips than ``num``, or a codec the frames cannot line up with.
    """
    from videosynth.data import build_dataset
    from videosynth.data.factory import BUILTIN

    if not data.audio:
        raise ConfigError("the data carry no sound: give --rate (e.g. 16000) or a data config with data.audio")
    if num < 1:
        raise ConfigError(f"--num {num}: must be at least 1")
    builtin = data.name in BUILTIN
    if builtin:
        data = dataclasses.replace(data, num_samples=max(data.num_samples, num))
    ds = build_dataset(data, split)
    if len(ds) < num:
        raise ConfigError(f"--num {num}: the {split} split holds {len(ds)} clips")
    codec_cfg = dataclasses.replace(codec_cfg, rate=codec_cfg.rate or data.audio, fps=codec_cfg.fps or ds.fps)
    codec = MelCodec.from_config(codec_cfg)
    sounds = torch.stack([ds[i]["audio"] for i in range(num)])  # (N, S)
    truths = None
    if builtin and data.num_objects == 1:
        truths = [{k: ds.factors(i)[k][:, 0] for k in ("bounces", "positions", "pitch")} for i in range(num)]
    scores, rebuilt = codec_scores(sounds, codec, truths, tolerance)
    protocol = {"num": num, "split": split, "tolerance": tolerance, "codec": dataclasses.asdict(codec_cfg),
                "hop": codec.hop, "data": dataclasses.asdict(data)}
    return {"metric": "audio-recon", "scores": scores, "protocol": protocol}, sounds, rebuilt


def spectrogram_figure(path: str | Path, rows: list[list[tuple[str, torch.Tensor]]], codec: MelCodec,
                       title: str = "") -> Path:
    """Log-mel spectrograms in a grid: ``rows[i]`` = ``[(caption, sound [S]), ...]`` side by side, written to
    ``path`` (``.png``, ``.pdf`` or ``.svg``); time in video frames along x, mel band up."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from videosynth.plots import save_figure

    cols = max(len(r) for r in rows)
    fig = Figure(figsize=(3.6 * cols, 2.4 * len(rows)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for r, row in enumerate(rows):
        for c, (caption, sound) in enumerate(row):
            mel = codec.log_mel(sound.float()[None])[0].numpy()  # (M, J)
            frames = mel.shape[1] / codec.k
            axes[r][c].imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=-11.5, vmax=6.0,
                              extent=(0, frames, 0, mel.shape[0]))
            axes[r][c].set_title(caption, fontsize=9)
            axes[r][c].set_xlabel("video frame")
            axes[r][c].set_ylabel("mel band")
        for c in range(len(row), cols):
            axes[r][c].set_visible(False)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
