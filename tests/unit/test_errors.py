"""The error tree: one root, documented classes, and a module docstring that draws all of it."""

from __future__ import annotations

import inspect

import pytest

from orchestrator import errors

ERROR_CLASSES = [
    cls for _, cls in inspect.getmembers(errors, inspect.isclass)
    if cls.__module__ == errors.__name__
]


def test_module_defines_errors() -> None:
    assert len(ERROR_CLASSES) > 10


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_derives_from_the_root(cls: type) -> None:
    assert issubclass(cls, errors.VmRepairError)


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_is_named_and_documented(cls: type) -> None:
    assert cls.__name__.endswith("Error")
    assert cls.__doc__ and cls.__doc__.strip()


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_docstring_tree_mentions_every_class(cls: type) -> None:
    assert errors.__doc__ is not None
    assert cls.__name__ in errors.__doc__.split()


def test_error_carries_message_remedy_and_context() -> None:
    exc = errors.ImageBuildError("step x failed", step="x", log="/tmp/log", remedy="fix it")
    assert str(exc) == "step x failed"
    assert (exc.step, exc.log, exc.remedy) == ("x", "/tmp/log", "fix it")
    assert exc.exit_code == errors.ImageError.exit_code


def test_exit_codes_differ_per_seam() -> None:
    seams = [errors.ConfigError, errors.ImageError, errors.HypervisorError,
             errors.TransportError, errors.StateError]
    codes = [cls.exit_code for cls in seams]
    assert len(set(codes)) == len(codes)
    assert errors.VmRepairError.exit_code not in codes
