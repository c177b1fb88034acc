"""Model families: one architecture per file (``videogan``, ``mocogan``, ...).

Import the family you need, e.g. ``from videosynth.models.videogan import build_modules, PRESETS``;
each model file's ``build_modules(cfg, condition)`` builds what its checkpoints hold (the networks
with their conditioners), for the objective that trains them and the pipeline that loads them
alike. Nothing heavy is imported here.
"""
