"""Progress bars for long work (sampling, evaluation, encoding): tqdm on a terminal, silent otherwise.

A bar is shown only when asked for (``enabled``, i.e. no ``--no-progress``) *and* stderr is a
terminal, so logs, pipes and CI output stay free of carriage-return noise.
"""

from __future__ import annotations

import sys


def progress_bar(total: int | None, desc: str, unit: str = "clip", enabled: bool = True):
    """A ``tqdm`` bar on stderr (``update(n)``, ``close()``, usable as a context manager).

    Every update is drawn (updates come per batch, so they are few): a fast job still shows
    each step, the last one included, before the bar is cleared.
    """
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True, file=sys.stderr,
                mininterval=0, disable=not (enabled and sys.stderr.isatty()))
