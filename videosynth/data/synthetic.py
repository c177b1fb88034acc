"""Procedural video datasets with known ground truth: moving digits and bouncing shapes.

``moving-digits`` follows Moving MNIST (Srivastava, Mansimov & Salakhutdinov,
"Unsupervised Learning of Video Representations using LSTMs", ICML 2015):
white digits bouncing in a black square frame.  ``bouncing-shapes`` moves
saturated coloured circles, squares and triangles the same way.  What the
objects look like and how they move is :mod:`videosynth.data.scene` (the ten
glyphs come from a small stroke font, so nothing is downloaded), how they sound
:mod:`videosynth.data.soundtrack`; this file draws the items, their captions and
the compositional holdout.

Every item is a pure function of ``(seed, split, index)``: objects move with
constant velocity and bounce elastically off the walls (closed-form, so the
straight-line motion between bounces is exact), and :meth:`factors` returns the
per-frame positions and velocities used to render it.  Coordinates are pixels,
``(x, y)`` with the origin at the top-left corner of the frame; pixel ``(i, j)``
covers ``[j, j + 1) x [i, i + 1)``.

Items follow the dataset contract: ``{"video": float32 [3, T, size, size] in
[-1, 1] (black background = -1), "label": int64 scalar, "caption": str}``, plus
``"audio": float32 [S]`` mono in [-1, 1] when a sample rate is asked for: a
soundtrack with exact ground truth, from which the motion can be recovered (each
object's tone tells its class, height and horizontal position, a click each
bounce and which way it turned). Frame ``t`` covers ``[t / fps, (t + 1) / fps)``
seconds of the soundtrack.
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np
import torch

from videosynth.config import choice_hint
from videosynth.data.base import ClipDataset
from videosynth.data.scene import SHAPES, bounce, bounce_frames, glyph_alpha, paste
from videosynth.data.soundtrack import DIGIT_OVERTONE, SHAPE_HARMONICS, loudness_of, pitch_of, sound_of
# names of the soundtrack other modules import from here
from videosynth.data.soundtrack import CLICK_PITCH, LOW_PITCH, PITCH_OCTAVES, SIDE_CLICK_PITCH, click  # noqa: F401
from videosynth.data.transforms import to_float
from videosynth.errors import ConfigError

PALETTE = {
    "red": (235, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 245), "yellow": (245, 220, 40),
    "magenta": (225, 50, 225), "cyan": (40, 215, 225), "orange": (250, 140, 30),
}
WHITE = (255, 255, 255)
# Names bouncing-shapes accepts for one fixed object colour (its ``colour`` argument).
COLOURS = {**PALETTE, "white": WHITE}
# Compass words for the motion direction, counter-clockwise from "right" in 45 degree sectors.
DIRECTIONS = ("right", "up and to the right", "up", "up and to the left",
              "left", "down and to the left", "down", "down and to the right")
SPLIT_CODES = {"train": 0, "all": 0, "val": 1, "test": 2}  # distinct seed streams per split
HOLDOUT_SPLITS = ("train", "all")  # the splits a compositional holdout removes combinations from
HOLDOUT_STREAM = 7919  # seed stream of the held-out choice, apart from every split's
MAX_REDRAWS = 10000  # draws of one training item before its held-out combinations are given up on
CONTENT_FACTORS = ("classes", "colours", "sizes")  # what an object is, as opposed to how it moves
SPEED_RANGE = (1.0, 3.0)  # pixels per frame at a 64-pixel frame; scaled with the frame size
REFERENCE_SIZE = 64
CAPTION_SAMPLE = 2000  # items whose captions captions() collects (plus every one-object template)


# ----------------------------------------------------------------------------- vocabulary and holdout


def direction_index(vx: float, vy: float) -> int:
    """Index in :data:`DIRECTIONS` of a screen-space velocity (y grows downwards): its 45 degree sector."""
    angle = math.atan2(-vy, vx)  # counter-clockwise from +x, screen up positive
    return round(angle / (math.pi / 4)) % len(DIRECTIONS)


def direction_words(vx: float, vy: float) -> str:
    """Compass phrase for a screen-space velocity (y grows downwards): ``"up and to the left"``."""
    return DIRECTIONS[direction_index(vx, vy)]


def colour_name(colour) -> str:
    """The name in :data:`COLOURS` of an exact object colour (uint8 ``[3]``)."""
    return next(n for n, rgb in COLOURS.items() if tuple(int(c) for c in colour) == rgb)


def sub_combinations(combo: tuple, varying: list[int]) -> list[tuple]:
    """The parts of a combination with one of its ``varying`` attributes left out, each tagged by which."""
    return [(j, *(v for i, v in enumerate(combo) if i != j)) for j in varying]


def held_out_combinations(combos: list[tuple[int, str, int]], count: int, seed: int) -> frozenset:
    """``count`` of ``combos`` (class, colour name, direction index), drawn by ``seed``, held out of training.

    A combination is held out only while each of its parts with one attribute left out (class and
    colour, class and direction, colour and direction; attributes with one value do not count) stays
    in another, kept combination: every word and every pair of words is still seen in training, only
    the whole is new (a compositional split).

    Raises:
        ConfigError: more combinations asked for than can be held out that way.
    """
    varying = [j for j in range(len(combos[0])) if len({c[j] for c in combos}) > 1]
    kept: dict[tuple, int] = {}
    for combo in combos:
        for part in sub_combinations(combo, varying):
            kept[part] = kept.get(part, 0) + 1
    order = np.random.default_rng(np.random.SeedSequence([seed, HOLDOUT_STREAM])).permutation(len(combos))
    out = []
    for i in order:
        if len(out) == count:
            break
        parts = sub_combinations(combos[i], varying)
        if all(kept[p] > 1 for p in parts):
            for p in parts:
                kept[p] -= 1
            out.append(combos[i])
    if len(out) < count:
        raise ConfigError(f"data.holdout_combinations={count}: at most {len(out)} of the {len(combos)} (class, colour, "
                          "direction) combinations can be held out with every part of them still trained on; "
                          "lower it")
    return frozenset(out)


# ----------------------------------------------------------------------------- datasets


class BouncingObjects(ClipDataset):
    """Objects bouncing in a black square frame; subclasses say what the objects are.

    Args:
        num_samples: dataset length.
        frames: clip length T.
        size: frame height and width in pixels.
        num_objects: objects per clip, K >= 1.
        object_size: object extent in pixels (0 = the dataset's default for ``size``).
        seed: base seed; items of different splits come from disjoint seed streams.
        split: ``"train"``, ``"val"``, ``"test"`` (``"all"`` = ``"train"``).
        audio_rate: sample rate (Hz) of the soundtrack in each item; 0 = no ``"audio"``.
        fps: frames per second of the clips (the soundtrack's timing).
        holdout_combinations: how many (class, colour, initial direction) combinations the
            training split never shows (:func:`held_out_combinations`, drawn by ``seed``): a
            training item that would show one is drawn again; val and test keep every combination.
        classes: names of the classes objects are drawn from (``()``: all); ``class_names`` and the
            labels stay the dataset's, so a run on some classes can be fine-tuned onto the others.

    Raises:
        ConfigError: invalid sizes, counts, split, holdout or class names.
    """

    class_names: list[str] = []
    has_factors = True
    default_object_fraction = 0.25  # default object size as a share of the frame size
    composite = "over"

    def __init__(self, num_samples: int = 10000, frames: int = 16, size: int = 64, num_objects: int = 1,
                 object_size: int = 0, seed: int = 0, split: str = "train", audio_rate: int = 0,
                 fps: float = 8.0, holdout_combinations: int = 0, classes: tuple[str, ...] = ()) -> None:
        if split not in SPLIT_CODES:
            raise ConfigError(f"data split must be one of {sorted(SPLIT_CODES)}, got {split!r}")
        object_size = object_size or max(3, round(size * self.default_object_fraction))
        if num_samples < 1 or frames < 1 or num_objects < 1:
            raise ConfigError(f"data.num_samples, data.frames and data.num_objects must be >= 1, "
                              f"got {num_samples}, {frames}, {num_objects}")
        if not 2 <= object_size < size:
            raise ConfigError(f"data.object_size={object_size} must be between 2 and data.size-1 ({size - 1})")
        self.num_samples, self.frames, self.size = num_samples, frames, size
        self.num_objects, self.object_size, self.seed, self.split = num_objects, object_size, seed, split
        if audio_rate < 0 or fps <= 0:
            raise ConfigError(f"data.audio={audio_rate} must be >= 0 and data.fps={fps} > 0")
        self.audio_rate, self.fps = audio_rate, fps
        if holdout_combinations < 0:
            raise ConfigError(f"data.holdout_combinations={holdout_combinations} must be >= 0")
        self.holdout_combinations = holdout_combinations
        unknown = [c for c in classes if c not in self.class_names]
        if unknown:
            raise ConfigError(f"data.classes: '{unknown[0]}' is not a class of {type(self).__name__} "
                              f"({choice_hint(unknown[0], self.class_names)})")
        self.classes = tuple(classes)
        self._drawn = np.array([self.class_names.index(c) for c in classes], np.int64)

    def __len__(self) -> int:
        return self.num_samples

    def _rng(self, index: int, redraw: int = 0) -> np.random.Generator:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        # redraw 0 is the item a dataset without a holdout gives, so a holdout changes only the items it redraws
        entropy = [self.seed, SPLIT_CODES[self.split], index] + ([redraw] if redraw else [])
        return np.random.default_rng(np.random.SeedSequence(entropy))

    def colour_names(self) -> list[str]:
        """The names of the colours an object can have."""
        return ["white"]

    def combinations(self) -> list[tuple[int, str, int]]:
        """Every (class, colour name, direction index) an object can show, in a fixed order."""
        return [(c, col, d) for c in range(len(self.class_names)) for col in self.colour_names()
                for d in range(len(DIRECTIONS))]

    @cached_property
    def held_out(self) -> frozenset:
        """The (class, colour name, direction index) combinations the training split never shows (every split
        knows them: val and test clips of them are the held-out ones)."""
        if not self.holdout_combinations:
            return frozenset()
        return held_out_combinations(self.combinations(), self.holdout_combinations, self.seed)

    @staticmethod
    def combination_of(f: dict[str, np.ndarray], k: int = 0) -> tuple[int, str, int]:
        """The (class, colour name, initial direction index) of object ``k`` of factors ``f``."""
        return int(f["classes"][k]), colour_name(f["colours"][k]), direction_index(*f["velocities"][0, k])

    def _draw_classes(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Classes ``[K]`` and colours ``[K, 3]`` uint8 of the objects."""
        raise NotImplementedError

    def _class_ids(self, rng: np.random.Generator) -> np.ndarray:
        """Class indices ``int64 [K]`` of the objects, uniform over ``classes`` (all by default)."""
        if not len(self._drawn):
            return rng.integers(0, len(self.class_names), size=self.num_objects)
        return self._drawn[rng.integers(0, len(self._drawn), size=self.num_objects)]

    def _glyph(self, cls: int) -> str:
        raise NotImplementedError

    def _describe(self, cls: int, colour: np.ndarray) -> str:
        raise NotImplementedError

    def _harmonics(self, cls: int) -> tuple[float, ...]:
        """Relative amplitudes of harmonics 1, 2, ... of the tone of class ``cls`` (its timbre)."""
        raise NotImplementedError

    def factors(self, index: int) -> dict[str, np.ndarray]:
        """Ground truth of item ``index``.

        Returns ``positions`` float32 ``[T, K, 2]`` (object centres, pixels, (x, y)),
        ``velocities`` float32 ``[T, K, 2]`` (pixels per frame, after any bounce at that
        frame), ``classes`` int64 ``[K]``, ``colours`` uint8 ``[K, 3]``, ``sizes`` float32 ``[K]``,
        and the soundtrack's events: ``bounces`` bool ``[T, K]`` (a click at the start of frame t: at
        :data:`SIDE_CLICK_PITCH` where the x velocity turned, :data:`CLICK_PITCH` where y did),
        ``pitch`` float32 ``[T, K]`` (Hz of each object's tone at frame t) and ``loudness``
        float32 ``[T, K]`` (its gain in [LEFT_LOUDNESS, 1]).
        """
        f = self._draw(self._rng(index))
        if self.split in HOLDOUT_SPLITS and self.held_out:
            redraw = 0
            while any(self.combination_of(f, k) in self.held_out for k in range(self.num_objects)):
                redraw += 1
                if redraw > MAX_REDRAWS:
                    raise ConfigError(f"data.holdout_combinations={self.holdout_combinations}: item {index} drew "
                                      f"held-out combinations {MAX_REDRAWS} times; hold fewer out")
                f = self._draw(self._rng(index, redraw))
        return f

    def _draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        classes, colours = self._draw_classes(rng)
        k = self.num_objects
        half = self.object_size / 2
        start = rng.uniform(half, self.size - half, size=(k, 2))
        scale = self.size / REFERENCE_SIZE
        speed = rng.uniform(*SPEED_RANGE, size=k) * scale
        angle = rng.uniform(0, 2 * math.pi, size=k)
        velocity = np.stack([speed * np.cos(angle), speed * np.sin(angle)], axis=-1)  # (K, 2)
        positions, velocities = bounce(start, velocity, half, self.size - half, self.frames)
        return {"positions": positions.astype(np.float32), "velocities": velocities.astype(np.float32),
                "classes": classes.astype(np.int64), "colours": colours.astype(np.uint8),
                "sizes": np.full(k, self.object_size, np.float32),
                "bounces": bounce_frames(velocities),
                "pitch": pitch_of(positions[..., 1], half, self.size - half).astype(np.float32),
                "loudness": loudness_of(positions[..., 0], half, self.size - half).astype(np.float32)}

    def centroids(self, f: dict[str, np.ndarray]) -> np.ndarray:
        """Where a tracker sees the objects of factors ``f``: float32 ``[T, K, 2]`` (x, y) in pixel-index
        coordinates (pixel ``(i, j)`` at ``(j, i)``), the coverage-weighted centre of each drawn glyph.

        That is ``positions`` moved by the glyph's own centroid offset (a triangle's centroid sits
        below the centre of its box) and by half a pixel (positions are continuous coordinates).
        """
        offsets = []
        for cls in f["classes"]:
            alpha = glyph_alpha(self._glyph(int(cls)), self.object_size)  # (P, P), centred at (P / 2, P / 2)
            c = np.arange(alpha.shape[0]) + 0.5 - alpha.shape[0] / 2  # pixel centres relative to the patch centre
            offsets.append([(alpha.sum(0) * c).sum() / alpha.sum(), (alpha.sum(1) * c).sum() / alpha.sum()])
        return (f["positions"] + np.array(offsets, np.float32)[None] - 0.5).astype(np.float32)  # (T, K, 2)

    def soundtrack(self, index: int) -> np.ndarray:
        """The sound of item ``index``: float32 ``[round(T / fps * audio_rate)]`` mono in [-1, 1]."""
        if self.audio_rate <= 0:
            raise ConfigError("this dataset was built without audio; set data.audio to a sample rate (e.g. 16000)")
        return self._sound(self.factors(index))

    def _sound(self, f: dict[str, np.ndarray]) -> np.ndarray:
        half = self.object_size / 2
        timbres = [self._harmonics(int(cls)) for cls in f["classes"]]
        return sound_of(f, timbres, half, self.size - half, self.fps, self.audio_rate)

    def render(self, index: int) -> np.ndarray:
        """Frames of item ``index``: uint8 ``[T, size, size, 3]``, black background."""
        return self._render(self.factors(index))

    def render_mixed(self, content: int, motion: int) -> np.ndarray:
        """Frames of the objects of item ``content`` (classes, colours, sizes) moving along the paths of
        item ``motion`` (positions, velocities): uint8 ``[T, size, size, 3]``, black background.

        Holding one index and varying the other sweeps one factor with the other fixed, the ground truth
        a content/motion disentanglement metric is checked against; ``render_mixed(i, i) == render(i)``.
        """
        objects = {k: v for k, v in self.factors(content).items() if k in CONTENT_FACTORS}
        return self._render({**self.factors(motion), **objects})

    def _render(self, f: dict[str, np.ndarray]) -> np.ndarray:
        canvas = np.zeros((self.frames, self.size, self.size, 3), np.float32)  # (T, H, W, 3), 0..255
        for k, cls in enumerate(f["classes"]):
            alpha = glyph_alpha(self._glyph(int(cls)), self.object_size)
            colour = f["colours"][k].astype(np.float32)
            for t in range(self.frames):
                paste(canvas[t], alpha, colour, *f["positions"][t, k], mode=self.composite)
        return (canvas + 0.5).clip(0, 255).astype(np.uint8)

    def caption(self, index: int) -> str:
        """Template caption from the classes and initial directions, e.g. ``"a red circle moves left"``."""
        return self._caption(self.factors(index))

    def _caption(self, f: dict[str, np.ndarray]) -> str:
        parts = [f"{self._describe(int(c), col)} moves {direction_words(*v)}"
                 for c, col, v in zip(f["classes"], f["colours"], f["velocities"][0])]
        return " and ".join(parts)

    def label(self, index: int) -> int:
        """Class of the first object."""
        return int(self.factors(index)["classes"][0])

    def captions(self) -> list[str]:
        """Distinct captions of the first items plus every one-object template (covers the vocabulary)."""
        out = {self.caption(i) for i in range(min(self.num_samples, CAPTION_SAMPLE))}
        out.update(self._templates())
        return sorted(out)

    def _templates(self) -> list[str]:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        f = self.factors(index)
        item = {"video": to_float(self._render(f)),  # (3, T, H, W) in [-1, 1]
                "label": torch.tensor(int(f["classes"][0]), dtype=torch.int64),
                "caption": self._caption(f)}
        if self.audio_rate > 0:
            item["audio"] = torch.from_numpy(self._sound(f))  # (S,) mono in [-1, 1]
        return item

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_samples={self.num_samples}, frames={self.frames}, size={self.size}, "
                f"num_objects={self.num_objects}, object_size={self.object_size}, seed={self.seed}, "
                f"split={self.split!r}" + (f", audio_rate={self.audio_rate}, fps={self.fps:g}" if self.audio_rate else "")
                + (f", classes={list(self.classes)}" if self.classes else "") + ")")


class MovingDigits(BouncingObjects):
    """White stroke-font digits bouncing on black, Moving-MNIST-like; label = first digit."""

    class_names = [str(d) for d in range(10)]
    default_object_fraction = 28 / 64  # Moving MNIST: 28-pixel digits in a 64-pixel frame
    composite = "max"

    def _draw_classes(self, rng):
        classes = self._class_ids(rng)
        return classes, np.tile(np.array(WHITE, np.uint8), (self.num_objects, 1))

    def _glyph(self, cls: int) -> str:
        return f"digit-{cls}"

    def _describe(self, cls: int, colour) -> str:
        return f"the digit {cls}"

    def _harmonics(self, cls: int) -> tuple[float, ...]:
        return (1.0, *(DIGIT_OVERTONE if (cls + 1) >> bit & 1 else 0.0 for bit in range(4)))

    def _templates(self) -> list[str]:
        return [f"the digit {d} moves {w}" for d in range(10) for w in DIRECTIONS]


class BouncingShapes(BouncingObjects):
    """Coloured circles, squares and triangles bouncing on black; label = shape of the first object.

    ``colour``: ``""`` draws each object's colour from the palette; a name of :data:`COLOURS`
    (e.g. ``"white"``) gives every object that colour, so only shape tells the classes apart.
    Other arguments as :class:`BouncingObjects`.
    """

    class_names = list(SHAPES)
    default_object_fraction = 0.25

    def __init__(self, num_samples: int = 10000, frames: int = 16, size: int = 64, num_objects: int = 1,
                 object_size: int = 0, seed: int = 0, split: str = "train", colour: str = "",
                 audio_rate: int = 0, fps: float = 8.0, holdout_combinations: int = 0,
                 classes: tuple[str, ...] = ()) -> None:
        super().__init__(num_samples, frames, size, num_objects, object_size, seed, split, audio_rate, fps,
                         holdout_combinations, classes)
        if colour and colour not in COLOURS:
            raise ConfigError(f"data.colour={colour!r} is not a known colour ({choice_hint(colour, COLOURS)}); "
                              "'' gives each object a palette colour")
        self.colour = colour

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", colour={self.colour!r})"

    def _draw_classes(self, rng):
        classes = self._class_ids(rng)
        if self.colour:
            return classes, np.tile(np.array(COLOURS[self.colour], np.uint8), (self.num_objects, 1))
        names = list(PALETTE)
        # distinct colours while the palette lasts, so objects can be told apart
        picks = rng.permutation(len(names))[: self.num_objects] if self.num_objects <= len(names) \
            else rng.integers(0, len(names), size=self.num_objects)
        return classes, np.array([PALETTE[names[i]] for i in picks], np.uint8)

    def _glyph(self, cls: int) -> str:
        return SHAPES[cls]

    def _harmonics(self, cls: int) -> tuple[float, ...]:
        return SHAPE_HARMONICS[SHAPES[cls]]

    def _describe(self, cls: int, colour) -> str:
        return f"a {colour_name(colour)} {SHAPES[cls]}"

    def colour_names(self) -> list[str]:
        return [self.colour] if self.colour else list(PALETTE)

    def _templates(self) -> list[str]:
        colours = [self.colour] if self.colour else list(PALETTE)
        return [f"a {c} {s} moves {w}" for c in colours for s in SHAPES for w in DIRECTIONS]
