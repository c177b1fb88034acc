"""Sampling the GAN families: noise -> clips, standing BatchNorm statistics, MoCoGAN's grids.

Every function takes a :class:`~videosynth.models.conditioned.Conditioned` generator (its EMA
copy for best results) and a ``torch.Generator`` for the noise, and returns clips
``float32 [n, C, T, H, W]`` in ``[-1, 1]``. Labels are int64 ``[n]`` (-1 = none), captions
``list[str]`` (``""`` = none); missing ones mean the null condition.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from videosynth.errors import ConfigError
from videosynth.models.conditioned import Conditioned, null_inputs
from videosynth.models.mocogan import MoCoGANGenerator

# Standing BatchNorm statistics of an EMA generator: batches x clips of fixed-seed noise.
STANDING_BATCHES = 8
STANDING_BATCH = 16
STANDING_SEED = 0


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


class _NoiseToVideo(nn.Module):
    """``z -> generator(z, labels, captions)``: the one-tensor call ``update_bn`` makes.

    A MoCoGAN generator takes ``z`` as its content codes and draws its motion noise (and action
    codes) from the global RNG, which :func:`standing_statistics` seeds.
    """

    def __init__(self, generator: Conditioned, labels: torch.Tensor, captions: list[str]):
        super().__init__()
        self.generator = generator
        self.labels, self.captions = labels, captions

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if isinstance(self.generator.net, MoCoGANGenerator):  # (video, codes) from n clips
            return self.generator(z.shape[0], labels=self.labels, captions=self.captions, z_content=z)[0]
        return self.generator(z, labels=self.labels, captions=self.captions)


@torch.no_grad()
def standing_labels(condition) -> torch.Tensor | None:
    """The labels standing statistics render with: int64 ``[STANDING_BATCH]`` cycling through the classes of
    a class-conditional run (``condition``: its ConditionConfig or None); None (the null condition) otherwise.

    Training's sample grids and ``videosynth sample`` both take them from here, so a run's periodic
    samples and its samples afterwards come from the same statistics.
    """
    if condition is None or condition.kind != "class" or not condition.num_classes:
        return None
    return torch.arange(STANDING_BATCH) % condition.num_classes


def standing_statistics(generator: Conditioned, z_dim: int, labels: torch.Tensor | None = None,
                        captions: list[str] | None = None) -> Conditioned:
    """A copy of a GAN generator with BatchNorm statistics recomputed for its own weights.

    An EMA generator carries the live generator's running statistics, which belong to the live
    weights, not to the averaged ones (samples come out washed out); as in BigGAN (Brock et al.
    2019, "standing statistics") they are re-estimated, with ``torch.optim.swa_utils.update_bn``,
    over ``STANDING_BATCHES`` batches of fixed-seed noise (``z_dim``: the VideoGAN's noise, the
    MoCoGAN's content code). ``labels`` / ``captions`` (one batch
    of ``STANDING_BATCH``) are the conditions the noise is rendered with. Returns the copy in
    eval mode; the argument is not changed. The global RNG (condition dropout, in the train mode
    ``update_bn`` sets) is seeded here and restored after, so the result depends on the weights alone.
    """
    net = copy.deepcopy(generator)
    device = _device(net)
    labels, captions = null_inputs(STANDING_BATCH, labels, captions)
    g = torch.Generator().manual_seed(STANDING_SEED)
    noise = [torch.randn(STANDING_BATCH, z_dim, generator=g) for _ in range(STANDING_BATCHES)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(STANDING_SEED)
        update_bn(noise, _NoiseToVideo(net, labels.to(device), captions), device=device)
    return net.eval()


@torch.inference_mode()
def sample_videogan(generator: Conditioned, n: int, z_dim: int, noise: torch.Generator,
                    labels: torch.Tensor | None = None, captions: list[str] | None = None,
                    audio: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` clips from ``G(z | c)``, ``z ~ N(0, I)`` drawn on the CPU from ``noise``; ``audio [n, S]``
    drives a sound-conditioned generator (without it, the learned null sound)."""
    device = _device(generator)
    z = torch.randn(n, z_dim, generator=noise).to(device)  # (n, z_dim)
    labels, captions = null_inputs(n, labels, captions)
    was_training = generator.training
    generator.eval()
    try:
        video = generator(z, labels=labels.to(device), captions=captions, audio=audio)  # (n, C, T, H, W)
    finally:
        generator.train(was_training)
    return video.float().clamp(-1, 1)


