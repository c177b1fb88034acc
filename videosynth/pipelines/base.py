"""The inference pipeline contract: a run directory -> the modules inference needs -> clips.

A pipeline is built from ``config.yaml`` and the weights of one checkpoint alone: no optimiser,
no discriminator, no loss network, no token cache, and nothing is ever written into the run.
Calling it generates clips::

    pipe = videosynth.load("runs/demo")
    clips = pipe(num=8, label="circle", seed=0)     # float32 [8, C, T, H, W] in [-1, 1], CPU

Common arguments (``num``, ``seed``, ``label``, ``text``, ``frames``, ``ema``, ``batch_size``)
are checked here; each family declares its own sampling options as :class:`Option` records
(``frames``, ``guidance``, ``top_k``, ``prime``, ...), checked in :meth:`Pipeline.check_options`,
and ``videosynth sample`` derives its flags from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import torch
from torch import nn

from videosynth.checkpoint import (
    ADAPTER_EMA_FILE,
    ADAPTER_FILE,
    EMA_FILE,
    MODEL_FILE,
    find_checkpoint,
    load_module_state,
    load_weights,
    run_class_names,
)
from videosynth.conditioning import TEXT_KINDS, ConditionConfig
from videosynth.config import at_least, choice_hint, from_dict, in_range
from videosynth.data import DataConfig
from videosynth.device import select_device
from videosynth.errors import CheckpointError, ConfigError


@dataclass(frozen=True)
class Option:
    """One family sampling option: its keyword, type, help line and check.

    ``check(value)`` returns an error text for a bad value (None when fine); ``choices`` lists
    the accepted values of a string option. The CLI flag is ``--`` + the name with dashes.
    """

    name: str
    type: type
    help: str
    check: Callable[[Any], str | None] | None = None
    choices: tuple[str, ...] | None = None
    cli: bool = True  # False: Python API only (tensors)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


# The common arguments of every pipeline call, checked here and nowhere else (the CLI too).
COMMON_CHECKS = {"num": at_least(1), "batch_size": at_least(1), "frames": at_least(1),
                 "seed": in_range(0, 2**63 - 1), "fps": in_range(1, 240)}


def check_common(cli: bool = False, **values) -> None:
    """One-line ConfigError for a bad common argument (``num``, ``batch_size``, ``frames``, ``seed``, ``fps``).

    ``cli``: name the argument as its command-line flag (``--batch-size 0``) instead of ``batch_size=0``.
    """
    for name, value in values.items():
        if value is None:
            continue
        shown = f"--{name.replace('_', '-')} {value!r}" if cli else f"{name}={value!r}"
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{shown}: must be an integer")
        problem = COMMON_CHECKS[name](value)
        if problem:
            raise ConfigError(f"{shown}: {problem}")


def section(config: dict, key: str, cls: type, where: str):
    """A typed config section of a run's config dict.

    Raises:
        CheckpointError: the section is missing or does not parse (a run written by other code).
    """
    try:
        return from_dict(cls, config.get(key) or {}, key)
    except ConfigError as exc:
        raise CheckpointError(f"{where}/config.yaml: {exc}") from None


def resolve_run_path(name: str, run_dir: Path | None) -> Path:
    """A run named in another run's config, by one rule for every command: inside that run's own
    folder first (the demo keeps its tokenizer in ``RUN/tokenizer``), then next to it (runs moved
    together), by the same relative path or its last folder name; then as given (absolute, or
    relative to the working directory). ``run_dir`` None (a run being started): as given only."""
    path = Path(name).expanduser()
    if run_dir is not None:
        for base in (run_dir, run_dir.parent):
            for candidate in ((base / path.name,) if path.is_absolute() else (base / path, base / path.name)):
                if (candidate / "config.yaml").is_file():
                    return candidate
    return path


def check_finite_clips(clips: torch.Tensor, what: str) -> torch.Tensor:
    """``clips`` (float ``[B, C, T, H, W]``) unchanged when every value is finite.

    A NaN pixel becomes black (or garbage) once converted to uint8, so a batch is checked before
    anything is written from it.

    Raises:
        CheckpointError: naming ``what`` (the run that made them) and how many values are not finite.
    """
    finite = torch.isfinite(clips)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise CheckpointError(f"{what} made clips with {bad} non-finite values (NaN or Inf); nothing was written "
                              "from them: the weights or the sampling options are broken (try an earlier "
                              "--checkpoint or other options)")
    return clips


class Pipeline:
    """Base of every family's pipeline; subclasses load their modules and implement :meth:`generate`."""

    family: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    # options that lay clips out in one joint draw (a grid): such a call is never split in batches
    joint_options: ClassVar[tuple[str, ...]] = ()
    # the files of a checkpoint inference reads (their hashes are checked; state.pt is not needed)
    weight_files: ClassVar[tuple[str, ...]] = (MODEL_FILE, EMA_FILE, ADAPTER_FILE, ADAPTER_EMA_FILE)

    def __init__(self, run_dir: str | Path, config: dict, checkpoint: str | int | None = None,
                 device: str | torch.device = "auto"):
        self.run_dir = Path(run_dir)
        self.config = config
        self.device = device if isinstance(device, torch.device) else select_device(device)
        self.checkpoint, self.meta = find_checkpoint(self.run_dir, checkpoint, files=self.weight_files)
        self.step = int(self.meta.get("step", 0))
        self.condition = section(config, "condition", ConditionConfig, str(self.run_dir))
        self.data = section(config, "data", DataConfig, str(self.run_dir))  # what the run was trained on

    @classmethod
    def from_run(cls, run_dir: str | Path, checkpoint: str | int | None = None, device: str = "auto") -> "Pipeline":
        from videosynth.checkpoint import read_run_config

        config = read_run_config(run_dir)
        if config.get("family") != cls.family:
            raise CheckpointError(f"{run_dir} is a '{config.get('family')}' run, not a {cls.family} run")
        return cls(run_dir, config, checkpoint, device)

    # ---- loading helpers -----------------------------------------------------------------

    def load_weights(self, modules: dict[str, nn.Module], file: str = MODEL_FILE) -> None:
        """Load named modules of this checkpoint's ``file`` and put them in eval mode, frozen."""
        weights = load_weights(self.checkpoint, file)
        for name, module in modules.items():
            if name not in weights:
                raise CheckpointError(f"{self.checkpoint / file} has no weights for '{name}'")
            load_module_state(module, weights[name], f"{self.checkpoint / file} [{name}]")
            module.to(self.device).eval().requires_grad_(False)

    def load_conditioned(self, name: str, factory: Callable[[], nn.Module], ema: bool = True) -> nn.Module:
        """A :class:`~videosynth.models.conditioned.Conditioned` network built by ``factory`` with the
        checkpoint's ``name.net.*`` / ``name.conditioner.*`` weights: the EMA copy (default, where saved) or raw."""
        net = self.build(factory)
        has_ema = EMA_FILE in self.meta.get("files", {})
        self.load_weights({name: net}, EMA_FILE if ema and has_ema else MODEL_FILE)
        return net.eval()

    def check_guidance_and_prime(self, options: dict) -> None:
        """Shared checks of the generators that take ``guidance`` and ``prime`` options."""
        if options.get("guidance", 1.0) != 1.0 and self.condition_kind == "none" and not self.takes_audio:
            raise ConfigError(f"--guidance needs a conditional model; {self.run_dir} has condition.kind: none "
                              "and no sound")
        if "prime_frames" in options and "prime" not in options:
            raise ConfigError("--prime-frames needs --prime VIDEO")

    @staticmethod
    def build(factory: Callable[[], nn.Module]) -> nn.Module:
        """Build a module without touching the caller's RNG (its random init is overwritten anyway)."""
        with torch.random.fork_rng(devices=[]):
            return factory()

    # ---- conditions ----------------------------------------------------------------------

    @property
    def condition_kind(self) -> str:
        return self.condition.kind

    @property
    def class_names(self) -> list[str]:
        """Class names saved with the run (``classes.json``), else the indices as strings."""
        return run_class_names(self.run_dir, self.condition.num_classes if self.condition.kind == "class" else 0)

    def parse_label(self, label: int | str | None) -> int | None:
        """A label given as index or class name -> index; one-line errors for the rest."""
        if label is None:
            return None
        if self.condition_kind != "class":
            raise ConfigError(f"a label was given but {self.run_dir} was trained with condition "
                              f"'{self.condition_kind}', not class labels")
        names = self.class_names
        if str(label) in names:
            return names.index(str(label))
        try:
            index = int(label)
        except ValueError:
            raise ConfigError(f"unknown label '{label}' for {self.run_dir} (classes: {', '.join(names)})") from None
        if not 0 <= index < len(names):
            raise ConfigError(f"label {index} out of range for {self.run_dir} (0..{len(names) - 1}: {', '.join(names)})")
        return index

    @property
    def takes_audio(self) -> bool:
        """Whether the run is conditioned on sound (``condition.audio``)."""
        return bool(self.condition.audio)

    @property
    def generates_sound(self) -> bool:
        """Whether the run makes each clip's sound with it (a joint audio-video flow run)."""
        return False

    @property
    def audio_fps(self) -> float:
        """The video frame rate the run's sound lines up with (0 without sound)."""
        return float(self.condition.audio_fps) if self.takes_audio else 0.0

    @property
    def audio_rate(self) -> int:
        """Sample rate (Hz) of the sound the run takes (0 without sound)."""
        return int(self.condition.audio_rate) if self.takes_audio else 0

    def samples_for(self, frames: int) -> int:
        """Audio samples under ``frames`` frames of this run's clips."""
        return self.condition.samples_for(frames)

    def sound(self, audio, num: int, frames: int | None) -> torch.Tensor | None:
        """The sound of every clip, ``float32 [num, S]`` mono in [-1, 1] at :attr:`audio_rate` (None without).

        ``audio``: a sound file or a video with a soundtrack (its first ``frames`` frames' worth,
        default the training length, padded with silence), or a tensor ``[S]`` (every clip) or
        ``[num, S]`` in the run's rate, whose length sets the clip length.

        Raises:
            ConfigError: sound for a run trained without it, a tensor of the wrong shape, or a
                length that disagrees with ``frames``.
            DataError: an unreadable file or one without sound.
        """
        if audio is None:
            return None
        if not self.takes_audio:
            raise ConfigError(f"a sound was given but {self.run_dir} was trained without condition.audio")
        if isinstance(audio, (str, Path)):
            from videosynth.io import read_audio

            samples = self.samples_for(frames or self.data.frames)
            audio = torch.from_numpy(read_audio(audio, self.audio_rate, 0.0, samples / self.audio_rate))
        audio = torch.as_tensor(audio, dtype=torch.float32)
        if audio.dim() == 1:
            audio = audio.unsqueeze(0)
        if audio.dim() != 2 or audio.shape[0] not in (1, num):
            raise ConfigError(f"audio must be float32 [S] or [{num}, S] (mono, {self.audio_rate} Hz), "
                              f"got shape {tuple(audio.shape)}")
        if frames is not None and audio.shape[1] != self.samples_for(frames):
            raise ConfigError(f"the sound holds {audio.shape[1]} samples, {self.samples_for(frames)} for "
                              f"frames={frames} at {self.audio_rate} Hz")
        return audio.expand(num, -1).clamp(-1, 1)

    def check_text(self, text: str | list[str] | None, num: int | None = None) -> None:
        """One-line ConfigError for a text the run cannot take, or a list of captions that is not one per clip."""
        if text is not None and self.condition_kind not in TEXT_KINDS:
            raise ConfigError(f"a text was given but {self.run_dir} was trained with condition "
                              f"'{self.condition_kind}' (train with condition.kind: text)")
        if isinstance(text, (list, tuple)) and num is not None and len(text) != num:
            raise ConfigError(f"text holds {len(text)} captions for {num} clips: give one caption, or one per clip")

    # ---- options -------------------------------------------------------------------------

    def check_options(self, options: dict) -> dict:
        """Options with ``None`` dropped, typed and checked; unknown ones are refused.

        Raises:
            ConfigError: an option this family does not take, or a bad value (one line each).
        """
        known = {o.name: o for o in self.options}
        out = {}
        for name, value in options.items():
            if value is None:
                continue
            if name not in known:
                flag = "--" + name.replace("_", "-")
                valid = ", ".join(o.flag for o in self.options) or "none"
                raise ConfigError(f"{flag} does not apply to {self.family} runs (their sampling options: {valid})")
            opt = known[name]
            try:
                value = value if isinstance(value, opt.type) else opt.type(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{opt.flag} {value!r} is not a {opt.type.__name__}") from None
            if opt.choices is not None and value not in opt.choices:
                raise ConfigError(f"{opt.flag} {value!r} is not valid ({choice_hint(value, opt.choices)})")
            problem = opt.check(value) if opt.check is not None else None
            if problem:
                raise ConfigError(f"{opt.flag} {value!r}: {problem}")
            out[name] = value
        return out

    # ---- generation ----------------------------------------------------------------------

    def __call__(self, num: int = 1, seed: int = 0, label: int | str | None = None,
                 text: str | list[str] | None = None,
                 frames: int | None = None, ema: bool = True, batch_size: int = 16, audio=None,
                 **options) -> torch.Tensor:
        """``num`` clips ``float32 [num, C, T, H, W]`` in ``[-1, 1]`` on the CPU, deterministic by ``seed``.

        Without ``label`` a class-conditional run cycles through its classes (clip i gets class
        i mod K), so a grid shows every class; ``text`` conditions every clip on one caption (or clip i
        on caption i of a list of ``num``);
        ``audio`` (a file, or a tensor: see :meth:`sound`) drives a sound-conditioned run.

        Raises:
            ConfigError: bad counts, a label, text or sound the run cannot honour, an unknown option.
        """
        return torch.cat(list(self.stream(num, seed, label, text, frames, ema, batch_size, audio, **options)))

    def stream(self, num: int = 1, seed: int = 0, label: int | str | None = None,
               text: str | list[str] | None = None,
               frames: int | None = None, ema: bool = True, batch_size: int = 16, audio=None,
               **options) -> Iterator[torch.Tensor]:
        """The clips of :meth:`__call__`, in batches ``float32 [<= batch_size, C, T, H, W]`` as they are made.

        The same clips as one call (one noise stream), with memory bounded by ``batch_size``
        whatever ``num`` is; arguments are checked before the first batch is drawn.
        """
        def make(*args, **kwargs) -> torch.Tensor:
            return check_finite_clips(self.generate(*args, **kwargs).float().cpu(), self.describe())

        return self.checked_stream(make, num, seed, label, text, frames, ema, batch_size, audio, options)

    def checked_stream(self, make: Callable, num: int, seed: int, label, text, frames: int | None, ema: bool,
                       batch_size: int, audio, options: dict) -> Iterator:
        """``make(n, generator, labels=, captions=, frames=, ema=, **options)`` per batch, after checking the
        arguments of :meth:`stream` (``make`` returns the batch as it is to be yielded, checked)."""
        check_common(num=num, batch_size=batch_size, frames=frames, seed=seed)
        if label is not None and text is not None:
            raise ConfigError("give a label or a text, not both")
        label_id = self.parse_label(label)
        self.check_text(text, num)
        options = self.check_options(options)
        sound = self.sound(audio, num, frames)  # (num, S) or None
        if any(k in options for k in self.joint_options):
            batch_size = num  # a grid is one joint draw; it cannot be split into chunks
        return self._stream(make, num, seed, label_id, text, frames, ema, batch_size, options, sound)

    def cycled_labels(self, start: int, n: int) -> torch.Tensor:
        """The classes of clips ``start .. start + n`` of a draw given no label: every class in turn."""
        return (torch.arange(start, start + n) % max(len(self.class_names), 1)).long()

    def _stream(self, make, num, seed, label_id, text, frames, ema, batch_size, options, sound=None) -> Iterator:
        g = torch.Generator().manual_seed(int(seed))
        with torch.inference_mode():
            for start in range(0, num, batch_size):
                n = min(batch_size, num - start)
                labels = captions = None
                if self.condition_kind == "class":
                    labels = (self.cycled_labels(start, n) if label_id is None else
                              torch.full((n,), label_id, dtype=torch.long))
                elif isinstance(text, (list, tuple)):
                    captions = list(text[start:start + n])
                elif text is not None:
                    captions = [text] * n
                if sound is not None:
                    options = {**options, "audio": sound[start:start + n]}  # (n, S)
                yield make(n, g, labels=labels, captions=captions, frames=frames, ema=ema, **options)

    def batches(self, num: int, seed: int = 0, batch_size: int = 16, frames: int | None = None,
                **options) -> Iterator[torch.Tensor]:
        """Clips in batches ``float32 [B, C, T, H, W]`` (batch ``i`` drawn with seed ``seed + i``), for evaluation.

        ``frames`` (default: the training length) and ``options`` go to every call."""
        done, i = 0, 0
        while done < num:
            n = min(batch_size, num - done)
            yield self(n, seed=seed + i, frames=frames, batch_size=n, **options)
            done, i = done + n, i + 1

    def generate(self, n: int, generator: torch.Generator, labels: torch.Tensor | None = None,
                 captions: list[str] | None = None, frames: int | None = None, ema: bool = True,
                 **options) -> torch.Tensor:
        """One batch: ``labels`` int64 ``[n]`` (-1 = none) or None, ``captions`` or None -> clips."""
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.family} run {self.run_dir} (step {self.step})"

