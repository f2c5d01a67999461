"""The one fake AgentApi of the unit tests: ``FakeAgent``, an in-memory host file system.

What it models
--------------
``fs`` maps an absolute path to a :class:`Node` as ``lstat`` would see it: a regular file (content,
mode, uid, gid), a directory or a symlink (``link``). A path that is not in ``fs`` is missing. ``/``
always exists; putting a path creates its missing parent directories (0755 root). Owner and group
names come from ``names`` (uid/gid -> name, like the host's passwd and group), else the number.

Every AgentApi method works on that tree with the real agent's contract (see
``orchestrator/agent/remote/vmrepair_agent.py``): ``manifest`` does not follow symlinks and walks
directories (``recursive=False``: only the paths themselves); ``read_file`` follows symlinks and refuses
more than ``max_bytes``; ``write_file`` never writes through a symlink and checks ``expect_sha256``
(``None``: no precondition, ``"absent"``: must not exist, a digest: the current content must hash to
it); ``remove_file`` and ``move_file`` take files and symlinks only and never overwrite;
``jsonl_check``/``jsonl_repair`` parse the content (non-JSON lines are bad and get quarantined);
``set_symlink``/``remove_symlink``/``make_dir``/``remove_dir``/``set_meta`` check their ``expect``
(a :class:`PathState`) on the lstat of the path, need the parent to exist, and with ``expect=None``
remove nothing that is already gone; ``rotate_log`` compresses to ``<path>.1.gz`` and truncates;
``big_files`` and ``pack`` walk the tree;
``unpack`` extracts a tar held in ``remote`` (the agent's directory, also what ``fetch`` reads);
``disk_usage`` answers for any existing path (statvfs), from ``disk`` or ``usage_of``; ``deb_meta``
answers from ``debs`` (a .deb's path -> what it ships), a .deb not there is ``not_found``; ``deb_file``
from ``deb_files`` (a .deb's path -> path -> content; over ``max_bytes``: ``too_large``). Failures are
``AgentFailedError`` with the agent's codes (``not_found``, ``invalid``, ``precondition``) and its
messages, without the client's host prefix (except ``not_found``, which is spelled exactly as the client
would).

Hooks for the tests
-------------------
- ``answers``: method name -> canned answer, or a callable taking the call's arguments, used instead
  of the model (``detect.fakes.target_agent`` cans ``pack`` and ``jsonl_check`` this way).
- ``errors``: method name -> exception every call of it raises; ``failures``: (method, path) ->
  exception for that path only; ``fail_write_on`` / ``fail_all_writes_after``: the n-th
  ``write_file`` calls raise (``AgentError("injected failure writing <path>")``).
- ``anything_exists``: a path outside the tree still exists for ``manifest`` (as a symlink, like the
  names udev makes) and ``disk_usage``: for tests that do not care to describe the host.
- ``big``: canned :class:`BigFile` answers instead of walking the tree (still filtered by
  ``min_bytes`` and ``limit``).
- Recording: ``calls`` gets ``(method, record(method, args))`` for every call (``record`` is
  :func:`call_args` by default, :func:`call_brief` for one string per call); ``mutations`` gets
  ``(method, path)`` for every change that succeeded; ``writes`` counts ``write_file`` calls.
- ``files``, ``symlinks`` and ``dirs`` are live views of ``fs`` (path -> Node of a regular file,
  path -> link target, set of directories) for tests that think of a host as files;
  ``state()`` is every regular file's (content, mode, uid, gid) and ``clone()`` a deep copy that
  has recorded nothing.

Each test package has a small builder for the host its tests need (``detect.fakes.target_agent``,
``repair.fakes.vm_agent``; apply tests construct ``FakeAgent(files=..., dirs=...)`` directly).
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import posixpath
import re
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, MutableSet, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from orchestrator.agent.api import (
    BigFile,
    DebEntry,
    DebMeta,
    DiskUsage,
    FileEntry,
    JsonlRepairResult,
    JsonlReport,
    Manifest,
    PackResult,
    PathState,
    Placeholder,
    RotateResult,
    UnpackResult,
)
from orchestrator.errors import AgentError, AgentFailedError

NodeType = Literal["file", "dir", "symlink", "other"]   # other: a FIFO, socket or device

#: uid/gid -> name on the fake host unless a test says otherwise.
NAMES = {0: "root", 33: "www-data", 101: "app", 104: "app"}
#: Where ``pack`` leaves its archive (in ``remote``), as the real agent does.
PACK_TAR = "/run/vmrepair-agent/pack.tar"
#: What a placeholder keeps of a file too large to pack.
PLACEHOLDER_EDGE = 4096
TEMP_RE = re.compile(r"^\.vmrepair-[0-9a-f]{16}\.tmp$")
MAX_BAD_LINES = 100


def sha(data: bytes) -> str:
    """The sha256 hex digest the agent reports for ``data``."""
    return hashlib.sha256(data).hexdigest()


def not_found(op: str, path: str, host: str = "target") -> AgentFailedError:
    """What the agent on ``host`` answers for a path that does not exist."""
    return AgentFailedError(f"{host}: agent {op}: [Errno 2] No such file or directory: {path!r}",
                            host=host, op=op, code="not_found")


@dataclass
class Node:
    """One path of the fake host, as lstat sees it."""

    type: NodeType
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    link: str | None = None


def file_node(data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Node:
    """A regular file."""
    return Node("file", bytes(data), mode, uid, gid)


def half_full(mount: str) -> DiskUsage:
    """A healthy file system: half the blocks and a tenth of the inodes used."""
    size = 10_000_000_000
    return DiskUsage(mount, size, size // 2, size - size // 2, 50.0, 1_000_000, 100_000, 10.0)


def call_args(method: str, args: tuple[Any, ...]) -> Any:
    """Record a call as its arguments: the only one bare, several as a tuple, none as None."""
    if not args:
        return None
    return args[0] if len(args) == 1 else args


def call_brief(method: str, args: tuple[Any, ...]) -> str:
    """Record a call as one string: its path(s), ``src -> dst`` for a move, ``path method`` for a
    rotation."""
    match method, args:
        case ("manifest" | "big_files" | "pack"), (paths, *_):
            return ",".join(paths)
        case "move_file", (src, dst):
            return f"{src} -> {dst}"
        case "rotate_log", (path, how):
            return f"{path} {how}"
        case _, (first, *_):
            return str(first)
    return ""


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


_MODEL = object()   # no canned answer: the model answers


class FakeAgent:
    """AgentApi over an in-memory tree; see the module docstring for what it models and its hooks."""

    def __init__(
        self,
        fs: Mapping[str, Node] | None = None,
        *,
        files: Mapping[str, Node | bytes] | None = None,
        symlinks: Mapping[str, str] | None = None,
        dirs: Iterable[str] = (),
        names: Mapping[int, str] | None = None,
        host: str = "target",
        record: Callable[[str, tuple[Any, ...]], Any] = call_args,
        answers: Mapping[str, Any] | None = None,
        errors: Mapping[str, Exception] | None = None,
        failures: Mapping[tuple[str, str], Exception] | None = None,
        anything_exists: bool = False,
        disk: Mapping[str, DiskUsage] | None = None,
        usage_of: Callable[[str], DiskUsage] = half_full,
        big: Iterable[BigFile] | None = None,
        debs: Mapping[str, Iterable[DebEntry]] | None = None,
    ) -> None:
        self.fs: dict[str, Node] = {"/": Node("dir", mode=0o755)}
        self.names: dict[int, str] = dict(NAMES if names is None else names)
        self.host = host
        self.record = record
        self.answers: dict[str, Any] = dict(answers or {})
        self.errors: dict[str, Exception] = dict(errors or {})
        self.failures: dict[tuple[str, str], Exception] = dict(failures or {})
        self.fail_write_on: set[int] = set()
        self.fail_all_writes_after: int | None = None
        self.anything_exists = anything_exists
        self.disk: dict[str, DiskUsage] = dict(disk or {})
        self.usage_of = usage_of
        self.big: list[BigFile] | None = None if big is None else list(big)
        self.debs: dict[str, list[DebEntry]] = {deb: list(entries) for deb, entries in (debs or {}).items()}
        #: .deb path -> the regular files it ships, by path (what ``deb_file`` reads).
        self.deb_files: dict[str, dict[str, bytes]] = {}
        #: The agent's own directory: archives ``pack`` made, what ``fetch`` and ``unpack`` read.
        self.remote: dict[str, bytes] = {}
        self.calls: list[tuple[str, Any]] = []
        self.mutations: list[tuple[str, str]] = []
        self.writes = 0
        for path, node in (fs or {}).items():
            self.put(path, node)
        for path in dirs:
            self.mkdir(path)
        for path, content in (files or {}).items():
            self.put(path, content if isinstance(content, Node) else file_node(content))
        for path, target in (symlinks or {}).items():
            self.symlink(path, target)

    # -- building and inspecting the tree --------------------------------------------------------
    def put(self, path: str, node: Node, *, parent_mode: int = 0o755) -> None:
        """Place ``node`` at ``path``, creating missing parent directories."""
        parent = posixpath.dirname(path)
        if parent and parent != path and parent not in self.fs:
            self.put(parent, Node("dir", mode=parent_mode), parent_mode=parent_mode)
        self.fs[path] = node

    def file(self, path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
        self.put(path, file_node(data, mode, uid, gid))

    def symlink(self, path: str, target: str) -> None:
        self.put(path, Node("symlink", mode=0o777, link=target))

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        if self.fs.get(path, Node("file")).type != "dir":
            self.put(path, Node("dir", mode=mode))

    @property
    def files(self) -> MutableMapping[str, Node]:
        """Live view: path -> Node of every regular file."""
        return _FilesView(self)

    @property
    def symlinks(self) -> MutableMapping[str, str]:
        """Live view: path -> target of every symlink."""
        return _SymlinksView(self)

    @property
    def dirs(self) -> MutableSet[str]:
        """Live view: every directory."""
        return _DirsView(self)

    def state(self) -> dict[str, tuple[bytes, int, int, int]]:
        """Every regular file's (content, mode, uid, gid): what byte-for-byte comparisons need."""
        return {p: (n.data, n.mode, n.uid, n.gid) for p, n in sorted(self.fs.items()) if n.type == "file"}

    def clone(self) -> FakeAgent:
        """A deep copy of the host and its hooks that has recorded nothing yet."""
        twin = copy.deepcopy(self)
        twin.calls, twin.mutations, twin.writes = [], [], 0
        return twin

    # -- the machinery every method goes through -------------------------------------------------
    def _start(self, method: str, *args: Any) -> Any:
        """Record the call, raise what was injected, and return the canned answer (else _MODEL)."""
        args = tuple(tuple(a) if isinstance(a, list) else a for a in args)
        self.calls.append((method, self.record(method, args)))
        if method in self.errors:
            raise self.errors[method]
        if args and isinstance(args[0], str) and (method, args[0]) in self.failures:
            raise self.failures[method, args[0]]
        return self.answers.get(method, _MODEL)

    @staticmethod
    def _canned(answer: Any, *args: Any, **kwargs: Any) -> Any:
        return answer(*args, **kwargs) if callable(answer) else answer

    def _fail(self, op: str, code: str, message: str) -> AgentFailedError:
        return AgentFailedError(message, host=self.host, op=op, code=code)

    def _name(self, ident: int) -> str:
        return self.names.get(ident, str(ident))

    def _entry(self, path: str, node: Node) -> FileEntry:
        size = {"file": len(node.data), "dir": 4096, "symlink": len(node.link or ""), "other": 0}[node.type]
        return FileEntry(path, node.type, node.mode, node.uid, node.gid, self._name(node.uid),
                         self._name(node.gid), size, 0.0, sha(node.data) if node.type == "file" else None,
                         node.link if node.type == "symlink" else None)

    def _stat(self, path: str) -> Node | None:
        """lstat, with ``anything_exists`` making up a symlink for a path outside the tree."""
        node = self.fs.get(path)
        if node is None and self.anything_exists:
            return Node("symlink", mode=0o777, link="/elsewhere")
        return node

    def _follow(self, op: str, path: str) -> Node:
        """stat: follow symlinks to a node of the tree."""
        current = path
        for _ in range(40):
            node = self.fs.get(current)
            if node is None:
                raise not_found(op, path, self.host)
            if node.type != "symlink":
                return node
            current = posixpath.normpath(posixpath.join(posixpath.dirname(current), node.link or ""))
        raise self._fail(op, "io", f"{path}: too many levels of symbolic links")

    def _regular(self, op: str, path: str) -> Node:
        """lstat that must find a regular file."""
        node = self.fs.get(path)
        if node is None:
            raise not_found(op, path, self.host)
        if node.type != "file":
            raise self._fail(op, "invalid", f"{path} is not a regular file")
        return node

    def _check_expect(self, op: str, path: str, expect: str | None) -> None:
        current = self.fs.get(path)
        if expect is None:
            return
        if expect == "absent":
            if current is not None:
                raise self._fail(op, "precondition",
                                 f"{path} exists but was absent at capture (changed since capture)")
            return
        if current is None or current.type != "file":
            raise self._fail(op, "precondition",
                             f"{path} is no longer a regular file (changed since capture)")
        if sha(current.data) != expect:
            raise self._fail(op, "precondition", f"{path} changed since capture (sha256 "
                                                 f"{sha(current.data)[:12]}, expected {expect[:12]})")

    def _check_parents(self, op: str, path: str) -> None:
        parent = posixpath.dirname(path)
        while parent and parent != "/":
            node = self.fs.get(parent)
            if node is not None and node.type != "dir":
                raise self._fail(op, "invalid", f"refusing {path}: {parent} is a {node.type}")
            parent = posixpath.dirname(parent)

    def _manifest(self, paths: Iterable[str], *, recursive: bool = True,
                  exclude: Sequence[str] = ()) -> Manifest:
        found: dict[str, FileEntry] = {}
        missing = []
        for root in paths:
            node = self._stat(root)
            if node is None:
                missing.append(root)
                continue
            found[root] = self._entry(root, node)
            if node.type == "dir" and recursive:
                for path, below in self.fs.items():
                    if path != root and _under(path, root) and not any(_under(path, x) for x in exclude):
                        found[path] = self._entry(path, below)
        return Manifest(tuple(found[p] for p in sorted(found)), tuple(missing))

    # -- AgentApi ----------------------------------------------------------------------------------
    def manifest(self, paths: list[str], *, recursive: bool = True,
                 exclude: Sequence[str] = (), digests: bool = True) -> Manifest:
        if (answer := self._start("manifest", paths)) is not _MODEL:
            return self._canned(answer, paths)
        manifest = self._manifest(paths, recursive=recursive, exclude=exclude)
        if digests:
            return manifest
        return Manifest(tuple(replace(e, sha256=None) for e in manifest.entries), manifest.missing)

    def pack(self, paths: list[str], *, max_file_bytes: int, exclude: Sequence[str] = ()) -> PackResult:
        if (answer := self._start("pack", paths, max_file_bytes)) is not _MODEL:
            return self._canned(answer, paths, max_file_bytes=max_file_bytes)
        manifest = self._manifest(paths, exclude=exclude)
        placeholders = []
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for entry in manifest.entries:
                node = self.fs[entry.path]
                info = tarfile.TarInfo(entry.path.lstrip("/"))
                info.mode, info.uid, info.gid = node.mode, node.uid, node.gid
                if node.type == "dir":
                    info.type = tarfile.DIRTYPE
                    archive.addfile(info)
                elif node.type == "symlink":
                    info.type, info.linkname = tarfile.SYMTYPE, node.link or ""
                    archive.addfile(info)
                elif len(node.data) > max_file_bytes:
                    placeholders.append(Placeholder(entry.path, len(node.data), entry.sha256,
                                                    node.data[:PLACEHOLDER_EDGE],
                                                    node.data[-PLACEHOLDER_EDGE:]))
                else:
                    info.size = len(node.data)
                    archive.addfile(info, io.BytesIO(node.data))
        self.remote[PACK_TAR] = buffer.getvalue()
        return PackResult(PACK_TAR, manifest, tuple(placeholders))

    def unpack(
        self, remote_tar: str, placeholders: list[Placeholder], roots: list[str], *,
        manifest: Manifest | None = None,
    ) -> UnpackResult:
        if (answer := self._start("unpack", remote_tar, [p.path for p in placeholders], roots)) is not _MODEL:
            return self._canned(answer, remote_tar, placeholders, roots, manifest=manifest)
        if remote_tar not in self.remote:
            raise not_found("unpack", remote_tar, self.host)
        written: list[str] = []
        failed: list[tuple[str, str]] = []
        with tarfile.open(fileobj=io.BytesIO(self.remote[remote_tar])) as archive:
            for member in archive.getmembers():
                path = posixpath.normpath("/" + member.name)
                if ".." in member.name.split("/") or not any(_under(path, r) for r in roots):
                    failed.append((path, "outside the allowed roots"))
                    continue
                mode = member.mode & 0o7777
                if member.isdir():
                    self.put(path, Node("dir", mode=mode, uid=member.uid, gid=member.gid))
                elif member.issym():
                    self.put(path, Node("symlink", mode=0o777, uid=member.uid, gid=member.gid,
                                        link=member.linkname))
                elif member.isfile():
                    content = archive.extractfile(member)
                    data = content.read() if content is not None else b""
                    self.put(path, file_node(data, mode, member.uid, member.gid))
                else:
                    failed.append((path, "devices, fifos, links and other special members are refused"))
                    continue
                written.append(path)
        entries = manifest.by_path() if manifest is not None else {}
        done = []
        for placeholder in placeholders:
            if not any(_under(placeholder.path, r) for r in roots):
                failed.append((placeholder.path, "outside the allowed roots"))
                continue
            meta = entries.get(placeholder.path)
            data = bytearray(placeholder.size)   # zeros, with the head and the tail that travelled
            data[:len(placeholder.head)] = placeholder.head
            data[placeholder.size - len(placeholder.tail):] = placeholder.tail
            self.put(placeholder.path, file_node(bytes(data[:placeholder.size]),
                                                 *((meta.mode, meta.uid, meta.gid) if meta else ())))
            done.append(placeholder.path)
        self.mutations.append(("unpack", remote_tar))
        return UnpackResult(tuple(written), tuple(done), tuple(failed))

    def read_file(self, path: str, *, max_bytes: int) -> bytes:
        if (answer := self._start("read_file", path, max_bytes)) is not _MODEL:
            return self._canned(answer, path, max_bytes=max_bytes)
        node = self._follow("read_file", path)
        if node.type != "file":
            raise self._fail("read_file", "invalid", f"{path} is not a regular file")
        if len(node.data) > max_bytes:
            raise self._fail("read_file", "invalid", f"{path} is larger than {max_bytes} bytes")
        return node.data

    def write_file(
        self, path: str, data: bytes, *, mode: int, uid: int, gid: int,
        expect_sha256: str | None = None,
    ) -> FileEntry:
        self.writes += 1
        answer = self._start("write_file", path, data, mode, uid, gid, expect_sha256)
        if self.writes in self.fail_write_on or (
            self.fail_all_writes_after is not None and self.writes > self.fail_all_writes_after
        ):
            raise AgentError(f"injected failure writing {path}")
        if answer is not _MODEL:
            return self._canned(answer, path, data, mode=mode, uid=uid, gid=gid, expect_sha256=expect_sha256)
        self._check_parents("write_file", path)
        current = self.fs.get(path)
        if current is not None and current.type != "file":
            raise self._fail("write_file", "invalid", f"{path} is a {current.type}, not a regular file")
        self._check_expect("write_file", path, expect_sha256)
        self.put(path, file_node(data, mode, uid, gid))
        self.mutations.append(("write_file", path))
        return self._entry(path, self.fs[path])

    def verify_package(self, package_id: str, document: bytes, sha256: str) -> None:
        """As the agent: the document must hash to the digest taken at validation."""
        if (answer := self._start("verify_package", package_id, sha(document), sha256)) is not _MODEL:
            return self._canned(answer, package_id, document, sha256)
        if (actual := sha(document)) != sha256:
            raise self._fail("verify_package", "precondition",
                             f"fix package {package_id!r} changed since it was validated (sha256 {actual}, "
                             f"expected {sha256}); refusing to apply it")
        return None

    def remove_file(self, path: str, *, expect_sha256: str | None = None) -> None:
        if (answer := self._start("remove_file", path, expect_sha256)) is not _MODEL:
            return self._canned(answer, path, expect_sha256=expect_sha256)
        current = self.fs.get(path)
        if current is None:
            if expect_sha256 == "absent":
                return None
            if expect_sha256 is None:
                raise not_found("remove_file", path, self.host)
            raise self._fail("remove_file", "precondition", f"{path} does not exist")
        if current.type == "dir":
            raise self._fail("remove_file", "invalid", f"{path} is a directory; only files are removed")
        self._check_expect("remove_file", path, expect_sha256)
        del self.fs[path]
        self.mutations.append(("remove_file", path))
        return None

    def move_file(self, src: str, dst: str) -> None:
        if (answer := self._start("move_file", src, dst)) is not _MODEL:
            return self._canned(answer, src, dst)
        if src == dst or _under(dst, src):
            raise self._fail("move_file", "invalid", f"cannot move {src} onto {dst}")
        node = self.fs.get(src)
        if node is None:
            raise self._fail("move_file", "not_found", f"{src} does not exist")
        if node.type == "dir":
            raise self._fail("move_file", "invalid", f"{src} is a directory; only files are moved")
        if dst in self.fs:
            raise self._fail("move_file", "precondition", f"{dst} already exists; refusing to overwrite")
        self.put(dst, self.fs.pop(src), parent_mode=0o700)
        self.mutations.append(("move_file", src))
        return None

    # -- symlinks, directories, owner and mode (the agent's node operations) --------------------------
    def _check_state(self, op: str, path: str, expect: PathState | None) -> Node | None:
        node = self.fs.get(path)
        if expect is None:
            return node
        have = "absent" if node is None else node.type
        if have != expect.type:
            shown = "absent" if node is None else f"a {have}"
            raise self._fail(op, "precondition", f"{path} is {shown}, expected {expect.type} "
                                                 "(changed since capture)")
        if node is not None:
            actual = {"mode": node.mode, "uid": node.uid, "gid": node.gid, "link": node.link,
                      "sha256": sha(node.data) if node.type == "file" else None}
            for key, value in expect.as_args().items():
                if key != "type" and actual[key] != value:
                    raise self._fail(op, "precondition", f"{path}: {key} is {actual[key]!r}, expected "
                                                         f"{value!r} (changed since capture)")
        return node

    def _parent_dir(self, op: str, path: str) -> None:
        self._check_parents(op, path)
        if posixpath.dirname(path) not in self.fs:
            raise not_found(op, posixpath.dirname(path), self.host)

    def _node_of(self, op: str, path: str, kind: str, expect: PathState | None) -> Node | None:
        self._parent_dir(op, path)
        node = self._check_state(op, path, expect)
        if node is not None and node.type != kind:
            raise self._fail(op, "invalid", f"{path} is a {node.type}, not a {kind}")
        return node

    def set_symlink(self, path: str, target: str, *, uid: int, gid: int,
                    expect: PathState | None) -> FileEntry:
        if (answer := self._start("set_symlink", path, target, uid, gid, expect)) is not _MODEL:
            return self._canned(answer, path, target, uid=uid, gid=gid, expect=expect)
        self._node_of("set_symlink", path, "symlink", expect)
        self.fs[path] = Node("symlink", mode=0o777, uid=uid, gid=gid, link=target)
        self.mutations.append(("set_symlink", path))
        return self._entry(path, self.fs[path])

    def remove_symlink(self, path: str, *, expect: PathState | None) -> None:
        if (answer := self._start("remove_symlink", path, expect)) is not _MODEL:
            return self._canned(answer, path, expect=expect)
        if expect is None and (path not in self.fs or posixpath.dirname(path) not in self.fs):
            return None
        if self._node_of("remove_symlink", path, "symlink", expect) is None:
            raise not_found("remove_symlink", path, self.host)
        del self.fs[path]
        self.mutations.append(("remove_symlink", path))
        return None

    def make_dir(self, path: str, *, mode: int, uid: int, gid: int, expect: PathState | None) -> FileEntry:
        if (answer := self._start("make_dir", path, mode, uid, gid, expect)) is not _MODEL:
            return self._canned(answer, path, mode=mode, uid=uid, gid=gid, expect=expect)
        self._node_of("make_dir", path, "dir", expect)
        node = self.fs.setdefault(path, Node("dir"))
        node.mode, node.uid, node.gid = mode, uid, gid
        self.mutations.append(("make_dir", path))
        return self._entry(path, node)

    def remove_dir(self, path: str, *, expect: PathState | None) -> None:
        if (answer := self._start("remove_dir", path, expect)) is not _MODEL:
            return self._canned(answer, path, expect=expect)
        if expect is None and (path not in self.fs or posixpath.dirname(path) not in self.fs):
            return None
        if self._node_of("remove_dir", path, "dir", expect) is None:
            raise not_found("remove_dir", path, self.host)
        if any(p != path and _under(p, path) for p in self.fs):
            raise self._fail("remove_dir", "precondition", f"{path} is not empty; refusing to remove it")
        del self.fs[path]
        self.mutations.append(("remove_dir", path))
        return None

    def set_meta(self, path: str, *, mode: int, uid: int, gid: int, expect: PathState | None) -> FileEntry:
        if (answer := self._start("set_meta", path, mode, uid, gid, expect)) is not _MODEL:
            return self._canned(answer, path, mode=mode, uid=uid, gid=gid, expect=expect)
        self._parent_dir("set_meta", path)
        node = self._check_state("set_meta", path, expect)
        if node is None:
            raise not_found("set_meta", path, self.host)
        if node.type != "symlink":
            node.mode = mode
        node.uid, node.gid = uid, gid
        self.mutations.append(("set_meta", path))
        return self._entry(path, node)

    def sweep_temps(self, dirs: list[str]) -> list[str]:
        if (answer := self._start("sweep_temps", dirs)) is not _MODEL:
            return self._canned(answer, dirs)
        swept = sorted(p for p, n in self.fs.items() if n.type in ("file", "symlink")
                       and posixpath.dirname(p) in dirs and TEMP_RE.match(posixpath.basename(p)))
        for path in swept:
            del self.fs[path]
            self.mutations.append(("sweep_temps", path))
        return swept

    @staticmethod
    def _lines(data: bytes) -> tuple[list[bytes], bytes]:
        """Complete lines (without their newline) and the incomplete tail."""
        *lines, tail = data.split(b"\n")
        return lines, tail

    @staticmethod
    def _problem(line: bytes) -> str | None:
        try:
            value = json.loads(line)
        except ValueError:
            return "not JSON"
        return None if isinstance(value, dict) else "not a JSON object"

    def jsonl_check(self, path: str) -> JsonlReport:
        if (answer := self._start("jsonl_check", path)) is not _MODEL:
            return self._canned(answer, path)
        if path not in self.fs:
            return JsonlReport(path, exists=False, total_lines=0, good_lines=0)
        lines, tail = self._lines(self._regular("jsonl_check", path).data)
        counted = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
        bad = [(n, problem) for n, line in counted if (problem := self._problem(line))]
        torn = bool(tail.strip()) and self._problem(tail) is not None
        total = len(counted) + (1 if tail.strip() else 0)
        return JsonlReport(path, True, total, total - len(bad) - torn, tuple(bad[:MAX_BAD_LINES]), torn)

    def jsonl_repair(self, path: str) -> JsonlRepairResult:
        if (answer := self._start("jsonl_repair", path)) is not _MODEL:
            return self._canned(answer, path)
        node = self._regular("jsonl_repair", path)
        lines, tail = self._lines(node.data)
        lines += [tail] if tail.strip() else []
        good = [line for line in lines if line.strip() and self._problem(line) is None]
        bad = [line for line in lines if line.strip() and self._problem(line) is not None]
        backup, quarantine = f"{path}.bak-1", f"{path}.quarantine-1" if bad else None
        self.put(backup, file_node(node.data, node.mode, node.uid, node.gid))
        if quarantine is not None:
            self.put(quarantine, file_node(b"".join(line + b"\n" for line in bad), 0o600))
        node.data = b"".join(line + b"\n" for line in good)
        self.mutations.append(("jsonl_repair", path))
        return JsonlRepairResult(path, len(good), 0, len(bad), quarantine, backup)

    def rotate_log(self, path: str, *, method: Literal["compress", "truncate"]) -> RotateResult:
        if (answer := self._start("rotate_log", path, method)) is not _MODEL:
            return self._canned(answer, path, method=method)
        node = self._regular("rotate_log", path)
        archive = None
        if method == "compress":
            archive = f"{path}.1.gz"
            self.put(archive, file_node(gzip.compress(node.data, mtime=0), 0o640))
        freed, node.data = len(node.data), b""
        self.mutations.append(("rotate_log", path))
        return RotateResult(path, archive, freed, method)

    def disk_usage(self, mount: str) -> DiskUsage:
        """statvfs semantics: ``disk`` answers first, then any existing path answers ``usage_of``."""
        if (answer := self._start("disk_usage", mount)) is not _MODEL:
            return self._canned(answer, mount)
        if mount in self.disk:
            return self.disk[mount]
        if self._stat(mount) is None:
            raise not_found("disk_usage", mount, self.host)
        return self.usage_of(mount)

    def big_files(self, roots: list[str], *, min_bytes: int, limit: int) -> list[BigFile]:
        if (answer := self._start("big_files", roots, min_bytes, limit)) is not _MODEL:
            return self._canned(answer, roots, min_bytes=min_bytes, limit=limit)
        if self.big is not None:
            found = self.big
        else:
            found = sorted((BigFile(p, len(n.data)) for p, n in self.fs.items()
                            if n.type == "file" and any(_under(p, r) for r in roots)),
                           key=lambda b: (-b.size, b.path))
        return [b for b in found if b.size >= min_bytes][:limit]

    # -- the RemoteAgent extras the pipeline uses --------------------------------------------------
    def deb_meta(self, deb: str, paths: list[str] | tuple[str, ...]) -> DebMeta:
        if (answer := self._start("deb_meta", deb, list(paths))) is not _MODEL:
            return self._canned(answer, deb, paths)
        if deb not in self.debs:
            raise not_found("deb_meta", deb, self.host)
        shipped = {e.path: e for e in self.debs[deb]}
        asked = list(dict.fromkeys(paths))
        return DebMeta(tuple(shipped[p] for p in asked if p in shipped),
                       tuple(p for p in asked if p not in shipped))

    def deb_file(self, deb: str, path: str, *, max_bytes: int) -> bytes | None:
        if (answer := self._start("deb_file", deb, path, max_bytes)) is not _MODEL:
            return self._canned(answer, deb, path, max_bytes=max_bytes)
        if deb not in self.deb_files:
            raise not_found("deb_file", deb, self.host)
        data = self.deb_files[deb].get(path)
        if data is not None and len(data) > max_bytes:
            raise self._fail("deb_file", "too_large",
                             f"{deb} ships {path} with {len(data)} bytes, over {max_bytes}")
        return data

    def fetch(self, remote: str, local: Path) -> None:
        """Copy a file of the agent's directory (``remote``) to ``local``."""
        if (answer := self._start("fetch", remote)) is not _MODEL:
            self._canned(answer, remote, local)
            return
        if remote not in self.remote:
            raise not_found("fetch", remote, self.host)
        local.write_bytes(self.remote[remote])

    def cleanup(self) -> None:
        """Empty the agent's directory."""
        if (answer := self._start("cleanup")) is not _MODEL:
            self._canned(answer)
            return
        self.remote.clear()


