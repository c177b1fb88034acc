"""Sub-commands of the ``videosynth`` CLI; each module exposes ``register(subparsers)``."""
