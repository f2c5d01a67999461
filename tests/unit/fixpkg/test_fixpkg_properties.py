"""Property tests of the fix-package path checks and loader (issue 13).

- the lexical check never accepts a path outside the allowed roots, whatever the path (``..``, ``//``,
  NUL, newlines, unicode, bidi overrides, very long, not even a string) and never raises anything but
  FixPackageError;
- with symlinks planted on a scratch filesystem, a path the check accepts is written (and removed) by
  the agent only where the path says: never through a symlink, never outside the root;
- FixPackage.load of any document (mutations of a valid package.json, arbitrary JSON, arbitrary bytes)
  returns a package or raises FixPackageError, nothing else.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import posixpath
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.agent.remote import vmrepair_agent
from orchestrator.errors import FixPackageError
from orchestrator.fixpkg import FixPackage
from orchestrator.fixpkg.ops import op_from_dict
from orchestrator.fixpkg.paths import check_allowed, normalise_path
from tests.unit.fixpkg.test_fixpkg_package import _package

ROOTS = ("/etc", "/etc/app", "/var/log", "/srv/data", "/opt/x y", "/é")
#: Components chosen to break naive checks, mixed with ordinary names.
TRICKY = ("..", ".", "", "etc", "app", "log", "var", "etcx", "app.conf", "x\0y", "a\nb", "\r", "é",
          "\u202e", "\udcff", " ", "...", "-", "a" * 255, "..\\", "~")
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

components = st.one_of(st.sampled_from(TRICKY), st.text(min_size=0, max_size=12))
tricky_paths = st.builds(
    lambda lead, parts, sep: lead + sep.join(parts),
    st.sampled_from(("/", "//", "", "///", "./")),
    st.lists(components, max_size=10),
    st.sampled_from(("/", "//")),
)
separators = st.sampled_from(("/", "//", "/./", "", "/../"))
rooted_parts = st.lists(st.one_of(st.sampled_from(("app", "app.conf", "..", ".", "", "é", "x y")),
                                  st.text(st.characters(blacklist_characters="/\0\n\r"), max_size=8)),
                        max_size=4)
#: Paths that start like a root (or almost like one).
rooted_paths = st.builds(
    lambda start, sep, parts: start + sep + "/".join(parts),
    st.sampled_from((*ROOTS, "/et", "/etc/", "//etc", "/etc/./app", "/var", "/srv", "/opt/x", "/e")),
    separators, rooted_parts,
)
long_paths = st.text(min_size=4000, max_size=4200).map("/etc/".__add__)
paths = st.one_of(rooted_paths, rooted_paths, tricky_paths, st.text(max_size=64), long_paths)


def _is_inside(path: str, roots: tuple[str, ...]) -> bool:
    """An independent oracle: ``path``'s components start with a root's components, and are more."""
    parts = [p for p in path.split("/") if p]
    for root in roots:
        prefix = [p for p in root.split("/") if p]
        if len(parts) > len(prefix) and parts[: len(prefix)] == prefix:
            return True
    return False


@st.composite
def path_and_roots(draw: st.DrawFn) -> tuple[str, tuple[str, ...]]:
    """Roots, and a path that half the time starts with one of them (else anything)."""
    roots = tuple(draw(st.lists(st.sampled_from(ROOTS), min_size=0, max_size=3)))
    if roots and draw(st.booleans()):
        return draw(st.sampled_from(roots)) + draw(separators) + "/".join(draw(rooted_parts)), roots
    return draw(paths), roots


@SETTINGS
@given(case=path_and_roots())
def test_check_allowed_never_accepts_a_path_outside_the_roots(case: tuple[str, tuple[str, ...]]) -> None:
    path, roots = case
    try:
        canonical = check_allowed(path, roots)
    except FixPackageError as exc:
        assert exc.message   # refused, with a reason
        return
    parts = canonical.split("/")
    assert canonical.startswith("/") and "" not in parts[1:] and "." not in parts and ".." not in parts
    assert not any(ch in canonical for ch in "\0\n\r")
    assert ".." not in path.split("/")    # traversal is refused, never collapsed
    assert normalise_path(canonical) == canonical == "/" + posixpath.normpath(path).lstrip("/")
    assert _is_inside(canonical, roots), (path, roots)


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(st.none(), st.integers(), st.binary(max_size=20), st.lists(st.text(max_size=5)),
                       st.floats(), st.booleans()))
def test_a_path_that_is_not_a_string_is_refused_cleanly(value: object) -> None:
    try:
        check_allowed(value, ROOTS)  # type: ignore[arg-type]
    except FixPackageError as exc:
        assert "is not a non-empty string" in exc.message
    else:
        raise AssertionError(f"accepted {value!r}")


# ------------------------------------------------------------------ symlinks on a scratch tree

NAMES = ("a", "b", "c", "app.conf")
#: Where a planted symlink points: outside the root, to its parent, to a sibling, or nowhere.
LINK_TARGETS = ("{outside}", "{outside}/a", "..", "../..", "{root}/b", "/", "missing")


def _is_real_dir_below(root: Path, directory: Path) -> bool:
    chain = [directory, *(p for p in directory.parents if root in p.parents)]
    return not any(p.is_symlink() for p in chain) and directory.is_dir()


def _snapshot(directory: Path) -> dict[str, tuple[int, bytes | str | None]]:
    seen: dict[str, tuple[int, bytes | str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st_ = p.lstat()
            body: bytes | str | None = None
            if p.is_symlink():
                body = str(p.readlink())
            elif p.is_file():
                body = p.read_bytes()
            seen[str(p)] = (st_.st_mode, body)
    return seen


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dirs=st.lists(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3), max_size=4),
    links=st.lists(st.tuples(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3),
                             st.sampled_from(LINK_TARGETS)), max_size=4),
    target=st.lists(st.sampled_from((*NAMES, "..", ".", "")), min_size=1, max_size=4),
    remove=st.booleans(),
)
def test_an_accepted_path_is_never_written_through_a_symlink(
    dirs: list[list[str]], links: list[tuple[list[str], str]], target: list[str], remove: bool
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        root, outside, work = base / "root", base / "outside", base / "work"
        for directory in (root, outside / "a", work):
            directory.mkdir(parents=True, exist_ok=True)
        (outside / "a" / "app.conf").write_bytes(b"outside\n")
        for parts in dirs:
            root.joinpath(*parts).mkdir(parents=True, exist_ok=True)
        for parts, to in links:
            link = root.joinpath(*parts)
            # Planted only where the setup itself would not go through an earlier link.
            if _is_real_dir_below(root, link.parent) and not os.path.lexists(link):
                link.symlink_to(to.format(outside=outside, root=root))
        before_outside = _snapshot(outside)
        raw = str(root) + "/" + "/".join(target)
        try:
            path = check_allowed(raw, [str(root)])
        except FixPackageError:
            return
        if remove:
            request = {"op": "remove_file", "args": {"path": path, "expect_sha256": None}}
        else:
            request = {"op": "write_file", "args": {
                "path": path, "data_b64": base64.b64encode(b"new\n").decode(), "mode": 0o600,
                "uid": os.getuid(), "gid": os.getgid(), "expect_sha256": None}}
        answer = vmrepair_agent.handle(request, work_dir=str(work))
        assert _snapshot(outside) == before_outside, (raw, answer)
        if answer["ok"] and not remove:
            # Written exactly where the path says: no component of it is a symlink.
            assert os.path.realpath(path) == path, (raw, answer)
            assert Path(path).read_bytes() == b"new\n"
        if not answer["ok"]:
            assert answer["code"] in vmrepair_agent.CODES and answer["error"]


# ------------------------------------------------------------------ package.json of any shape

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
              st.floats(allow_nan=False), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner,
                                                                         max_size=4)),
    max_leaves=12,
)
KEYS = ("format", "id", "created_at", "reboot_required", "allowed_roots", "issue", "diagnosis",
        "validation", "operations", "operations_sha256", "package_sha256", "diffs")
OP_KEYS = ("op", "path", "sha256", "size", "mode", "uid", "gid", "expect_sha256", "method", "unit", "action")


def _valid_document(directory: Path) -> dict[str, Any]:
    _package().save(directory)
    document: dict[str, Any] = json.loads((directory / "package.json").read_bytes())
    return document


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_mutation_of_package_json_loads_or_raises_fix_package_error(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch) / "pkg"
        document = _valid_document(directory)
        mutated = copy.deepcopy(document)
        for _ in range(data.draw(st.integers(1, 3))):
            where = data.draw(st.sampled_from(("top", "delete", "op", "op-delete", "ops")))
            if where == "top":
                mutated[data.draw(st.sampled_from(KEYS))] = data.draw(json_values)
            elif where == "delete":
                mutated.pop(data.draw(st.sampled_from(KEYS)), None)
            elif where == "ops":
                mutated["operations"] = data.draw(st.lists(json_values, max_size=3))
            elif isinstance(mutated.get("operations"), list) and mutated["operations"]:
                index = data.draw(st.integers(0, len(mutated["operations"]) - 1))
                op = mutated["operations"][index]
                if isinstance(op, dict):
                    key = data.draw(st.sampled_from(OP_KEYS))
                    if where == "op":
                        op[key] = data.draw(json_values)
                    else:
                        op.pop(key, None)
        (directory / "package.json").write_text(json.dumps(mutated))
        try:
            FixPackage.load(directory)
        except FixPackageError as exc:
            assert str(directory / "package.json") in exc.message
        else:
            assert mutated == document or _same_package(mutated, document)


def _same_package(mutated: dict[str, Any], document: dict[str, Any]) -> bool:
    """A mutation that still loads changed nothing (a value replaced by an equal one)."""
    return {k: mutated.get(k) for k in KEYS} == {k: document.get(k) for k in KEYS}


@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())))
def test_arbitrary_bytes_as_package_json_raise_fix_package_error(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "package.json").write_bytes(raw)
        try:
            FixPackage.load(Path(scratch))
        except FixPackageError as exc:
            assert "package.json" in exc.message
        else:
            raise AssertionError(f"loaded {raw!r}")


@settings(max_examples=400, deadline=None)
@given(item=st.one_of(json_values, st.dictionaries(st.sampled_from(OP_KEYS), json_values, max_size=8)))
def test_any_operation_object_builds_or_raises_fix_package_error(item: object) -> None:
    try:
        op_from_dict(item, "operations[0]")
    except FixPackageError as exc:
        assert exc.message.startswith("operations[0]")
