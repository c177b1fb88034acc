"""videosynth: video generation (GANs, two-stage token priors, latent flow matching) with honest evaluation.

``videosynth.load(run_dir)`` returns the inference pipeline of a trained run::

    pipe = videosynth.load("runs/demo")
    clips = pipe(num=8, label="circle", seed=0)   # float [8, C, T, H, W] in [-1, 1]
"""

from videosynth._version import __version__
from videosynth.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    MissingWeightsError,
    VideoSynthError,
)



def load(run_dir, checkpoint=None, device="auto"):
    """The inference pipeline of a run directory (see :func:`videosynth.train.families.load`)."""
    from videosynth.train.families import load as _load

    return _load(run_dir, checkpoint=checkpoint, device=device)


__all__ = [
    "__version__",
    "load",
    "VideoSynthError",
    "ConfigError",
    "DataError",
    "CheckpointError",
    "MissingWeightsError",
]
