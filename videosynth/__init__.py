"""videosynth: classic video generation (VideoGAN, MoCoGAN, VQ-VAE + Transformer) with honest evaluation."""

__version__ = "0.1.0"

from videosynth.errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    DataError,
    MissingWeightsError,
    VideoSynthError,
)

__all__ = [
    "__version__",
    "VideoSynthError",
    "ConfigError",
    "DataError",
    "CheckpointError",
    "MissingWeightsError",
]
