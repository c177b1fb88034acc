"""Datasets and transforms: video folders, built-in procedural data, the dataset factory.

Items are ``{"video": float32 [3, T, H, W] in [-1, 1], "label": int64 scalar (-1 = none),
"caption": str ("" = none)}``; batches after default collate are
``{"video": [B, 3, T, H, W], "label": [B], "caption": list[str]}``.
"""

from videosynth.data.factory import DATASETS, DataConfig, build_dataset
from videosynth.data.synthetic import BouncingShapes, MovingDigits
from videosynth.data.transforms import ClipTransform, resize_crop, to_float, to_uint8
from videosynth.data.video_folder import VideoFolder

__all__ = [
    "DATASETS", "DataConfig", "build_dataset", "BouncingShapes", "MovingDigits",
    "ClipTransform", "resize_crop", "to_float", "to_uint8", "VideoFolder",
]
