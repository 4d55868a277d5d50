"""Every public name has a docstring and a place in the API reference."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

import flask_email_cancel

DOCS = Path(__file__).resolve().parent.parent / "docs"
API = (DOCS / "api.rst").read_text(encoding="utf-8")

# Modules the reference documents whole (``automodule`` with ``:members:``,
# which takes their ``__all__``).
WHOLE = ["exceptions", "schemas", "openapi", "cli"]


def _directive_targets() -> set[str]:
    found = set()
    for match in re.finditer(r"^\.\. auto(?:class|data|function|exception):: (\S+)", API, re.M):
        found.add(match.group(1).split(".")[-1])
    for match in re.finditer(r"^\.\. automodule:: (\S+)\n((?:    .*\n)*)", API, re.M):
        members = re.search(r":members: (.+)", match.group(2))
        if members:
            found.update(name.strip() for name in members.group(1).split(","))
        elif match.group(1).startswith("flask_email_cancel."):
            found.update(importlib.import_module(match.group(1)).__all__)
    return found


def _submodule_names() -> list[str]:
    package = Path(flask_email_cancel.__file__).parent
    return sorted({p.stem for p in package.glob("*.py")} - {"__init__", *WHOLE})


def _public() -> list[tuple[ModuleType, str]]:
    names = [(flask_email_cancel, name) for name in flask_email_cancel.__all__]
    for module_name in (*WHOLE, *_submodule_names()):
        module = importlib.import_module(f"flask_email_cancel.{module_name}")
        names += [(module, name) for name in module.__all__]
    return names


def test_every_whole_module_is_in_the_reference() -> None:
    for module_name in WHOLE:
        assert f".. automodule:: flask_email_cancel.{module_name}\n    :members:\n" in API


@pytest.mark.parametrize("name", flask_email_cancel.__all__)
def test_every_package_name_has_a_directive(name: str) -> None:
    assert name in _directive_targets(), f"{name} is missing from docs/api.rst"


@pytest.mark.parametrize(
    ("module", "name"), _public(), ids=[f"{m.__name__}.{n}" for m, n in _public()]
)
def test_every_public_name_has_a_docstring(module: ModuleType, name: str) -> None:
    obj = getattr(module, name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        own = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
        assert (own or "").strip(), f"{name} has no docstring"
        return
    if getattr(obj, "__doc__", None) and type(obj).__doc__ != obj.__doc__:
        return  # an object carrying its own documentation, such as a signal
    # Data: a string literal right after the assignment, as autodoc reads it.
    pycode = pytest.importorskip("sphinx.pycode")
    for candidate in (module, *(importlib.import_module(m) for m in _submodules())):
        if name in getattr(candidate, "__all__", ()) and candidate is not flask_email_cancel:
            docs = pycode.ModuleAnalyzer.for_module(candidate.__name__).find_attr_docs()
            if ("", name) in docs:
                return
    pytest.fail(f"{module.__name__}.{name} has no docstring")


def test_every_submodule_name_is_in_the_reference() -> None:
    targets = _directive_targets()
    for module_name in _submodule_names():
        module = importlib.import_module(f"flask_email_cancel.{module_name}")
        for name in module.__all__:
            assert name in targets, f"flask_email_cancel.{module_name}.{name} is not in api.rst"


def _submodules() -> list[str]:
    package = Path(flask_email_cancel.__file__).parent
    return [f"flask_email_cancel.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"]


def test_the_http_reference_quotes_the_library_verbatim() -> None:
    from flask_email_cancel import exceptions

    text = (DOCS / "http.rst").read_text(encoding="utf-8")
    quoted = set(re.findall(r'\{"id": "", "message": "([^"]*)"', text))
    answered = {
        cls.description
        for cls in vars(exceptions).values()
        if inspect.isclass(cls)
        and issubclass(cls, exceptions.EmailCancelError)
        and isinstance(getattr(cls, "description", None), str)
    }
    success = re.compile(r"^Cancelled \d+ Email entries of the EmailRequest with ID : \d+$")
    # OPTIONS answers an empty message.
    assert {m for m in quoted if not success.match(m)} <= answered | {""}
    # Every answer the API gives is quoted.
    assert answered <= quoted