# ----------------------------------------------------------------------------- MoCoGAN


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of Gaussian codes ``a, b [D]`` at fractions ``t [S]`` -> ``[S, D]``."""
    cos = (a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-6:  # (nearly) parallel codes: plain linear interpolation
        return (1 - t)[:, None] * a + t[:, None] * b  # (S, D)
    wa = torch.sin((1 - t) * omega) / torch.sin(omega)  # (S,)
    wb = torch.sin(t * omega) / torch.sin(omega)  # (S,)
    return wa[:, None] * a + wb[:, None] * b  # (S, D)


def _broadcast_rows(x: torch.Tensor | None, rows: int, cols: int, device: torch.device) -> torch.Tensor | None:
    """A condition given once ``[D]`` / ``[1, D]``, per row ``[rows, D]`` or per clip -> ``[rows*cols, D]``."""
    if x is None:
        return None
    n = rows * cols
    x = x.reshape(-1, x.shape[-1]).to(device)  # (k, D)
    if x.shape[0] == 1:
        return x.expand(n, -1)  # (rows*cols, D)
    if x.shape[0] == rows and rows != n:
        return x.repeat_interleave(cols, dim=0)  # (rows*cols, D)
    if x.shape[0] != n:
        raise ValueError(f"cond must hold 1, {rows} or {n} rows, got {x.shape[0]}")
    return x


def _broadcast_actions(action: torch.Tensor | int | None, n: int, device: torch.device) -> torch.Tensor | None:
    if action is None:
        return None
    if isinstance(action, int):
        return torch.full((n,), action, dtype=torch.long, device=device)
    return action.to(device)


def _pad_rows(x: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """Repeat the last row of ``x [k, ...]`` up to ``n`` rows (fills the last, partial grid row)."""
    if x is None or x.shape[0] >= n:
        return x
    return torch.cat([x, x[-1:].expand(n - x.shape[0], *x.shape[1:])])


def content_motion_grid(generator, rows: int, cols: int, frames: int | None = None,
                        cond: torch.Tensor | None = None, seed: int | torch.Generator = 0,
                        action: torch.Tensor | int | None = None) -> torch.Tensor:
    """A rows x cols grid of clips: every row shares one content code, every column one motion.

    Row ``r`` uses content code ``r``; column ``c`` uses motion noise ``c`` (and, for models
    with an action code, action ``c % num_actions`` unless ``action`` is given), so reading
    across a row shows one appearance in different motions and reading down a column one
    motion in different appearances. Call it on an eval-mode generator.

    Args:
        generator: the bare :class:`~videosynth.models.mocogan.MoCoGANGenerator`.
        rows, cols: grid size.
        frames: clip length (default: the training length; longer rolls the motion out).
        cond: condition embedding ``[D]``, ``[1, D]`` (all clips), ``[rows, D]`` (per row) or
            ``[rows * cols, D]``; required when the generator is conditional.
        seed: an int or a ``torch.Generator`` for the codes.
        action: int (all clips) or int64 ``[rows * cols]``.

    Returns:
        ``float32 [rows * cols, C, T, H, W]`` in ``[-1, 1]``, row-major (clip ``r * cols + c``);
        ``videosynth.io.write_grid(path, grid, nrow=cols)`` lays it out.
    """
    g = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    n = rows * cols
    frames = frames or generator.cfg.frames
    content = generator.sample_content(rows, g)  # (rows, Dc)
    noise = generator.sample_motion_noise(cols, frames, g)  # (cols, T, E)
    z_content = content.repeat_interleave(cols, dim=0)  # (rows*cols, Dc): clip r*cols+c -> row r
    z_noise = noise.repeat(rows, 1, 1)  # (rows*cols, T, E): clip r*cols+c -> column c
    cond = _broadcast_rows(cond, rows, cols, generator.device)
    if generator.cfg.num_actions > 0 and action is None:
        action = torch.arange(cols).repeat(rows) % generator.cfg.num_actions  # (rows*cols,)
    action = _broadcast_actions(action, n, generator.device)
    with torch.no_grad():
        video, _ = generator(n, frames, cond=cond, z_content=z_content, z_motion_noise=z_noise, action=action)
    return video  # (rows*cols, C, T, H, W)


def content_interpolation(generator, rows: int, steps: int, frames: int | None = None,
                          cond: torch.Tensor | None = None, seed: int | torch.Generator = 0,
                          action: torch.Tensor | int | None = None) -> torch.Tensor:
    """Rows of ``steps`` clips moving from one content code to another under one fixed motion.

    Row ``r`` draws two content codes and one motion noise and interpolates the content
    spherically in ``steps`` clips, so only appearance changes along the row. Arguments as in
    :func:`content_motion_grid` (``cond`` / ``action``: one, per row or per clip).

    Returns:
        ``float32 [rows * steps, C, T, H, W]`` in ``[-1, 1]``, row-major.
    """
    g = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    n = rows * steps
    frames = frames or generator.cfg.frames
    ends = generator.sample_content(2 * rows, g).reshape(rows, 2, -1)  # (rows, 2, Dc)
    noise = generator.sample_motion_noise(rows, frames, g)  # (rows, T, E)
    t = torch.linspace(0, 1, steps, device=ends.device)  # (steps,)
    z_content = torch.cat([_slerp(e[0], e[1], t) for e in ends])  # (rows*steps, Dc)
    z_noise = noise.repeat_interleave(steps, dim=0)  # (rows*steps, T, E): one motion per row
    cond = _broadcast_rows(cond, rows, steps, generator.device)
    if generator.cfg.num_actions > 0 and action is None:
        action = (torch.arange(rows) % generator.cfg.num_actions).repeat_interleave(steps)  # (rows*steps,)
    action = _broadcast_actions(action, n, generator.device)
    with torch.no_grad():
        video, _ = generator(n, frames, cond=cond, z_content=z_content, z_motion_noise=z_noise, action=action)
    return video  # (rows*steps, C, T, H, W)


# ----------------------------------------------------------------------------- image-to-video

# Inversion of observed frames: a fixed number of Adam steps on the codes, from the best of a few
# random draws, so the result depends on the seed alone and costs the same every time.
INVERT_STEPS = 200
INVERT_LR = 0.1
INVERT_CANDIDATES = 16  # random codes tried per clip; the one whose frames are closest starts the descent
INVERT_PRIOR = 1e-3  # weight of the N(0, I) prior on the codes: keeps them where G was trained, so motion follows


def _opening(net, z_content: torch.Tensor, eps: torch.Tensor, cond: torch.Tensor | None,
             action: torch.Tensor | None, cond_frames: torch.Tensor | None) -> torch.Tensor:
    """The first ``k`` frames of ``G``: ``z_C [n, Dc]``, ``eps(1..k) [n, k, E]`` -> ``float32 [n, C, k, H, W]``."""
    sound = None if cond_frames is None else cond_frames[:, :eps.shape[1]]  # (n, k | 1, A): the sound under them
    z_motion = net.motion_codes(eps, cond, action, sound)  # (n, k, Dm)
    return net.render(z_content, z_motion, cond, action, sound)  # (n, C, k, H, W)


def _repeat(x: torch.Tensor | None, k: int) -> torch.Tensor | None:
    return None if x is None else x.repeat_interleave(k, dim=0)


def invert_frames(net, observed: torch.Tensor, noise: torch.Generator | None, steps: int = INVERT_STEPS,
                  cond: torch.Tensor | None = None, action: torch.Tensor | None = None,
                  cond_frames: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The codes whose first ``k`` frames ``G`` renders closest to ``observed``: ``(z_C [n, Dc], eps(1..k) [n, k, E])``.

    GAN inversion by optimisation (as in Zhu et al. 2016, "Generative Visual Manipulation on the
    Natural Image Manifold"): ``INVERT_CANDIDATES`` random codes per clip are drawn from ``noise``,
    the one whose frames are closest starts ``steps`` Adam steps on the pixel MSE plus a small
    Gaussian prior. The content code and the motion noise of the observed steps are all free: where
    the object stands in frame 1 is the motion cell's first output. ``net`` is a bare, eval-mode
    :class:`~videosynth.models.mocogan.MoCoGANGenerator` whose weights are not inference tensors.

    Args:
        observed: ``float32 [n, C, k, H, W]`` in ``[-1, 1]``, the frames each clip should start with.
        cond, action, cond_frames: the clips' condition ``[n, D]``, action codes ``int64 [n]`` and
            per-frame sound features ``[n, T, A]``, as the generator takes them.
    """
    n, k, tries = observed.shape[0], observed.shape[2], INVERT_CANDIDATES
    with torch.inference_mode(False), torch.enable_grad():
        # clones made outside inference mode: autograd may save them
        target = observed.detach().clone().float().to(net.device)  # (n, C, k, H, W)
        cond, action, cond_frames = (None if x is None else x.clone() for x in (cond, action, cond_frames))
        z = net.sample_content(n * tries, noise)  # (n*tries, Dc)
        eps = net.sample_motion_noise(n * tries, k, noise)  # (n*tries, k, E)
        with torch.no_grad():
            drawn = _opening(net, z, eps, _repeat(cond, tries), _repeat(action, tries), _repeat(cond_frames, tries))
            err = (drawn - _repeat(target, tries)).pow(2).flatten(1).mean(1).reshape(n, tries)  # (n, tries)
            best = err.argmin(1) + torch.arange(n, device=err.device) * tries  # (n,) rows of the closest draws
        z, eps = z[best].clone().requires_grad_(True), eps[best].clone().requires_grad_(True)  # (n, Dc), (n, k, E)
        opt = torch.optim.Adam([z, eps], lr=INVERT_LR)
        for _ in range(steps):
            made = _opening(net, z, eps, cond, action, cond_frames)  # (n, C, k, H, W)
            per_clip = (made - target).pow(2).flatten(1).mean(1)  # (n,)
            prior = INVERT_PRIOR * (z.pow(2).mean(1) + eps.pow(2).flatten(1).mean(1))  # (n,)
            opt.zero_grad(set_to_none=True)
            (per_clip + prior).sum().backward()  # a sum: each clip's codes get their own gradient
            opt.step()
    return z.detach(), eps.detach()


