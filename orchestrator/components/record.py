"""Components as JSON: how discovery's cache and a baseline's ``components.json`` store them.

The JSON is read back from disk (the state store, a baseline directory), so it is an edge: it is
validated by a strict model (unknown keys, bad names, relative paths refused) like config.yaml is.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.config.values import UnitName
from orchestrator.errors import StateError
from orchestrator.model import Component, HttpCheck

_Abs = Annotated[str, Field(pattern=r"^/[^\x00]*$", max_length=4096)]
MAX_COMPONENTS = 4096


class _Http(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str = Field(pattern=r"^http://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?/")
    expect_status: int = Field(ge=100, le=599)


class ComponentRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")
    vital: bool
    units: list[UnitName] = Field(max_length=64)
    config_paths: list[_Abs] = Field(max_length=4096)
    unit_paths: list[_Abs] = Field(max_length=256)
    data_paths: list[_Abs] = Field(max_length=256)
    config_test: list[Annotated[str, Field(max_length=4096)]] = Field(max_length=64)
    http: list[_Http] = Field(max_length=64)
    jsonl_logs: list[_Abs] = Field(max_length=256)
    packages: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9+.-]{0,127}$")]] = Field(max_length=512)
    log_paths: list[_Abs] = Field(max_length=256)
    fstab: list[_Abs] = Field(max_length=16)
    origin: str = Field(pattern=r"^[a-z,]{1,64}$")
    user: str = Field(max_length=64)
    group: str = Field(max_length=64)
    writable_paths: list[_Abs] = Field(max_length=256)
    ports: list[Annotated[int, Field(gt=0, lt=65536)]] = Field(max_length=256)
    sockets: list[UnitName] = Field(max_length=64)


def to_json(comp: Component) -> dict[str, Any]:
    return {
        "name": comp.name, "vital": comp.vital, "units": list(comp.units),
        "config_paths": list(comp.config_paths), "unit_paths": list(comp.unit_paths),
        "data_paths": list(comp.data_paths), "config_test": list(comp.config_test),
        "http": [{"url": h.url, "expect_status": h.expect_status} for h in comp.http],
        "jsonl_logs": list(comp.jsonl_logs), "packages": list(comp.packages),
        "log_paths": list(comp.log_paths), "fstab": list(comp.fstab), "origin": comp.origin,
        "user": comp.user, "group": comp.group, "writable_paths": list(comp.writable_paths),
        "ports": list(comp.ports), "sockets": list(comp.sockets),
    }


def from_json(data: Any, *, source: str) -> list[Component]:
    """Components from a JSON list written by :func:`to_json`.

    Raises:
        StateError: ``data`` is not such a list (``source`` names the file or store it came from).
    """
    if not isinstance(data, list) or len(data) > MAX_COMPONENTS:
        raise StateError(f"{source}: components must be a list of at most {MAX_COMPONENTS}")
    try:
        records = [ComponentRecord.model_validate(item) for item in data]
    except ValidationError as exc:
        raise StateError(f"{source}: invalid component record: {exc.errors()[0]['msg']} at "
                         f"{'.'.join(map(str, exc.errors()[0]['loc']))}",
                         remedy="delete it; discovery or the next baseline writes it again") from exc
    return [Component(
        name=r.name, vital=r.vital, units=tuple(r.units), config_paths=tuple(r.config_paths),
        unit_paths=tuple(r.unit_paths), data_paths=tuple(r.data_paths),
        config_test=tuple(r.config_test),
        http=tuple(HttpCheck(h.url, h.expect_status) for h in r.http),
        jsonl_logs=tuple(r.jsonl_logs), packages=tuple(r.packages), log_paths=tuple(r.log_paths),
        fstab=tuple(r.fstab), origin=r.origin, user=r.user, group=r.group,
        writable_paths=tuple(r.writable_paths), ports=tuple(r.ports), sockets=tuple(r.sockets),
    ) for r in records]
