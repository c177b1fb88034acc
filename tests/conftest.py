import os

# one BLAS/OpenMP thread per test process: the test machine has 2 cores, shared
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest
import torch

# the test machine has 2 cores; several test processes may share them
torch.set_num_threads(1)
os.environ.setdefault("VIDEOSYNTH_RUNS", os.path.join(os.environ.get("TMPDIR", "/tmp"), "videosynth-test-runs"))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own user cache dir: nothing leaks between tests or into ~/.cache."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("VIDEOSYNTH_WEIGHTS", raising=False)
    yield
