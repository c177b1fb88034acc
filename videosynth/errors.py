"""Typed errors. Every error a user can cause is one of these.

Each message names the file or key at fault and says what to do. The CLI
prints ``error: <message>`` on one line and exits with code 2; tracebacks are
shown only with ``--debug`` or for real bugs (any other exception). A training
stopped by a signal exits 130 (SIGINT) or 143 (SIGTERM), the shell's 128 + signal.
"""

# A message longer than this is cut with an ellipsis: it may quote a value from a damaged or hostile
# file, and one line on a terminal or in a log must stay a line.
MAX_MESSAGE_CHARS = 500


def one_line(message: object) -> str:
    """``message`` on one line (newlines and runs of spaces folded), cut to ``MAX_MESSAGE_CHARS`` with ``...``."""
    text = " ".join(str(message)[: MAX_MESSAGE_CHARS * 4].split())
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 3].rstrip() + "..."
    return text


class VideoSynthError(Exception):
    """Base class for user-facing errors (bad input, bad config, missing files)."""


class ConfigError(VideoSynthError):
    """An unknown, mistyped or invalid configuration key or value."""


class DataError(VideoSynthError):
    """Unreadable, broken or unsuitable video data."""


class CheckpointError(VideoSynthError):
    """A missing, corrupt or mismatched checkpoint or run directory."""


class MissingWeightsError(VideoSynthError):
    """Pretrained weights (detectors, text encoders) not found on local disk."""


class Interrupted(VideoSynthError):
    """Training stopped by SIGINT / SIGTERM after saving a checkpoint (not a finished run).

    ``exit_code`` is the shell convention 128 + signal number: 130 for SIGINT, 143 for SIGTERM.
    """

    def __init__(self, message: str, exit_code: int, step: int):
        super().__init__(message)
        self.exit_code = exit_code
        self.step = step