def continue_frames(net, observed: torch.Tensor, noise: torch.Generator | None, frames: int | None = None,
                    steps: int = INVERT_STEPS, cond: torch.Tensor | None = None, action: torch.Tensor | None = None,
                    cond_frames: torch.Tensor | None = None) -> torch.Tensor:
    """Clips that start from ``observed`` (``float32 [n, C, k, H, W]`` in ``[-1, 1]``; ``k = 1``: image-to-video):
    the content code and the first ``k`` motion steps inverted (:func:`invert_frames`), the motion after
    them drawn from ``noise``.

    Returns ``float32 [n, C, T, H, W]`` in ``[-1, 1]``, ``T`` = ``frames`` (default: the sound's length
    for a sound-driven model, else the training length); frames ``1..k`` are G's renderings of the
    observed ones, not copies.

    Raises:
        ConfigError: more observed frames than the clip holds.
    """
    n, k = observed.shape[0], observed.shape[2]
    if frames is None:
        frames = cond_frames.shape[1] if cond_frames is not None and cond_frames.shape[1] > 1 else net.cfg.frames
    if k > frames:
        raise ConfigError(f"prime_video has {k} frames, more than the {frames} requested")
    z_content, opening = invert_frames(net, observed, noise, steps, cond, action, cond_frames)
    later = net.sample_motion_noise(n, frames - k, noise)  # (n, T-k, E)
    z_noise = torch.cat([opening, later], dim=1)  # (n, T, E)
    with torch.no_grad():
        video, _ = net(n, frames, cond=cond, z_content=z_content, z_motion_noise=z_noise, action=action,
                       cond_frames=cond_frames)
    return video  # (n, C, T, H, W)


