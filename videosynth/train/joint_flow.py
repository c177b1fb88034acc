"""Training a joint audio-video flow run (``joint.audio: true``): one DiT over video latents and sound frames.

Each clip's soundtrack (the batch's ``audio``, from ``data.audio``) is encoded to normalised log-mel
frames (:class:`~videosynth.conditioning.melcodec.MelCodec`) and joins the clip's normalised video
latents as a second stream of the :class:`~videosynth.models.joint_dit.JointDiT`. Every row draws one
flow time as a video-only run does; by one uniform draw per row (a modality-dropout schedule), a
share ``loss.video_to_audio_share`` holds the video clean (time 1) and learns the sound for it, a
share ``loss.audio_to_video_share`` holds the sound clean and learns the video, and the rest put
both streams at the one time (joint generation). The loss is each stream's velocity MSE over the
rows where it is noisy, summed. Logged: ``loss``, ``loss_video``, ``loss_sound``.
"""

from __future__ import annotations

import dataclasses

import torch

from videosynth.conditioning.melcodec import MelCodec
from videosynth.errors import ConfigError
from videosynth.models.joint_dit import check_joint
from videosynth.sampling.flow import path, sample_times


def fit_joint(cfg, dataset, model):
    """``(joint section, model config)`` of a flow run: for ``joint.audio: true`` the sound's rate and frame
    rate from the data and the model's sound stream (mel bands, mel frames per clip, clip length).

    Raises:
        ConfigError: loss shares of a joint run on a video-only run; a joint run with a latent cache,
            a sound condition, per-frame times, shortcut steps, data without sound, or a representation
            the data's frames cannot line up with.
    """
    joint, loss = cfg.joint, cfg.loss
    joint_only = [k for k in ("video_to_audio_share", "audio_to_video_share", "onset_weight") if getattr(loss, k)]
    if not joint.audio:
        if joint_only:
            raise ConfigError(f"loss.{joint_only[0]} applies to joint audio-video runs: set joint.audio: true, or "
                              "leave it at 0")
        return joint, model
    for refused, why in ((cfg.latents, "a latent cache holds no sound; train on clips (remove latents:)"),
                         (cfg.condition is not None and cfg.condition.audio,
                          "the run makes the sound, so it cannot be given as a condition (set condition.audio: false)"),
                         (loss.objective != "flow", "shortcut steps are not supported (set loss.objective: flow)"),
                         (loss.frame_times != "shared", "per-frame times are not supported (set loss.frame_times: "
                                                         "shared; each stream has its own time)")):
        if refused:
            raise ConfigError(f"joint.audio: {why}")
    rate, fps = joint.rate or dataset.audio_rate, joint.fps or dataset.fps
    if not rate:
        raise ConfigError("joint.audio: the data carry no sound; set data.audio to a sample rate (e.g. 16000)")
    joint = dataclasses.replace(joint, rate=rate, fps=fps)
    MelCodec.from_config(joint)  # the frames must line up: refused now, before anything is written
    model = dataclasses.replace(model, clip_frames=cfg.data.frames, sound_mels=joint.mels,
                                sound_frames=cfg.data.frames * joint.mels_per_frame)
    check_joint(model)
    return joint, model


def draw_stream_times(n: int, loss_cfg, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Training times ``(t_video [n], t_sound [n])``: one drawn time per row, the video at 1 in the
    video-to-audio share of rows, the sound at 1 in the audio-to-video share. In those rows the other
    stream's time is drawn at ``loss.given_logit_mean`` where it is set (logit-normal sampling)."""
    t = sample_times(n, loss_cfg.time_sampling, device=device, mean=loss_cfg.logit_mean, std=loss_cfg.logit_std)
    u = torch.rand(n, device=device)
    video_given = u < loss_cfg.video_to_audio_share
    sound_given = ~video_given & (u < loss_cfg.video_to_audio_share + loss_cfg.audio_to_video_share)
    if loss_cfg.given_logit_mean is not None:
        # a pitch (or a position) readable in the noisy stream itself needs no look at the given one, so
        # without more rows near the noise end the model learns to ignore what it is given
        t_given = sample_times(n, "logit-normal", device=device, mean=loss_cfg.given_logit_mean,
                               std=loss_cfg.logit_std)
        t = torch.where(video_given | sound_given, t_given, t)
    ones = torch.ones_like(t)
    return torch.where(video_given, ones, t), torch.where(sound_given, ones, t)


def onset_weights(sound: torch.Tensor, weight: float) -> torch.Tensor:
    """Per-element loss weights ``[B, M, J]`` of normalised log-mel ``sound``: ``1 + weight * rise``, ``rise`` a band's
    increase from the mel frame before (0 at the first), scaled to mean 1 per clip so the loss keeps its size.

    Onsets (a click, a note starting) are a small share of the frames but where sound and picture must
    line up; without a weight the loss is mostly the steady tones.
    """
    if not weight:
        return torch.ones_like(sound)
    rise = torch.nn.functional.pad((sound[..., 1:] - sound[..., :-1]).clamp_min(0), (1, 0))
    w = 1 + weight * rise
    return w / w.mean(dim=(1, 2), keepdim=True)


def joint_loss(net, ctx, codec: MelCodec, x0: torch.Tensor, x1: torch.Tensor, batch: dict,
               loss_cfg) -> tuple[torch.Tensor, dict]:
    """The summed velocity MSE of both streams over their noisy rows; ``x0``, ``x1``: noise and normalised
    video latents ``[B, c, t, h, w]``; the batch's ``audio [B, S]`` is the sound stream's data."""
    sound1 = codec.encode(batch["audio"])  # (B, M, J)
    sound0 = torch.randn_like(sound1)
    t_video, t_sound = draw_stream_times(x1.shape[0], loss_cfg, x1.device)
    xt, target = path(x0, x1, t_video)
    st, sound_target = path(sound0, sound1, t_sound)
    with ctx.autocast():
        v, s = net(xt, labels=batch["label"], captions=list(batch["caption"]), t=t_video, sound=st, sound_t=t_sound)
    video_error = (v.float() - target).pow(2).mean(dim=(1, 2, 3, 4))  # (B,)
    sound_error = (s.float() - sound_target).pow(2)  # (B, M, J)
    if loss_cfg.onset_weight:
        sound_error = sound_error * onset_weights(sound1, loss_cfg.onset_weight)
    sound_error = sound_error.mean(dim=(1, 2))  # (B,)
    noisy_video, noisy_sound = (t_video < 1).float(), (t_sound < 1).float()
    loss_video = (video_error * noisy_video).sum() / noisy_video.sum().clamp_min(1)
    loss_sound = (sound_error * noisy_sound).sum() / noisy_sound.sum().clamp_min(1)
    return loss_video + loss_sound, {"loss_video": loss_video.detach(), "loss_sound": loss_sound.detach()}
