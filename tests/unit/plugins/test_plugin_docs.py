"""The docs and the tests are checked against the hook registry (as datasette does)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from ctdbcore import hookspecs
from ctdbcore.hookspecs import EVENTS, OTHER_HOOKS
from ctdbcore.plugins import make_plugin_manager

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "plugins.md"


def hook_names() -> list[str]:
    pm = make_plugin_manager(load_entrypoints=False)
    return sorted(name for name in dir(pm.hook) if name.startswith("ctdb_"))


def test_registry_matches_events():
    assert hook_names() == sorted([*(f"ctdb_{e}" for e in EVENTS), *OTHER_HOOKS])


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_has_heading_and_signature_in_docs(hook):
    text = DOC.read_text()
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert re.search(rf"^### {hook}\s*$", text, re.M), f"no '### {hook}' heading in {DOC}"
    assert f"{hook}({params})" in text, f"no signature {hook}({params}) in {DOC}"


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_has_a_test(hook):
    tests = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    assert f"def test_hook_{hook}(" in tests


@pytest.mark.parametrize("hook", hook_names())
def test_every_hookspec_docstring_has_params_return_and_example(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook))
    for param in inspect.signature(getattr(hookspecs, hook)).parameters:
        assert f":param {param}:" in doc
    assert ":return:" in doc
    assert "@hookimpl" in doc and f"def {hook}(" in doc
