"""Model families: one architecture per file (``videogan``, ``mocogan``, ...).

Import the family you need, e.g. ``from videosynth.models.videogan import VideoGAN, PRESETS``;
nothing heavy is imported here.
"""
