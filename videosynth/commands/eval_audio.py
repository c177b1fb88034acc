"""``videosynth eval audio-recon DATA``: how much of a soundtrack survives the log-mel frames a joint run generates.

DATA is a built-in dataset name (its soundtrack at ``--rate``), a folder of videos with sound, or
a joint audio-video flow run (its data and its ``joint:`` representation). Examples::

    videosynth eval audio-recon bouncing-shapes --num 64 --spectrograms recon.png
    videosynth eval audio-recon runs/joint-av --json recon.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from videosynth.commands.eval_common import parse_options
from videosynth.errors import ConfigError

DEFAULT_RECON_NUM = 64
SPECTROGRAM_CLIPS = 3  # real / rebuilt pairs drawn by --spectrograms


def register(metrics) -> None:
    """Add ``audio-recon`` to the ``eval`` sub-commands."""
    from videosynth.conditioning.melcodec import JointAudioConfig

    d = JointAudioConfig()
    ar = metrics.add_parser("audio-recon", help="log-mel frames and their vocoder: spectral convergence, log-mel L1 "
                                                "and the sync scores of rebuilt vs original sound",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ar.add_argument("data", help="built-in dataset name, folder of videos with sound, or a joint flow run")
    ar.add_argument("--num", type=int, default=DEFAULT_RECON_NUM, help=f"soundtracks (default {DEFAULT_RECON_NUM})")
    ar.add_argument("--split", default="val", help="split of the data (default val)")
    ar.add_argument("--frames", type=int, default=8, help="video frames per soundtrack (default 8; a run's own)")
    ar.add_argument("--size", type=int, default=32, help="frame side of built-in clips (default 32; a run's own)")
    ar.add_argument("--rate", type=int, default=16000, help="sample rate (default 16000; a run's own)")
    ar.add_argument("--fps", type=float, default=0.0, help="frame rate (default: the data's)")
    ar.add_argument("--mels", type=int, default=d.mels, help=f"mel bands (default {d.mels})")
    ar.add_argument("--fft", type=int, default=d.fft, help=f"window in samples (default {d.fft})")
    ar.add_argument("--mels-per-frame", type=int, default=d.mels_per_frame,
                    help=f"mel frames per video frame (default {d.mels_per_frame})")
    ar.add_argument("--vocoder-iters", type=int, default=d.vocoder_iters,
                    help=f"Griffin-Lim iterations (default {d.vocoder_iters})")
    ar.add_argument("--tolerance", type=int, default=1, help="frames a click may be off its bounce (default 1)")
    ar.add_argument("--spectrograms", metavar="PNG", help=f"also draw {SPECTROGRAM_CLIPS} original / rebuilt "
                                                          "spectrogram pairs here (the soundtracks with the most "
                                                          "clicks)")
    ar.add_argument("--json", metavar="OUT", help="also write the result (with its protocol) to this JSON file")
    ar.set_defaults(func=run_audio_recon)


def _data_and_codec(args: argparse.Namespace):
    """``(DataConfig, JointAudioConfig)`` of DATA: a joint run's own, else from the flags."""
    from videosynth.conditioning.melcodec import JointAudioConfig
    from videosynth.config import from_dict
    from videosynth.data import DataConfig
    from videosynth.data.factory import BUILTIN

    path = Path(args.data).expanduser()
    codec = JointAudioConfig(audio=True, mels=args.mels, fft=args.fft, mels_per_frame=args.mels_per_frame,
                             vocoder_iters=args.vocoder_iters, fps=args.fps)
    if (path / "config.yaml").is_file():
        from videosynth.checkpoint import read_run_config

        config = read_run_config(path)
        joint = from_dict(JointAudioConfig, config.get("joint") or {}, "joint")
        if not joint.audio:
            raise ConfigError(f"{path} is not a joint audio-video run (its config has no joint.audio: true); give a "
                              "dataset name or a folder of videos with sound")
        return from_dict(DataConfig, config.get("data") or {}, "data"), joint
    common = dict(frames=args.frames, size=args.size, audio=args.rate, fps=args.fps, num_samples=max(args.num, 1))
    if args.data in BUILTIN:
        return DataConfig(name=args.data, **common), codec
    if path.is_dir():
        return DataConfig(name="folder", root=str(path), **common), codec
    raise ConfigError(f"'{args.data}' is not a built-in dataset ({', '.join(BUILTIN)}), a folder of videos or a "
                      "joint run directory")


