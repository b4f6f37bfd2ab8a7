"""Docs kept honest (STYLE §15): docs/reference.md is what docs/generate.py prints from the code,
so a CLI command, error code, instrument setting or environment variable cannot go undocumented."""
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_is_current():
    gen = _generator()
    committed = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    assert committed == gen.render(), "docs/reference.md is stale: run .venv/bin/python docs/generate.py"


def test_every_environment_variable_is_documented():
    gen = _generator()
    used = set()
    for folder in ("assess", "web", "bench", "kernels", ".ci", "tests"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".pyx", "", ".sh"):
                used |= set(re.findall(r"\bASSESS_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8", errors="ignore")))
    missing = sorted(used - set(gen.ENVIRONMENT))
    assert not missing, f"document these in docs/generate.py ENVIRONMENT: {missing}"
