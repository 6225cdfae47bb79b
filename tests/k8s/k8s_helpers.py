"""Shared helpers for tests/k8s: load tools/k8s_check.py and demand the tools it needs."""

import importlib
import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def k8s_check():
    """tools/k8s_check.py as a module (tools/ is not a package)."""
    if "k8s_check" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "k8s_check", REPO_ROOT / "tools" / "k8s_check.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["k8s_check"] = module
        spec.loader.exec_module(module)
    return sys.modules["k8s_check"]


def need_module(name: str, pip_name: str) -> None:
    """Fail (not skip) with a clear message: CI installs every tool from the project files."""
    try:
        importlib.import_module(name)
    except ImportError:
        pytest.fail(f"{pip_name} is not installed; it is a dev dependency "
                    f"(pip install -e '.[dev]' or pip install {pip_name})", pytrace=False)


def need_kubectl() -> None:
    """Fail with a clear message when kubectl (which renders kustomize) is missing."""
    if not (shutil.which("kubectl") or Path("/usr/bin/kubectl").exists()):
        pytest.fail("kubectl is not installed: `kubectl kustomize` renders k8s/",
                    pytrace=False)


def need_checkov() -> str:
    """The checkov binary, or a clear failure naming `make k8s-tools`."""
    try:
        return k8s_check().checkov()
    except k8s_check().ToolMissing as exc:
        pytest.fail(str(exc), pytrace=False)


_RENDERED: dict = {}


def rendered(overlay: str) -> list[dict]:
    """The rendered overlay (cached for the session)."""
    need_kubectl()
    if overlay not in _RENDERED:
        _RENDERED[overlay] = k8s_check().render(overlay)
    return _RENDERED[overlay]