def run_audio_recon(args: argparse.Namespace) -> int:
    from videosynth.conditioning.melcodec import JointAudioConfig, MelCodec
    from videosynth.metrics.audio_recon import RECON_SIDES, audio_recon_protocol, spectrogram_figure
    from videosynth.metrics.protocol import jsonable
    from videosynth.metrics.sound import click_frames
    from videosynth.plots import check_suffix

    if args.spectrograms:
        check_suffix(args.spectrograms, "--spectrograms")
    data, codec_cfg = _data_and_codec(args)
    result, sounds, rebuilt = audio_recon_protocol(data, codec_cfg, args.num, args.split, args.tolerance)
    scores, codec_cfg = result["scores"], result["protocol"]["codec"]
    print(f"audio through {codec_cfg['mels']} log-mel bands x {codec_cfg['mels_per_frame']} frames per video frame "
          f"(fft {codec_cfg['fft']}, hop {result['protocol']['hop']}) and Griffin-Lim "
          f"({codec_cfg['vocoder_iters']} iterations); {args.num} soundtracks of {args.data} ({args.split})")
    print(f"spectral convergence {scores['spectral_convergence']:.4f}   log-mel L1 {scores['log_mel_l1']:.4f}")
    if "original" in scores:
        print(f"{'':22s}" + "".join(f"{side:>15s}" for side in RECON_SIDES))
        for key in scores["original"]:
            print(f"{key:22s}" + "".join(f"{scores[side][key]:15.3f}" for side in RECON_SIDES))
        print("read back from each sound against the clips' ground truth (clicks at bounces, pitch = height, "
              "loudness = x)")
    if args.spectrograms:
        codec = MelCodec.from_config(JointAudioConfig(**codec_cfg))
        clicks = [len(click_frames(s, codec.rate, codec.fps)) for s in sounds]
        shown = sorted(range(len(sounds)), key=lambda i: (-clicks[i], i))[:SPECTROGRAM_CLIPS]
        rows = [[(f"clip {i} original", sounds[i]), (f"clip {i} rebuilt", rebuilt[i])] for i in shown]
        print(f"wrote {spectrogram_figure(args.spectrograms, rows, codec, 'log-mel: original | rebuilt')}")
    if args.json:
        Path(args.json).expanduser().parent.mkdir(parents=True, exist_ok=True)
        out = {**result, "protocol": {**result["protocol"], "source": str(args.data)}}
        Path(args.json).write_text(json.dumps(jsonable(out), indent=2, sort_keys=True) + "\n")
        print(f"wrote {args.json}")
    return 0


JOINT_TITLES = {
    "joint": "clips made with their own sound: the clip's tracked motion against what its sound says",
    "video_to_audio": "sound made for a real val clip, read back against that clip's ground truth",
    "audio_to_video": "a clip made for a real val sound, against that sound's ground truth",
}


def run_joint_sync(args: argparse.Namespace, pipe, device: str) -> int:
    """``eval sync`` on a joint audio-video run: :func:`videosynth.metrics.joint_sync.joint_sync_protocol`, printed
    (and written as JSON); a class-conditional run also gets the class-timbre scores (the class probe of
    ``eval class-acc`` beside a timbre probe)."""
    from videosynth.metrics.audio_recon import spectrogram_figure
    from videosynth.metrics.joint_sync import JOINT_MODES, JOINT_SIDES, joint_sync_protocol
    from videosynth.metrics.protocol import jsonable
    from videosynth.plots import check_suffix
    from videosynth.progress import progress_bar

    if args.spectrograms:
        check_suffix(args.spectrograms, "--spectrograms")
    probe = None
    if pipe.condition_kind == "class":
        from videosynth.metrics.class_accuracy import class_probe

        probe = class_probe(dataclasses.replace(pipe.data, classes=[]), pipe.class_names, device, args.probe,
                            args.probe_steps)[0]
    with progress_bar(3 * args.num, f"sampling {args.run}", enabled=not args.no_progress) as bar:
        result, sounds = joint_sync_protocol(pipe, args.num, args.seed, args.tolerance, args.batch_size,
                                             parse_options(args.option), on_progress=bar.update, probe=probe,
                                             device=device)
    print(f"joint audio-video sync of {args.run} (step {pipe.step}); {args.num} val clips of {result['frames']} frames, "
          f"+-{args.tolerance} frame(s); bounce clicks, pitch = height, loudness = x")
    for mode in JOINT_MODES:
        sides, scores = JOINT_SIDES[mode], result["scores"][mode]
        print(f"\n{mode.replace('_', '-')}: {JOINT_TITLES[mode]}")
        print(f"{'':22s}" + "".join(f"{side:>11s}" for side in sides))
        for key in scores[sides[0]]:
            print(f"{key:22s}" + "".join(f"{scores[side].get(key, float('nan')):11.3f}" for side in sides))
    print("\nshuffled = each clip paired with the partner made for (or given with) the clip before it: a model "
          "whose streams ignore each other scores the same as generated / matched")
    if probe is not None:
        print("class_timbre = the class probe's class of the clip against the class its sound's timbre says (V->A: "
              "the val clip's class; A->V: the val sound's); class_accuracy = the joint clip's class against the class "
              "it was made for")
    if args.spectrograms:
        rows = [[(f"val clip {i}: real", sounds["real"][i]),
                 (f"made for val clip {i} (V->A)", sounds["video_to_audio"][i]),
                 (f"generated clip {i} (joint)", sounds["joint"][i])] for i in range(min(SPECTROGRAM_CLIPS, args.num))]
        path = spectrogram_figure(args.spectrograms, rows, pipe.codec, f"log-mel: {args.run} (step {pipe.step})")
        print(f"wrote {path}")
    if args.json:
        out = {**result, "protocol": {**result["protocol"], "run": str(args.run)}}
        Path(args.json).write_text(json.dumps(jsonable(out), indent=2, sort_keys=True) + "\n")
        print(f"wrote {args.json}")
    return 0
