"""What each config key means, read from the models themselves: a field's ``description=``, else the
``#:`` comment lines right above it in its class (the house's way of documenting a field).

Reading the comments from the source keeps one place to document a key: the JSON schema
(:mod:`orchestrator.config.schema_export`) and the commented example
(:mod:`orchestrator.config.example`) are generated from it, so neither can drift from the code.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from functools import cache

from pydantic import BaseModel

_FIELD = re.compile(r"^    (\w+)\s*:")
_DOC = re.compile(r"^    #: ?(.*)$")


def field_docs(model: type[BaseModel]) -> dict[str, str]:
    """Field name -> its documentation (description, else ``#:`` comments), for fields that have one."""
    docs = dict(_comment_docs(model))
    for name, info in model.model_fields.items():
        if info.description:
            docs[name] = info.description
    return docs


def model_doc(model: type[BaseModel]) -> str:
    """The first paragraph of the class docstring, on one line ('' without one)."""
    doc = inspect.getdoc(model) or ""
    if model.__doc__ is None or doc == inspect.getdoc(BaseModel):
        return ""
    return " ".join(doc.split("\n\n", 1)[0].split())


def models_in(annotation: object) -> list[type[BaseModel]]:
    """The pydantic models an annotation refers to (``X``, ``X | None``, ``list[X]``, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += models_in(arg)
    return found


def is_list(annotation: object) -> bool:
    """Whether the annotation is a list (possibly ``| None``)."""
    if typing.get_origin(annotation) is list:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(is_list(arg) for arg in typing.get_args(annotation))
    return False


@cache
def _comment_docs(model: type[BaseModel]) -> tuple[tuple[str, str], ...]:
    docs: list[tuple[str, str]] = []
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            lines = inspect.getsource(cls).splitlines()
        except (OSError, TypeError):  # no source (a frozen build): the descriptions still count
            continue
        pending: list[str] = []
        for line in lines:
            doc, field = _DOC.match(line), _FIELD.match(line)
            if doc:
                pending.append(doc.group(1).strip())
            elif field and pending:
                docs.append((field.group(1), " ".join(pending)))
                pending = []
            elif line.strip():  # a field without `#:` or any other line ends the comment block
                pending = []
    return tuple(docs)
