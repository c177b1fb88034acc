"""The dependency direction is enforced by import-linter (contracts in pyproject.toml, `lint-imports`
in `make test`); this test runs the same contracts under pytest and adds what they do not say: no
import cycles between modules, lazy in-function imports included."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")
ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_are_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    res = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-3000:]
    assert "BROKEN" not in res.stdout


def test_no_import_cycles_between_modules():
    graph = grimp.build_graph("videosynth")
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    colour: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        colour[module] = 1
        for dep in edges.get(module, []):
            if dep == "videosynth":  # the root package's lazy `load` shortcut is the public entry point
                continue
            if colour.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep] if dep in path else [module, dep])
            elif colour.get(dep) is None:
                visit(dep, path + [dep])
        colour[module] = 2

    for module in modules:
        if module not in colour:
            visit(module, [module])
    assert cycles == []


def test_sampling_imports_nothing_from_training():
    graph = grimp.build_graph("videosynth")
    for source in ("videosynth.pipelines", "videosynth.sampling"):
        chains = graph.find_shortest_chains(importer=source, imported="videosynth.train")
        assert not chains, chains


def test_help_imports_neither_matplotlib_nor_tensorboard():
    """Plotting and event files are imported where they are used: `videosynth --help` stays fast."""
    code = ("import sys\nfrom videosynth.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'tensorboard')"
            " or m.startswith('torch.utils.tensorboard')]\nprint('HEAVY', heavy)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "HEAVY []" in res.stdout, res.stdout[-2000:]
    assert "plot" in res.stdout  # the command is registered


def test_every_benchmark_script_imports():
    """Benchmarks run only when asked, so an import they lost (a name moved between sibling scripts) would
    otherwise surface hours into a sitting; importing each one runs none of them."""
    import importlib

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        for script in sorted((ROOT / "benchmarks").glob("*.py")):
            importlib.import_module(script.stem)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
