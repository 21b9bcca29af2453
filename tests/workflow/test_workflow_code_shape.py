"""The shape of the code itself: function and module sizes (``tools/check_sizes.py``)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from workflow_helpers import REPO


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_no_long_function_or_module_in_src() -> None:
    """No function over 60 lines and no module over 400 in src/, except the listed files."""
    sizes = _tool("check_sizes")
    violations, stale = sizes.check_tree(REPO / "src")
    assert not violations, "\n".join(map(str, violations))
    assert not stale, f"ALLOWED entries no longer needed, remove them: {stale}"


def test_size_check_finds_long_functions_and_modules(tmp_path: Path) -> None:
    sizes = _tool("check_sizes")
    pkg = tmp_path / "src" / "pkg"
    pkg.mkdir(parents=True)
    body = "".join(f"        x{i} = {i}\n" for i in range(60))
    (pkg / "long.py").write_text(f"class A:\n    def method(self):\n{body}        return 0\n")
    (pkg / "fits.py").write_text("def f():\n" + "\n".join(["    pass"] * 59) + "\n")
    (pkg / "big.py").write_text("\n".join(f"X{i} = {i}" for i in range(401)) + "\n")
    found = {(v.path, v.name, v.length) for v in sizes.check_tree(tmp_path / "src")[0]}
    assert found == {("src/pkg/long.py", "A.method", 62), ("src/pkg/big.py", "module", 401)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "check_sizes.py"), str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "A.method has 62 lines (limit 60)" in proc.stdout