class _FilesView(MutableMapping[str, Node]):
    def __init__(self, agent: FakeAgent) -> None:
        self._fs = agent.fs
        self._agent = agent

    def _paths(self) -> list[str]:
        return [p for p, n in self._fs.items() if n.type == "file"]

    def __getitem__(self, path: str) -> Node:
        node = self._fs.get(path)
        if node is None or node.type != "file":
            raise KeyError(path)
        return node

    def __setitem__(self, path: str, node: Node) -> None:
        if node.type != "file":
            raise ValueError(f"{path}: files holds regular files, not a {node.type}")
        self._agent.put(path, node)

    def __delitem__(self, path: str) -> None:
        self[path]  # KeyError unless a regular file
        del self._fs[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths())

    def __len__(self) -> int:
        return len(self._paths())


class _SymlinksView(MutableMapping[str, str]):
    def __init__(self, agent: FakeAgent) -> None:
        self._fs = agent.fs
        self._agent = agent

    def _paths(self) -> list[str]:
        return [p for p, n in self._fs.items() if n.type == "symlink"]

    def __getitem__(self, path: str) -> str:
        node = self._fs.get(path)
        if node is None or node.type != "symlink":
            raise KeyError(path)
        return node.link or ""

    def __setitem__(self, path: str, target: str) -> None:
        self._agent.symlink(path, target)

    def __delitem__(self, path: str) -> None:
        self[path]  # KeyError unless a symlink
        del self._fs[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths())

    def __len__(self) -> int:
        return len(self._paths())


class _DirsView(MutableSet[str]):
    def __init__(self, agent: FakeAgent) -> None:
        self._fs = agent.fs
        self._agent = agent

    def _paths(self) -> list[str]:
        return [p for p, n in self._fs.items() if n.type == "dir"]

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and path in self._fs and self._fs[path].type == "dir"

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths())

    def __len__(self) -> int:
        return len(self._paths())

    def add(self, path: str) -> None:
        self._agent.mkdir(path)

    def discard(self, path: str) -> None:
        if path in self and path != "/":
            del self._fs[path]