GRIDS = ("content-motion",)


@torch.inference_mode()
def sample_mocogan(generator: Conditioned, n: int, noise: torch.Generator, labels: torch.Tensor | None = None,
                   captions: list[str] | None = None, frames: int | None = None, grid: str | None = None,
                   interpolate: int | None = None, action: int | torch.Tensor | None = None,
                   audio: torch.Tensor | None = None, prime_video: torch.Tensor | None = None,
                   invert_steps: int = INVERT_STEPS) -> torch.Tensor:
    """``n`` MoCoGAN clips; ``frames`` may exceed the training length (the motion cell rolls on).

    ``audio`` (float32 ``[n, S]``) drives a sound-conditioned generator: the clips last as many
    frames as the sound (``frames``, when given, must agree).

    Layouts (row-major, ``cols`` clips per row): ``grid="content-motion"`` gives
    :func:`content_motion_grid` with ``cols = ceil(sqrt(n))``, so it lines up with a square grid
    writer; ``interpolate=STEPS`` gives :func:`content_interpolation` with ``STEPS`` clips per
    row. ``action``: int or int64 ``[n]`` for models with an action code (default: uniform, or
    per grid column). ``prime_video`` (``float32 [n, C, k, H, W]`` in ``[-1, 1]``) gives the frames
    every clip starts from (:func:`continue_frames`, ``invert_steps`` Adam steps of inversion; ``k = 1``
    animates one frame).

    Raises:
        ConfigError: an unknown grid name, a grid with observed frames, more observed frames than
            the clip holds, or labels / captions that do not match ``n``.
    """
    was_training = generator.training
    generator.eval()
    try:
        net = generator.net
        labels, captions = null_inputs(n, labels, captions)
        c = generator.condition(labels.to(net.device), captions, n, audio=audio)
        cond = None if c is None else c.pooled  # (n, D) or None
        sound = None if c is None else c.frames  # (n, T, A) per-frame sound features, or None
        if sound is not None and (grid is not None or interpolate):
            raise ConfigError("content/motion grids and interpolation are not available for sound-driven models yet")
        if sound is not None and audio is not None and frames is not None and frames != sound.shape[1]:
            raise ConfigError(f"the sound lasts {sound.shape[1]} frames but frames={frames} were asked for")
        if isinstance(action, int):
            action = torch.full((n,), action, dtype=torch.long)
        if prime_video is not None and (grid is not None or interpolate):
            raise ConfigError("observed frames fix every clip's content: give --prime or --grid / --interpolate, "
                              "not both")
        if grid is not None or interpolate:
            if interpolate:
                cols = int(interpolate)
            elif grid == "content-motion":
                cols = math.ceil(math.sqrt(n))
            else:
                raise ConfigError(f"unknown mocogan grid '{grid}' (valid: {', '.join(GRIDS)})")
            rows = math.ceil(n / cols)
            layout = content_interpolation if interpolate else content_motion_grid
            return layout(net, rows, cols, frames, _pad_rows(cond, rows * cols), noise,
                          _pad_rows(action, rows * cols))[:n]
        if action is None:
            action = net.sample_actions(n, noise)
        if action is not None:
            action = action.to(net.device)
        if prime_video is not None:
            return continue_frames(net, prime_video, noise, frames, invert_steps, cond, action, sound)
        video, _ = net(n, frames, cond=cond, generator=noise, action=action, cond_frames=sound)
        return video
    finally:
        generator.train(was_training)
