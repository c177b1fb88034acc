"""The interface every dataset the loop, the objectives and the metrics read offers.

Each dataset (built-in procedural data, video folders, token and latent caches) extends
:class:`ClipDataset`, so what it offers is typed, with stated defaults, and callers read it
without probing (no ``hasattr``):

- ``class_names``: label ``i`` is ``class_names[i]`` (empty: no classes);
- ``captions()``: the distinct captions of the items (empty: none);
- ``audio_rate`` (Hz) of the ``"audio"`` entry of each item (0: no sound) and the clips' ``fps``;
- ``has_factors`` and ``factors(index)``: the ground-truth factors of an item (built-in data only);
- ``set_epoch(epoch)``: called by the loop before each epoch (datasets that draw per epoch).
"""

from __future__ import annotations

import numpy as np
import torch

from videosynth.errors import DataError


class ClipDataset(torch.utils.data.Dataset):
    """Base of every dataset: the interface above with its defaults (see the module docstring)."""

    class_names: list[str] = []
    audio_rate: int = 0
    fps: float = 0.0
    has_factors: bool = False

    def captions(self) -> list[str]:
        return []

    def factors(self, index: int) -> dict[str, np.ndarray]:
        """Ground-truth factors of item ``index`` (positions, velocities, classes...).

        Raises:
            DataError: the dataset has none (only the built-in procedural data do).
        """
        raise DataError(f"{type(self).__name__} has no ground-truth factors (only the built-in datasets do)")

    def set_epoch(self, epoch: int) -> None:
        pass
