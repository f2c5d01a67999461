#!/usr/bin/python3
"""vmrepair target-side agent: one JSON request on stdin, one JSON answer on stdout.

Run as ``python3 -I -B <dir>/agent-<sha12>.py`` with ``{"op": "...", "args": {...}}`` on stdin, or with
``--serve`` to answer many requests, one per line, each answer preceded by its length (:func:`serve`). The
answer is ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "...", "code": "..."}`` with code
one of ``precondition`` (the host changed since capture), ``not_found``, ``nospace``, ``invalid`` and
``io``; the exit status is 0 for both, non-zero only when the agent itself crashed. Bytes travel as
base64, paths as JSON strings (undecodable bytes as lone surrogates, which round-trip).

Self-contained and stdlib-only on purpose: it is uploaded as one file to hosts that have nothing but
Debian 12's python3 (3.11.2, so no tarfile extraction filters: untrusted archives are extracted by hand
here). It is larger than vmrepair's other modules because splitting it would need an import path on the
host. Every path is walked with directory file descriptors and O_NOFOLLOW, so a symlink planted by a
compromised host or a hostile archive can never redirect a write.
"""
# Raw os calls with dir_fd and O_NOFOLLOW are the point of this file; pathlib would follow symlinks.
# ruff: noqa: PTH100, PTH108, PTH116, PTH120, PTH123, PTH208

from __future__ import annotations

import contextlib
import errno
import grp
import hashlib
import json
import os
import pwd
import re
import stat
import sys
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

# Each agent call is a new interpreter in the guest (about 220 ms under TCG before any import), so
# modules only some operations need (tarfile, gzip, hashlib, base64, secrets, tempfile, heapq: about
# 200 ms together) are imported inside those operations.
if TYPE_CHECKING:
    import tarfile

MAX_ENTRIES = 50_000
SAMPLE_BYTES = 4096
#: Head/tail samples of all placeholders together stay below this, so a pack answer stays bounded.
SAMPLE_BUDGET = 24 * 1024 * 1024
#: A JSONL line longer than this is bad without being held in memory.
MAX_LINE = 16 * 1024 * 1024
MAX_BAD_LINES = 100
#: Longest request line in --serve mode (write_file carries its data inline, base64).
MAX_REQUEST = 256 * 1024 * 1024
MAX_REASON = 200
TRUNCATE_KEEP = 1024 * 1024
CHUNK = 1024 * 1024
CODES = ("precondition", "not_found", "nospace", "invalid", "io")

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a fifo swapped in after lstat must not hang the agent on open.
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
NEW_FLAGS = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
VANISHED = (errno.ENOENT, errno.ELOOP, errno.ENOTDIR)
JSON_WS = " \t\r\f\v\x00"
#: The whitespace JSON allows around a value: salvaged objects keep it, so repairs lose no byte.
JSON_SPACE = " \t\r"
#: Bounds on the search for objects in one bad line, past which the rest of it is quarantined, so a
#: hostile 16 MiB line costs seconds, not hours: failed tries; characters failed tries may scan, as a
#: multiple of the line's length; tries that fail on absurd nesting or huge integers (their cost is
#: unknown: up to the whole line each); tries to complete an object cut short by a crash.
MAX_SALVAGE_TRIES = 1000
SALVAGE_SCAN_FACTOR = 4
MAX_DEEP_FAILURES = 4
MAX_COMPLETIONS = 4
CLOSERS = ("}", '"}', "}}", '"}}', "]}", '"]}')

Args = dict[str, Any]


class Failure(Exception):
    """An operation refused or failed; becomes ``{"ok": false}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------- arguments


def arg_int(args: Args, key: str, low: int = 0, high: int = 2**63) -> int:
    value = args.get(key)
    # bool is an int subclass; true must not pass as 1.
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise Failure("invalid", f"argument {key!r} must be an integer in [{low}, {high}]")
    return value


def check_path(value: object, what: str = "path") -> str:
    """An absolute, normalised path: no empty, '.' or '..' components, no NUL."""
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        raise Failure("invalid", f"{what} must be an absolute path, got {value!r}")
    if value != "/" and any(part in ("", ".", "..") for part in value.split("/")[1:]):
        raise Failure("invalid", f"{what} {value!r} is not normalised")
    return value


def arg_path(args: Args, key: str) -> str:
    return check_path(args.get(key), key)


def arg_paths(args: Args, key: str) -> list[str]:
    values = args.get(key)
    if not isinstance(values, list):
        raise Failure("invalid", f"argument {key!r} must be a list of paths")
    return [check_path(v, key) for v in values]


#: Most ``exclude`` entries one walk compares every path with (``watch.ignore_paths`` has 256 at most).
MAX_EXCLUDE = 256


def arg_exclude(args: Args) -> list[str]:
    """Paths a walk leaves out with everything below them (optional; a root itself is never left
    out: the caller does not ask for a path it ignores)."""
    if args.get("exclude") is None:
        return []
    paths = arg_paths(args, "exclude")
    if len(paths) > MAX_EXCLUDE:
        raise Failure("invalid", f"more than {MAX_EXCLUDE} paths to exclude")
    return paths


def arg_expect(args: Args) -> str | None:
    value = args.get("expect_sha256")
    if value is None or value == "absent":
        return value
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value
    raise Failure("invalid", "expect_sha256 must be null, 'absent' or a lowercase sha256 hex digest")


def b64(value: object, key: str) -> bytes:
    import base64
    if not isinstance(value, str):
        raise Failure("invalid", f"argument {key!r} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise Failure("invalid", f"argument {key!r} is not valid base64") from exc


def is_under(path: str, roots: Sequence[str]) -> bool:
    return any(root in ("/", path) or path.startswith(root + "/") for root in roots)


# ---------------------------------------------------------------- files and directories


def split_parent(path: str) -> tuple[str, str]:
    if path == "/":
        return "/", "."
    head, _, name = path.rpartition("/")
    return head or "/", name


def join(directory: str, name: str) -> str:
    return "/" + name if directory == "/" else f"{directory}/{name}"


def open_dir(path: str, create_mode: int | None = None, *, for_path: str | None = None) -> int:
    """Open directory ``path`` one component at a time without following any symlink.

    Missing components are created with ``create_mode`` (None: refuse). This is the lstat walk of every
    parent, done race-free: each step is relative to the descriptor of the step before. ``for_path``
    names the path the caller is after, in messages.
    """
    fd = os.open("/", DIR_FLAGS)
    current = ""
    try:
        for name in [] if path == "/" else path.split("/")[1:]:
            current += "/" + name
            try:
                child = os.open(name, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if create_mode is None:
                    raise Failure("not_found", f"{current} does not exist") from None
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, create_mode, dir_fd=fd)
                child = os.open(name, DIR_FLAGS, dir_fd=fd)
                os.fchmod(child, create_mode)  # mkdir's mode is filtered by the umask
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                found = os.stat(name, dir_fd=fd, follow_symlinks=False)
                kind = "a symlink" if stat.S_ISLNK(found.st_mode) else "not a directory"
                raise Failure("invalid", f"refusing {for_path or path}: {current} is {kind}") from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_parent(path: str, create_mode: int | None = None) -> tuple[int, str]:
    """(descriptor of the parent directory, final name) of ``path``; the caller closes the fd."""
    head, name = split_parent(path)
    if name == ".":
        raise Failure("invalid", "refusing to operate on /")
    return open_dir(head, create_mode, for_path=path), name


@contextlib.contextmanager
def parent_of(path: str, create_mode: int | None = None) -> Iterator[tuple[int, str]]:
    fd, name = open_parent(path, create_mode)
    try:
        yield fd, name
    finally:
        os.close(fd)


def lstat_at(dfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    return "symlink" if stat.S_ISLNK(mode) else "other"


def temp_name() -> str:
    # Short and fixed-length: a temp name built from a 255-byte name would be too long to create.
    import secrets
    return f".vmrepair-{secrets.token_hex(8)}.tmp"


def unlink_quietly(name: str, dfd: int | None = None) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dfd)


def write_all(fd: int, data: bytes, offset: int | None = None) -> None:
    view = memoryview(data)
    while view:
        done = os.write(fd, view) if offset is None else os.pwrite(fd, view, offset)
        view = view[done:]
        if offset is not None:
            offset += done


def copy_fd(src: int, dst: int) -> int:
    total = 0
    while chunk := os.read(src, CHUNK):
        write_all(dst, chunk)
        total += len(chunk)
    return total


def set_owner_mode(fd: int, uid: int, gid: int, mode: int) -> None:
    current = os.fstat(fd)
    if (current.st_uid, current.st_gid) != (uid, gid):
        os.fchown(fd, uid, gid)
    os.fchmod(fd, mode & 0o7777)  # after chown, which clears setuid/setgid bits


def create_unique(dfd: int, stem: str, suffix: str = "") -> tuple[str, int]:
    """Create a new file ``stem[-N]suffix`` (read-write, 0600); never reuse an existing name."""
    for attempt in range(100):
        name = f"{stem}{f'-{attempt}' if attempt else ''}{suffix}"
        try:
            return name, os.open(name, os.O_RDWR | NEW_FLAGS, 0o600, dir_fd=dfd)
        except FileExistsError:
            continue
    raise Failure("io", f"cannot find a free name for {stem}{suffix}")


def replace_file(
    dfd: int, name: str, fill: Callable[[int], None], *,
    mode: int, uid: int, gid: int, mtime: float | None = None,
) -> None:
    """Crash-safe replace: temp file -> fill -> owner/mode -> fsync -> rename -> fsync directory."""
    tmp = temp_name()
    fd = os.open(tmp, os.O_WRONLY | NEW_FLAGS, 0o600, dir_fd=dfd)
    try:
        try:
            fill(fd)
            set_owner_mode(fd, uid, gid, mode)
            if mtime is not None:
                os.utime(fd, ns=(int(mtime * 1e9),) * 2)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        unlink_quietly(tmp, dfd)
        raise
    os.fsync(dfd)


def replace_symlink(dfd: int, name: str, target: str, *, uid: int, gid: int, mtime: float) -> None:
    tmp = temp_name()
    os.symlink(target, tmp, dir_fd=dfd)
    try:
        os.chown(tmp, uid, gid, dir_fd=dfd, follow_symlinks=False)
        os.utime(tmp, ns=(int(mtime * 1e9),) * 2, dir_fd=dfd, follow_symlinks=False)
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        unlink_quietly(tmp, dfd)
        raise
    os.fsync(dfd)


def publish_noreplace(src_dfd: int, src: str, dst_dfd: int, dst: str, dst_path: str) -> None:
    """Make ``src`` appear as ``dst`` without ever overwriting: link(2) fails if dst exists."""
    try:
        os.link(src, dst, src_dir_fd=src_dfd, dst_dir_fd=dst_dfd, follow_symlinks=False)
    except FileExistsError:
        raise Failure("precondition", f"{dst_path} already exists; refusing to overwrite") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # No hard links on this filesystem (vfat, some FUSE): check-then-rename is the best left.
        if lstat_at(dst_dfd, dst) is not None:
            raise Failure("precondition", f"{dst_path} already exists; refusing to overwrite") from None
        os.rename(src, dst, src_dir_fd=src_dfd, dst_dir_fd=dst_dfd)
        return
    os.unlink(src, dir_fd=src_dfd)


def hash_at(dfd: int, name: str) -> tuple[str, int] | None:
    """(sha256, length) of a regular file; None when it vanished or is no longer a regular file."""
    import hashlib
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dfd)
    except OSError as exc:
        if exc.errno in VANISHED:
            return None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        digest, size = hashlib.sha256(), 0
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
            size += len(chunk)
        return digest.hexdigest(), size
    finally:
        os.close(fd)


def readlink_at(dfd: int, name: str) -> str | None:
    try:
        return os.readlink(name, dir_fd=dfd)
    except OSError as exc:
        if exc.errno in (*VANISHED, errno.EINVAL):
            return None
        raise


# ---------------------------------------------------------------- manifests, walking, packing

NAMES: dict[tuple[str, int], str] = {}


def id_name(kind: str, ident: int) -> str:
    """User ("u") or group name of an id, "" when it has none."""
    if (kind, ident) not in NAMES:
        try:
            NAMES[kind, ident] = pwd.getpwuid(ident).pw_name if kind == "u" else grp.getgrgid(ident).gr_name
        except KeyError:
            NAMES[kind, ident] = ""
    return NAMES[kind, ident]


def entry(path: str, st: os.stat_result, *, sha256: str | None = None, size: int | None = None,
          link: str | None = None) -> dict[str, Any]:
    return {
        "path": path, "type": kind_of(st.st_mode), "mode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid, "gid": st.st_gid,
        "owner": id_name("u", st.st_uid) or str(st.st_uid),
        "group": id_name("g", st.st_gid) or str(st.st_gid),
        "size": st.st_size if size is None else size, "mtime": st.st_mtime,
        "sha256": sha256, "link": link,
    }


def _walk_error(exc: OSError) -> None:
    if exc.errno not in VANISHED:  # a directory removed while we walk is simply not there
        raise exc


def walk(root: str, *, recursive: bool = True,
         exclude: Sequence[str] = ()) -> Iterator[tuple[str, os.stat_result, int, str]]:
    """Yield (path, lstat, parent dir fd, name) for ``root`` and, if ``recursive``, everything below it
    except what ``exclude`` covers (an excluded directory is neither listed nor entered).

    Symlinks are never followed and other filesystems are listed but not entered (like find -xdev).
    The parent fd is only valid until the next item.
    """
    head, name = split_parent(root)
    pfd = os.open(head, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        top = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        yield root, top, pfd, name
    finally:
        os.close(pfd)
    if not recursive or not stat.S_ISDIR(top.st_mode):
        return
    for dirpath, dirnames, filenames, dfd in os.fwalk(root, follow_symlinks=False, onerror=_walk_error):
        descend = []
        for child in sorted(dirnames + filenames):
            path = join(dirpath, child)
            if exclude and is_under(path, exclude):
                continue
            st = lstat_at(dfd, child)
            if st is None:
                continue
            yield path, st, dfd, child
            if stat.S_ISDIR(st.st_mode) and st.st_dev == top.st_dev:
                descend.append(child)
        dirnames[:] = descend  # fwalk lists symlinks to dirs as dirs; it must only enter real ones


class Tree:
    """A manifest under construction: de-duplicated (requested paths may overlap) and capped."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.seen: set[str] = set()
        self.missing: list[str] = []

    def roots(
        self, paths: list[str], *, recursive: bool = True, exclude: Sequence[str] = (),
    ) -> Iterator[tuple[str, os.stat_result, int, str]]:
        for root in paths:
            try:
                os.lstat(root)
            except OSError as exc:
                if exc.errno not in VANISHED:
                    raise
                self.missing.append(root)
                continue
            for item in walk(root, recursive=recursive, exclude=exclude):
                if item[0] not in self.seen:
                    yield item

    def add(self, item: dict[str, Any]) -> None:
        if len(self.entries) >= MAX_ENTRIES:
            raise Failure("invalid", f"more than {MAX_ENTRIES} entries; capture narrower paths")
        self.seen.add(item["path"])
        self.entries.append(item)

    def result(self) -> dict[str, Any]:
        return {"entries": self.entries, "missing": self.missing}


def op_manifest(args: Args, work_dir: str) -> Any:
    """Entries of ``paths`` and, unless ``recursive`` is false, of everything below them. Without
    recursion only the paths themselves are lstat()ed: a probe asking about a data directory must not
    hash every file in it. With ``digests`` false no file is read at all (an answer that only says
    what is there, as a fingerprint of unit directories needs)."""
    recursive, digests = args.get("recursive", True), args.get("digests", True)
    for key, value in (("recursive", recursive), ("digests", digests)):
        if not isinstance(value, bool):
            raise Failure("invalid", f"argument '{key}' must be true or false")
    tree = Tree()
    for path, st, dfd, name in tree.roots(arg_paths(args, "paths"), recursive=recursive,
                                          exclude=arg_exclude(args)):
        if stat.S_ISREG(st.st_mode) and not digests:
            tree.add(entry(path, st))
        elif stat.S_ISREG(st.st_mode):
            hashed = hash_at(dfd, name)
            if hashed is not None:
                tree.add(entry(path, st, sha256=hashed[0], size=hashed[1]))
        elif stat.S_ISLNK(st.st_mode):
            link = readlink_at(dfd, name)
            if link is not None:
                tree.add(entry(path, st, link=link))
        else:
            tree.add(entry(path, st))
    return tree.result()


class Packer:
    """Adds walked paths to a PAX tar; files over ``max_bytes`` become placeholders instead."""

    def __init__(self, tar: tarfile.TarFile, max_bytes: int, work_dir: str) -> None:
        self.tar, self.max_bytes, self.work_dir = tar, max_bytes, work_dir
        self.tree = Tree()
        self.placeholders: list[dict[str, Any]] = []
        self.budget = SAMPLE_BUDGET

    def info(self, path: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
        # Built by hand, not with gettarinfo(): that would turn hard-linked files into link members.
        import tarfile
        info = tarfile.TarInfo(path.lstrip("/"))
        info.type, info.mode, info.mtime = kind, stat.S_IMODE(st.st_mode), st.st_mtime
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname, info.gname = id_name("u", st.st_uid), id_name("g", st.st_gid)
        return info

    def add(self, path: str, st: os.stat_result, dfd: int, name: str) -> None:
        import tarfile
        if stat.S_ISREG(st.st_mode):
            self.add_file(path, dfd, name)
        elif stat.S_ISDIR(st.st_mode):
            self.tree.add(entry(path, st))
            if path != "/":
                self.tar.addfile(self.info(path, st, tarfile.DIRTYPE))
        elif stat.S_ISLNK(st.st_mode):
            link = readlink_at(dfd, name)
            if link is not None:
                self.tree.add(entry(path, st, link=link))
                info = self.info(path, st, tarfile.SYMTYPE)
                info.linkname = link
                self.tar.addfile(info)
        else:
            self.tree.add(entry(path, st))  # devices, sockets, fifos: listed, never packed

    def add_file(self, path: str, dfd: int, name: str) -> None:
        import hashlib
        import tarfile
        import tempfile
        try:
            fd = os.open(name, READ_FLAGS, dir_fd=dfd)
        except OSError as exc:
            if exc.errno in VANISHED:
                return
            raise
        with contextlib.ExitStack() as stack:
            stack.callback(os.close, fd)
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return
            if st.st_size > self.max_bytes:
                # Already over the cap: a placeholder. Only head and tail are read; hashing a runaway
                # multi-GB log would dominate the capture (40 s for 2 GB measured in a TCG guest) and
                # nobody compares a placeholder's content: fix packages never carry it.
                head = os.pread(fd, SAMPLE_BYTES, 0)
                tail = os.pread(fd, SAMPLE_BYTES, max(0, st.st_size - SAMPLE_BYTES))
                self.tree.add(entry(path, st, sha256=None, size=st.st_size))
                self.placeholder(path, st.st_size, None, head, tail)
                return
            spool: IO[bytes] | None = stack.enter_context(tempfile.TemporaryFile(dir=self.work_dir))
            # One pass: the tar member, its hash and size all come from the same bytes, even when a
            # live log grows meanwhile (it then becomes a placeholder if it grows past the cap).
            digest, size, head, tail = hashlib.sha256(), 0, b"", b""
            while chunk := os.read(fd, CHUNK):
                digest.update(chunk)
                size += len(chunk)
                head = head if len(head) >= SAMPLE_BYTES else (head + chunk)[:SAMPLE_BYTES]
                tail = (tail + chunk[-SAMPLE_BYTES:])[-SAMPLE_BYTES:]
                if spool is not None and size > self.max_bytes:
                    spool = None  # grew past the cap while we read; the stack still closes it
                elif spool is not None:
                    spool.write(chunk)
            st = os.fstat(fd)
            self.tree.add(entry(path, st, sha256=digest.hexdigest(), size=size))
            if spool is None:
                self.placeholder(path, size, digest.hexdigest(), head, tail)
            else:
                info = self.info(path, st, tarfile.REGTYPE)
                info.size = size
                spool.seek(0)
                self.tar.addfile(info, spool)

    def placeholder(self, path: str, size: int, sha256: str | None, head: bytes, tail: bytes) -> None:
        import base64
        if len(head) + len(tail) > self.budget:
            head = tail = b""
        self.budget -= len(head) + len(tail)
        self.placeholders.append({
            "path": path, "size": size, "sha256": sha256,
            "head_b64": base64.b64encode(head).decode(), "tail_b64": base64.b64encode(tail).decode(),
        })


def op_pack(args: Args, work_dir: str) -> Any:
    import secrets
    import tarfile
    paths = arg_paths(args, "paths")
    max_bytes = arg_int(args, "max_file_bytes")
    exclude = arg_exclude(args)
    if args.get("roots") is not None:
        roots = arg_paths(args, "roots")
        outside = [p for p in paths if not is_under(p, roots)]
        if outside:
            raise Failure("invalid", f"paths outside the allowed roots: {outside[:5]}")
    tar_path = join(work_dir, f"pack-{secrets.token_hex(8)}.tar")
    fd = os.open(tar_path, os.O_WRONLY | NEW_FLAGS, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                packer = Packer(tar, max_bytes, work_dir)
                for item in packer.tree.roots(paths, exclude=exclude):
                    packer.add(*item)
            raw.flush()
            os.fsync(raw.fileno())
    except BaseException:
        unlink_quietly(tar_path)
        raise
    return {"remote_tar": tar_path, "manifest": packer.tree.result(), "placeholders": packer.placeholders}


# ---------------------------------------------------------------- unpacking untrusted archives


def member_path(name: str, roots: list[str]) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Failure("invalid", "name contains '..'")
    path = "/" + "/".join(parts)
    if not parts or not is_under(path, roots):
        raise Failure("invalid", "outside the allowed roots")
    return path


class Unpacker:
    def __init__(self, roots: list[str]) -> None:
        self.roots = roots
        self.written: list[str] = []
        self.placeholders: list[str] = []
        self.failed: list[dict[str, str]] = []
        self.dir_times: list[tuple[str, float]] = []

    def attempt(self, label: str, action: Callable[[], None]) -> bool:
        """Run one member's action; a refusal or error is reported for that path, never fatal."""
        try:
            action()
        except Failure as exc:
            self.failed.append({"path": label, "reason": exc.message})
        except OSError as exc:
            self.failed.append({"path": label, "reason": describe(exc)})
        else:
            return True
        return False

    def member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        try:
            path = member_path(member.name, self.roots)
        except Failure as exc:
            self.failed.append({"path": member.name, "reason": exc.message})
            return

        def extract() -> None:
            if member.islnk():
                raise Failure("invalid", "hard links are refused")
            if not (member.isreg() or member.isdir() or member.issym()):
                raise Failure("invalid", "devices, fifos and other special members are refused")
            with parent_of(path, 0o755) as (dfd, name):
                self.extract_at(tar, member, path, dfd, name)

        if self.attempt(path, extract):
            self.written.append(path)

    def extract_at(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str, dfd: int,
                   name: str) -> None:
        existing = lstat_at(dfd, name)
        if member.isdir():
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=dfd)
            elif not stat.S_ISDIR(existing.st_mode):
                raise Failure("invalid", "exists and is not a directory")
            sub = os.open(name, DIR_FLAGS, dir_fd=dfd)
            try:
                set_owner_mode(sub, member.uid, member.gid, member.mode)
            finally:
                os.close(sub)
            self.dir_times.append((path, member.mtime))
            return
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            raise Failure("invalid", "a directory is in the way")
        if member.issym():
            replace_symlink(dfd, name, member.linkname, uid=member.uid, gid=member.gid, mtime=member.mtime)
            return
        source = tar.extractfile(member)
        if source is None:
            raise Failure("invalid", "member has no data")

        def fill(fd: int) -> None:
            while chunk := source.read(CHUNK):
                write_all(fd, chunk)

        replace_file(dfd, name, fill, mode=member.mode, uid=member.uid, gid=member.gid, mtime=member.mtime)

    def placeholder_path(self, spec: object) -> str:
        if not isinstance(spec, dict):
            raise Failure("invalid", "placeholder must be an object")
        path = check_path(spec.get("path"))
        if not is_under(path, self.roots):
            raise Failure("invalid", "outside the allowed roots")
        return path

    def placeholder(self, spec: Any) -> None:
        try:
            path = self.placeholder_path(spec)
        except Failure as exc:
            label = spec.get("path") if isinstance(spec, dict) else None
            self.failed.append({"path": str(label)[:4096], "reason": exc.message})
            return

        def make() -> None:
            size = arg_int(spec, "size")
            head, tail = b64(spec.get("head_b64", ""), "head_b64"), b64(spec.get("tail_b64", ""), "tail_b64")
            if len(head) > size or len(tail) > size:
                raise Failure("invalid", "head or tail longer than the file")
            mode = arg_int(spec, "mode", 0, 0o7777) if spec.get("mode") is not None else 0o600
            uid = arg_int(spec, "uid", 0, 2**32 - 1) if spec.get("uid") is not None else os.geteuid()
            gid = arg_int(spec, "gid", 0, 2**32 - 1) if spec.get("gid") is not None else os.getegid()
            mtime = spec.get("mtime")

            def fill(fd: int) -> None:
                if size:  # real blocks, so the disk fills up as much as on the target
                    os.posix_fallocate(fd, 0, size)
                write_all(fd, head, 0)
                write_all(fd, tail, size - len(tail))

            with parent_of(path, 0o755) as (dfd, name):
                existing = lstat_at(dfd, name)
                if existing is not None and stat.S_ISDIR(existing.st_mode):
                    raise Failure("invalid", "a directory is in the way")
                replace_file(dfd, name, fill, mode=mode, uid=uid, gid=gid,
                             mtime=mtime if isinstance(mtime, int | float) else None)

        if self.attempt(path, make):
            self.placeholders.append(path)

    def restore_dir_times(self) -> None:
        # Last, and deepest first: creating entries inside a directory changes its mtime.
        for path, mtime in reversed(self.dir_times):
            def touch(path: str = path, mtime: float = mtime) -> None:
                with parent_of(path) as (dfd, name):
                    os.utime(name, ns=(int(mtime * 1e9),) * 2, dir_fd=dfd, follow_symlinks=False)
            self.attempt(path, touch)


def open_tar(path: str) -> tarfile.TarFile:
    import tarfile
    try:
        return tarfile.open(path, mode="r:")  # "r:": plain tar only, no decompression bombs
    except tarfile.TarError as exc:
        raise Failure("invalid", f"{path} is not a tar archive: {exc}") from None


def op_unpack(args: Args, work_dir: str) -> Any:
    import tarfile
    tar_path = arg_path(args, "tar")
    if split_parent(tar_path)[0] != work_dir:
        raise Failure("invalid", f"archive {tar_path} must be in the agent directory {work_dir}")
    roots = arg_paths(args, "roots")
    specs = args.get("placeholders") or []
    if not roots or not isinstance(specs, list):
        raise Failure("invalid", "roots must be a non-empty list and placeholders a list")
    unpacker = Unpacker(roots)
    try:
        with open_tar(tar_path) as tar:
            try:
                for member in tar:
                    unpacker.member(tar, member)
            except tarfile.TarError as exc:
                unpacker.failed.append({"path": tar_path, "reason": f"archive damaged, rest skipped: {exc}"})
        for spec in specs:
            unpacker.placeholder(spec)
        unpacker.restore_dir_times()
    finally:
        unlink_quietly(tar_path)
    return {"written": unpacker.written, "placeholders": unpacker.placeholders, "failed": unpacker.failed}


def op_discard(args: Args, work_dir: str) -> Any:
    """Remove leftovers (pack archives, uploads) of a client; only plain files in the agent dir."""
    removed = 0
    for path in arg_paths(args, "paths"):
        head, name = split_parent(path)
        if head != work_dir or name.startswith("agent-"):
            raise Failure("invalid", f"{path} is not a leftover in {work_dir}")
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISREG(os.lstat(path).st_mode):
                raise Failure("invalid", f"{path} is not a regular file")
            os.unlink(path)
            removed += 1
    return {"removed": removed}


# ---------------------------------------------------------------- single files


def op_read_file(args: Args, work_dir: str) -> Any:
    import base64
    path, max_bytes = arg_path(args, "path"), arg_int(args, "max_bytes")
    # Following symlinks is fine for reading; O_NONBLOCK keeps a fifo from hanging us.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Failure("invalid", f"{path} is not a regular file")
        data = bytearray()
        # Read to EOF instead of trusting st_size: /proc files say 0, live logs grow.
        while len(data) <= max_bytes and (chunk := os.read(fd, min(CHUNK, max_bytes + 1 - len(data)))):
            data += chunk
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise Failure("invalid", f"{path} is larger than {max_bytes} bytes")
    return {"data_b64": base64.b64encode(data).decode()}


def check_expect(dfd: int, name: str, path: str, existing: os.stat_result | None, expect: str | None) -> None:
    if expect is None:
        return
    if expect == "absent":
        if existing is not None:
            raise Failure("precondition", f"{path} exists but was absent at capture (changed since capture)")
        return
    hashed = hash_at(dfd, name) if existing is not None and stat.S_ISREG(existing.st_mode) else None
    if hashed is None:
        raise Failure("precondition", f"{path} is no longer a regular file (changed since capture)")
    if hashed[0] != expect:
        raise Failure("precondition", f"{path} changed since capture (sha256 {hashed[0][:12]}, "
                                      f"expected {expect[:12]})")


def op_write_file(args: Args, work_dir: str) -> Any:
    import hashlib
    path, data = arg_path(args, "path"), b64(args.get("data_b64"), "data_b64")
    mode, uid, gid = arg_int(args, "mode", 0, 0o7777), arg_int(args, "uid", 0, 2**32 - 1), \
        arg_int(args, "gid", 0, 2**32 - 1)
    expect = arg_expect(args)
    with parent_of(path, 0o755) as (dfd, name):
        existing = lstat_at(dfd, name)
        if existing is not None and not stat.S_ISREG(existing.st_mode):
            raise Failure("invalid", f"{path} is a {kind_of(existing.st_mode)}, not a regular file")
        check_expect(dfd, name, path, existing, expect)
        replace_file(dfd, name, lambda fd: write_all(fd, data), mode=mode, uid=uid, gid=gid)
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    return entry(path, st, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def op_remove_file(args: Args, work_dir: str) -> Any:
    path, expect = arg_path(args, "path"), arg_expect(args)
    try:
        dfd, name = open_parent(path)
    except Failure as exc:
        if exc.code == "not_found" and expect == "absent":
            return None  # already gone, as the caller expects
        raise
    try:
        existing = lstat_at(dfd, name)
        if existing is None:
            if expect == "absent":
                return None
            raise Failure("not_found" if expect is None else "precondition", f"{path} does not exist")
        if not (stat.S_ISREG(existing.st_mode) or stat.S_ISLNK(existing.st_mode)):
            raise Failure("invalid", f"{path} is a {kind_of(existing.st_mode)}; only files are removed")
        check_expect(dfd, name, path, existing, expect)
        os.unlink(name, dir_fd=dfd)
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return None


# ---------------------------------------------------------------- symlinks, directories, owner and mode

STATE_TYPES = ("absent", "file", "dir", "symlink")
STATE_KEYS = frozenset({"type", "sha256", "link", "mode", "uid", "gid"})
MAX_LINK = 4095


def arg_link(args: Args, key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str) or not value or "\0" in value or len(os.fsencode(value)) > MAX_LINK:
        raise Failure("invalid", f"argument {key!r} must be non-empty link text without NUL, "
                                 f"at most {MAX_LINK} bytes")
    return value


def arg_state(args: Args) -> dict[str, Any] | None:
    """``expect``: null (no precondition, as a restore asks) or the captured state of the path."""
    value = args.get("expect")
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in STATE_TYPES or set(value) - STATE_KEYS:
        raise Failure("invalid", f"expect must be null or an object with type in {STATE_TYPES} and keys "
                                 f"from {sorted(STATE_KEYS)}")
    return value


def check_state(path: str, st: os.stat_result | None, expect: dict[str, Any] | None,
                link: str | None = None, sha256: str | None = None) -> None:
    """Refuse (``precondition``) unless the lstat ``st`` of ``path`` (with its link text or content
    digest, when the caller read them) is the state ``expect`` describes."""
    if expect is None:
        return
    have = "absent" if st is None else kind_of(st.st_mode)
    if have != expect["type"]:
        shown = "absent" if st is None else f"a {have}"
        raise Failure("precondition", f"{path} is {shown}, expected {expect['type']} (changed since capture)")
    if st is None:
        return
    actual = {"mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid, "link": link,
              "sha256": sha256}
    for key in ("mode", "uid", "gid", "link", "sha256"):
        if key in expect and actual[key] != expect[key]:
            raise Failure("precondition", f"{path}: {key} is {actual[key]!r}, expected {expect[key]!r} "
                                          "(changed since capture)")


def hash_fd(fd: int) -> str:
    import hashlib
    digest, offset = hashlib.sha256(), 0
    while chunk := os.pread(fd, CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def op_set_symlink(args: Args, work_dir: str) -> Any:
    """Create or atomically retarget a symlink (temp link, lchown, rename over): never replaces a file
    or directory, never follows anything."""
    path, target, expect = arg_path(args, "path"), arg_link(args, "target"), arg_state(args)
    uid, gid = arg_int(args, "uid", 0, 2**32 - 2), arg_int(args, "gid", 0, 2**32 - 2)
    with parent_of(path) as (dfd, name):
        st = lstat_at(dfd, name)
        if st is not None and not stat.S_ISLNK(st.st_mode):
            raise Failure("invalid", f"{path} is a {kind_of(st.st_mode)}, not a symlink")
        check_state(path, st, expect, link=None if st is None else readlink_at(dfd, name))
        replace_symlink(dfd, name, target, uid=uid, gid=gid, mtime=time.time())
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        return entry(path, st, link=readlink_at(dfd, name))


def remove_node(args: Args, wanted: str, remove: Callable[[int, str, str], None]) -> None:
    """Remove ``path`` when it is a ``wanted`` ("symlink", "dir") in the state ``expect`` describes;
    without a precondition an absent path is fine (a repeated restore). ``remove(dfd, name, path)``
    does the unlink itself; the parent directory is fsynced after it."""
    path, expect = arg_path(args, "path"), arg_state(args)
    try:
        dfd, name = open_parent(path)
    except Failure as exc:
        if exc.code == "not_found" and expect is None:
            return
        raise
    try:
        st = lstat_at(dfd, name)
        if st is None and expect is None:
            return
        if st is not None and kind_of(st.st_mode) != wanted:
            noun = "directory" if wanted == "dir" else wanted
            raise Failure("invalid", f"{path} is a {kind_of(st.st_mode)}, not a {noun}")
        link = readlink_at(dfd, name) if st is not None and wanted == "symlink" else None
        check_state(path, st, expect, link=link)
        if st is None:
            raise Failure("not_found", f"{path} does not exist")
        remove(dfd, name, path)
        os.fsync(dfd)
    finally:
        os.close(dfd)


def op_remove_symlink(args: Args, work_dir: str) -> Any:
    """Remove a symlink; an absent one is fine without a precondition (a repeated restore)."""
    remove_node(args, "symlink", lambda dfd, name, path: os.unlink(name, dir_fd=dfd))
    return None


def op_make_dir(args: Args, work_dir: str) -> Any:
    """Create a directory with this mode and owner in an existing parent; without a precondition an
    existing directory only gets the mode and owner (a repeated restore)."""
    path, expect = arg_path(args, "path"), arg_state(args)
    mode, uid, gid = arg_int(args, "mode", 0, 0o7777), arg_int(args, "uid", 0, 2**32 - 2), \
        arg_int(args, "gid", 0, 2**32 - 2)
    with parent_of(path) as (dfd, name):
        st = lstat_at(dfd, name)
        check_state(path, st, expect)
        if st is None:
            os.mkdir(name, 0o700, dir_fd=dfd)   # private until its owner and mode are set
        elif not stat.S_ISDIR(st.st_mode):
            raise Failure("invalid", f"{path} is a {kind_of(st.st_mode)}, not a directory")
        fd = os.open(name, DIR_FLAGS, dir_fd=dfd)
        try:
            set_owner_mode(fd, uid, gid, mode)
            os.fsync(fd)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        os.fsync(dfd)
    return entry(path, st)


def op_remove_dir(args: Args, work_dir: str) -> Any:
    """Remove an empty directory (``precondition`` when it is not empty); absent is fine without a
    precondition."""
    def rmdir(dfd: int, name: str, path: str) -> None:
        try:
            os.rmdir(name, dir_fd=dfd)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            raise Failure("precondition", f"{path} is not empty; refusing to remove it") from None

    remove_node(args, "dir", rmdir)
    return None


def op_set_meta(args: Args, work_dir: str) -> Any:
    """chown/chmod a file or directory through a descriptor of the very inode the precondition was
    checked on (content hashed through it too); lchown a symlink (its mode cannot change)."""
    path, expect = arg_path(args, "path"), arg_state(args)
    mode, uid, gid = arg_int(args, "mode", 0, 0o7777), arg_int(args, "uid", 0, 2**32 - 2), \
        arg_int(args, "gid", 0, 2**32 - 2)
    with parent_of(path) as (dfd, name):
        st = lstat_at(dfd, name)
        if st is None:
            check_state(path, st, expect)
            raise Failure("not_found", f"{path} does not exist")
        if stat.S_ISLNK(st.st_mode):
            link = readlink_at(dfd, name)
            check_state(path, st, expect, link=link)
            if (st.st_uid, st.st_gid) != (uid, gid):
                os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
            os.fsync(dfd)
            return entry(path, os.stat(name, dir_fd=dfd, follow_symlinks=False), link=link)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise Failure("invalid", f"{path} is a {kind_of(st.st_mode)}; only files, directories and "
                                     "symlinks are changed")
        fd = os.open(name, DIR_FLAGS if stat.S_ISDIR(st.st_mode) else READ_FLAGS, dir_fd=dfd)
        try:
            held = os.fstat(fd)
            if (held.st_dev, held.st_ino) != (st.st_dev, st.st_ino):
                raise Failure("precondition", f"{path} was replaced while it was checked")
            digest = hash_fd(fd) if stat.S_ISREG(held.st_mode) and expect and "sha256" in expect else None
            check_state(path, held, expect, sha256=digest)
            set_owner_mode(fd, uid, gid, mode)
            os.fsync(fd)
            return entry(path, os.fstat(fd))
        finally:
            os.close(fd)


def op_verify_package(args: Args, work_dir: str) -> Any:
    """Refuse a fix package whose document no longer hashes to the digest taken when it was validated.

    Called right before the first change of an apply: the orchestrator sends the package document it
    is about to apply (read back from disk) and the digest it kept from validation. The content the
    following write_file calls carry is bound to this document through the sha256 it names for each
    file (checked when the package was loaded, and again by the client on each write's answer).
    """
    import hashlib
    package_id, expected = args.get("id"), args.get("sha256")
    if not isinstance(package_id, str) or not package_id:
        raise Failure("invalid", "argument 'id' must be the package id")
    if not (isinstance(expected, str) and len(expected) == 64
            and all(c in "0123456789abcdef" for c in expected)):
        raise Failure("invalid", "argument 'sha256' must be a lowercase sha256 hex digest")
    actual = hashlib.sha256(b64(args.get("document_b64"), "document_b64")).hexdigest()
    if actual != expected:
        raise Failure("precondition", f"fix package {package_id!r} changed since it was validated "
                                      f"(sha256 {actual}, expected {expected}); refusing to apply it")
    return {"sha256": actual}


TEMP_RE = re.compile(r"^\.vmrepair-[0-9a-f]{16}\.tmp$")


def op_sweep_temps(args: Args, work_dir: str) -> Any:
    """Remove temp files an interrupted replace left in ``dirs`` (only regular files or symlinks named exactly
    like :func:`temp_name` makes them, directly in each directory); return their paths."""
    removed = []
    for directory in arg_paths(args, "dirs"):
        try:
            dfd = open_dir(directory)
        except Failure as exc:
            if exc.code == "not_found":
                continue
            raise
        try:
            for name in os.listdir(dfd):
                st = lstat_at(dfd, name) if TEMP_RE.match(name) else None
                # A temp symlink too: replace_symlink dies between symlink() and rename() as well.
                if st is not None and (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                    os.unlink(name, dir_fd=dfd)
                    removed.append(join(directory, name))
            if removed:
                os.fsync(dfd)
        finally:
            os.close(dfd)
    return removed


def copy_across(sdfd: int, sname: str, st: os.stat_result, *, ddfd: int, dname: str, dst: str) -> None:
    """Move between filesystems: a complete, fsynced copy is published before the source goes."""
    tmp = temp_name()
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(sname, dir_fd=sdfd), tmp, dir_fd=ddfd)
        try:
            os.chown(tmp, st.st_uid, st.st_gid, dir_fd=ddfd, follow_symlinks=False)
            publish_noreplace(ddfd, tmp, ddfd, dname, dst)
        finally:
            unlink_quietly(tmp, ddfd)
        return
    src = os.open(sname, READ_FLAGS, dir_fd=sdfd)
    try:
        out = os.open(tmp, os.O_WRONLY | NEW_FLAGS, 0o600, dir_fd=ddfd)
        try:
            copy_fd(src, out)
            set_owner_mode(out, st.st_uid, st.st_gid, st.st_mode)
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.fsync(out)
        finally:
            os.close(out)
        publish_noreplace(ddfd, tmp, ddfd, dname, dst)
    finally:
        os.close(src)
        unlink_quietly(tmp, ddfd)


def op_move_file(args: Args, work_dir: str) -> Any:
    src, dst = arg_path(args, "src"), arg_path(args, "dst")
    if src == dst or dst.startswith(src + "/"):
        raise Failure("invalid", f"cannot move {src} onto {dst}")
    with parent_of(src) as (sdfd, sname):
        st = lstat_at(sdfd, sname)
        if st is None:
            raise Failure("not_found", f"{src} does not exist")
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            raise Failure("invalid", f"{src} is a {kind_of(st.st_mode)}; only files are moved")
        with parent_of(dst, 0o700) as (ddfd, dname):
            move_at(sdfd, sname, st, ddfd=ddfd, dname=dname, dst=dst)
    return None


def move_at(sdfd: int, sname: str, st: os.stat_result, *, ddfd: int, dname: str, dst: str) -> None:
    if lstat_at(ddfd, dname) is not None:
        raise Failure("precondition", f"{dst} already exists; refusing to overwrite")
    try:
        publish_noreplace(sdfd, sname, ddfd, dname, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        copy_across(sdfd, sname, st, ddfd=ddfd, dname=dname, dst=dst)
        os.unlink(sname, dir_fd=sdfd)
    os.fsync(ddfd)
    os.fsync(sdfd)


# ---------------------------------------------------------------- JSON lines


def scan_lines(fd: int, size: int | None = None,
               max_line: int | None = None) -> Iterator[tuple[bytes | None, int, int, bool]]:
    """Yield (line, start, end, has_newline) for every line of ``fd`` from offset 0 (to EOF, or to
    ``size`` for a snapshot that ignores later appends).

    ``line`` is None for a line longer than ``max_line`` (MAX_LINE by default): its bytes are dropped
    as they stream by so memory stays bounded, and only its offsets are kept (for copying it out with
    pread). The orchestrator's own JSON-lines checks read through this function too.
    """
    cap = MAX_LINE if max_line is None else max_line
    offset = start = 0
    buf = bytearray()
    oversized = False
    while size is None or offset < size:
        chunk = os.pread(fd, CHUNK if size is None else min(CHUNK, size - offset), offset)
        if not chunk:
            break  # end of file, or truncated under us: what was read is what there is
        view = memoryview(chunk)
        pos = 0
        while pos < len(chunk):
            newline = chunk.find(b"\n", pos)
            stop = len(chunk) if newline < 0 else newline
            if not oversized:
                buf += view[pos:stop]
                if len(buf) > cap:
                    oversized, buf = True, bytearray()
            if newline < 0:
                break
            yield (None if oversized else bytes(buf)), start, offset + newline, True
            start, pos, buf, oversized = offset + newline + 1, newline + 1, bytearray(), False
        offset += len(chunk)
    if offset > start:
        yield (None if oversized else bytes(buf)), start, offset, False


def line_problem(line: bytes | None) -> str | None:
    """Why a non-blank line is not a JSON object; None when it is one."""
    if line is None:
        return f"line longer than {MAX_LINE} bytes"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 at byte {exc.start}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not JSON: {exc.msg.removesuffix(' at')} at column {exc.colno}"
    except (ValueError, RecursionError) as exc:  # huge integers, absurd nesting
        return f"not JSON: {type(exc).__name__}: {str(exc)[:MAX_REASON]}"
    return None if isinstance(value, dict) else f"not a JSON object ({type(value).__name__})"


def is_blank(line: bytes | None) -> bool:
    return line is not None and not line.strip()


def op_jsonl_check(args: Args, work_dir: str) -> Any:
    path = arg_path(args, "path")
    report: dict[str, Any] = {"path": path, "exists": False, "total_lines": 0, "good_lines": 0,
                              "bad_lines": [], "torn_tail": False}
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in VANISHED:
            return report
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Failure("invalid", f"{path} is not a regular file")
        report["exists"] = True
        for number, (line, _, _, has_newline) in enumerate(scan_lines(fd), 1):
            report["total_lines"] = number
            if is_blank(line):
                continue
            problem = line_problem(line)
            if problem is None:
                report["good_lines"] += 1
                continue
            if not has_newline:
                report["torn_tail"] = True
                problem = f"incomplete last line: {problem}"
            if len(report["bad_lines"]) < MAX_BAD_LINES:
                report["bad_lines"].append({"line": number, "reason": problem[:MAX_REASON]})
    finally:
        os.close(fd)
    return report


def salvage(line: bytes) -> list[tuple[int, int, bytes | None]]:
    """Split a bad line into segments that cover it exactly and in order, or [] when no JSON object
    can be recovered from it (then the whole line is quarantined).

    A segment is ``(start, end, record)`` in byte offsets of ``line``. ``record`` is what the repaired
    file gets: the bytes ``line[start:end]`` themselves, plus a closer from CLOSERS when a crash cut
    the last object short; None means ``line[start:end]`` holds no object (garbage, NUL padding, a
    list, a number ...) and goes to the quarantine. Whitespace JSON allows around a value stays with
    the object next to it; so every byte ends up in the repaired file or in the quarantine, and a
    line like ``{"id":1}X{"id":2}`` keeps both objects and quarantines the ``X`` (issue 13).
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return []  # offsets in undecodable bytes are guesswork: quarantine the line whole
    objects = find_objects(text)
    if not objects:
        return []
    segments: list[tuple[int, int, str | None]] = []  # character offsets; None: quarantined
    previous = 0
    for start, end, closer in objects:
        lead = previous
        if text[previous:start].strip(JSON_SPACE):
            segments.append((previous, start, None))
            lead = start
        segments.append((lead, end, closer))
        previous = end
    if previous < len(text):
        last_start, _, last_closer = segments[-1]
        if text[previous:].strip(JSON_SPACE) or last_closer:  # a closer stays the record's last bytes
            segments.append((previous, len(text), None))
        else:
            segments[-1] = (last_start, len(text), last_closer)
    return byte_segments(line, text, segments)


def find_objects(text: str) -> list[tuple[int, int, str]]:
    """The JSON objects in ``text`` as (start, end, closer appended): complete ones wherever they are,
    and a last one cut short that a closer from CLOSERS completes."""
    decoder = json.JSONDecoder()
    found: list[tuple[int, int, str]] = []
    pos = tries = completions = deep = 0
    content_end = len(text.rstrip(JSON_WS))
    budget = SALVAGE_SCAN_FACTOR * len(text) + CHUNK
    while tries < MAX_SALVAGE_TRIES and budget > 0 and deep < MAX_DEEP_FAILURES:
        start = text.find("{", pos)
        if start < 0:
            break
        try:
            _, end = decoder.raw_decode(text, start)  # a value starting with "{" is an object
        except json.JSONDecodeError as exc:
            budget -= exc.pos - start
            # Ran out of text (or of a string): perhaps the last object, cut short by a crash.
            cut = exc.pos >= content_end or exc.msg.startswith("Unterminated string")
            if cut and completions < MAX_COMPLETIONS:
                completions += 1
                completed = complete(text, start)
                if completed is not None:
                    found.append(completed)
                    break
            tries, pos = tries + 1, start + 1
        except (ValueError, RecursionError):  # absurd nesting, integers too long to parse
            tries, pos, deep = tries + 1, start + 1, deep + 1
        else:
            found.append((start, end, ""))
            pos = end
    return found


def complete(text: str, start: int) -> tuple[int, int, str] | None:
    """(start, end, closer) when ``text[start:end] + closer`` is an object for a closer in CLOSERS."""
    stripped = len(text.rstrip(JSON_WS))
    ends = [len(text)] if not text[stripped:].strip(JSON_SPACE) else []
    for end in [*ends, stripped] if stripped > start else ends:
        if not text[start + 1:end].strip(JSON_WS):
            continue  # a lone "{" is noise, not a record worth inventing
        for closer in CLOSERS:
            if is_object(text[start:end] + closer):
                return start, end, closer
    return None


def byte_segments(line: bytes, text: str, segments: list[tuple[int, int, str | None]]) \
        -> list[tuple[int, int, bytes | None]]:
    """``segments`` (contiguous, character offsets of ``text``) in byte offsets of ``line``, its UTF-8."""
    ascii_only = len(line) == len(text)
    done: list[tuple[int, int, bytes | None]] = []
    byte = 0
    for start, end, closer in segments:
        size = end - start if ascii_only else len(text[start:end].encode("utf-8"))
        piece = line[byte:byte + size]
        done.append((byte, byte + size, None if closer is None else piece + closer.encode("utf-8")))
        byte += size
    return done


def is_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


class Repair:
    """One jsonl_repair: backup, rewrite kept and repaired lines, quarantine the rest.

    Every byte read ends up in the repaired file or in the quarantine (raw, one entry per line):
    blank lines are kept as they are, a damaged line is split by :func:`salvage` into its objects
    (written out) and the bytes around them (quarantined as fragments, in order). A file with no
    object left to keep is refused and left untouched rather than emptied.
    """

    def __init__(self, dfd: int, name: str, path: str, st: os.stat_result) -> None:
        self.dfd, self.name, self.path, self.st = dfd, name, path, st
        self.stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.kept = self.repaired = self.quarantined = self.fragments = self.objects = self.lines = 0
        self.quarantine: tuple[str, int] | None = None

    def owned(self, fd: int, mode: int) -> None:
        set_owner_mode(fd, self.st.st_uid, self.st.st_gid, mode)

    def line(self, line: bytes | None, start: int, end: int, source: int, out: IO[bytes]) -> None:
        self.lines += 1
        if line is not None and (is_blank(line) or line_problem(line) is None):
            out.write(line + b"\n")
            self.kept += 1
            self.objects += not is_blank(line)
            return
        segments = salvage(line) if line is not None else []
        if line is not None and segments:
            for seg_start, seg_end, record in segments:
                if record is None:
                    self.to_quarantine(line[seg_start:seg_end])
                    self.fragments += 1
                else:
                    out.write(record + b"\n")
                    self.objects += 1
            self.repaired += 1
            return
        if line is not None:
            self.to_quarantine(line)
        else:  # too long to have been kept in memory: copy it from the backup
            qfd = self.to_quarantine(b"", newline=False)
            for offset in range(start, end, CHUNK):
                write_all(qfd, os.pread(source, min(CHUNK, end - offset), offset))
            write_all(qfd, b"\n")
        self.quarantined += 1

    def to_quarantine(self, data: bytes, *, newline: bool = True) -> int:
        if self.quarantine is None:
            self.quarantine = create_unique(self.dfd, f"{self.name}.quarantine-{self.stamp}")
            self.owned(self.quarantine[1], 0o600)
        write_all(self.quarantine[1], data + b"\n" if newline else data)
        return self.quarantine[1]

    def check_something_kept(self) -> None:
        # Writing out no object would empty the file: keep it instead, it is the evidence.
        if self.quarantined and not self.objects:
            raise Failure("invalid", f"nothing good to keep in {self.path}: none of its {self.lines} line(s) "
                          "holds a JSON object; it was left untouched (the evidence is the file itself)")

    def check_unchanged(self, original: int, copied: int) -> None:
        # Replacing the log by rename would lose whatever a writer appended since we read it.
        now = os.fstat(original)
        if copied != self.st.st_size or (now.st_size, now.st_mtime_ns) != (copied, self.st.st_mtime_ns):
            raise Failure("precondition", f"{self.path} changed during the repair (still written to?)")

    def run(self, original: int) -> dict[str, Any]:
        backup, bfd = create_unique(self.dfd, f"{self.name}.bak-{self.stamp}")
        tmp = temp_name()
        try:
            copied = copy_fd(original, bfd)
            self.owned(bfd, self.st.st_mode)
            os.fsync(bfd)
            # Work from the backup: it cannot change under us, and what we checked is what we keep.
            with os.fdopen(os.open(tmp, os.O_WRONLY | NEW_FLAGS, 0o600, dir_fd=self.dfd), "wb") as out:
                for line, start, end, _ in scan_lines(bfd):
                    self.line(line, start, end, bfd, out)
                self.check_something_kept()
                out.flush()
                self.owned(out.fileno(), self.st.st_mode)
                os.fsync(out.fileno())
            if self.quarantine is not None:
                os.fsync(self.quarantine[1])
            self.check_unchanged(original, copied)
            os.fsync(self.dfd)  # backup and quarantine are durable before the log is replaced
        except BaseException:
            for leftover in (tmp, backup, self.quarantine[0] if self.quarantine else None):
                if leftover is not None:
                    unlink_quietly(leftover, self.dfd)
            raise
        finally:
            os.close(bfd)
            if self.quarantine is not None:
                os.close(self.quarantine[1])
        os.rename(tmp, self.name, src_dir_fd=self.dfd, dst_dir_fd=self.dfd)
        os.fsync(self.dfd)
        head = split_parent(self.path)[0]
        return {"path": self.path, "kept": self.kept, "repaired": self.repaired,
                "quarantined": self.quarantined, "fragments": self.fragments,
                "backup_path": join(head, backup),
                "quarantine_path": join(head, self.quarantine[0]) if self.quarantine else None}


def open_regular(dfd: int, name: str, path: str, flags: int) -> tuple[int, os.stat_result]:
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Failure("invalid", f"{path} is a symlink; refusing") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise Failure("invalid", f"{path} is not a regular file")
    return fd, st


def op_jsonl_repair(args: Args, work_dir: str) -> Any:
    path = arg_path(args, "path")
    with parent_of(path) as (dfd, name):
        fd, st = open_regular(dfd, name, path, os.O_RDONLY)
        try:
            return Repair(dfd, name, path, st).run(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------- logs and disks


def compress(dfd: int, name: str, path: str, fd: int, st: os.stat_result) -> tuple[str, int]:
    """gzip ``fd`` to a new archive beside it, verified by decompressing; (archive name, size)."""
    import gzip
    import hashlib
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    archive, afd = create_unique(dfd, f"{name}.{stamp}", ".gz")
    try:
        set_owner_mode(afd, st.st_uid, st.st_gid, st.st_mode)
        digest, size = hashlib.sha256(), 0
        with os.fdopen(afd, "wb", closefd=False) as out, \
                gzip.GzipFile(filename="", mode="wb", compresslevel=1, fileobj=out, mtime=0) as packed:
            while chunk := os.read(fd, CHUNK):
                digest.update(chunk)
                size += len(chunk)
                packed.write(chunk)
        os.fsync(afd)
        os.fsync(dfd)
        verify_gzip(afd, digest.digest(), size, f"{archive}; {path} left untouched")
        return archive, os.fstat(afd).st_size
    except BaseException as exc:
        unlink_quietly(archive, dfd)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise Failure("nospace", f"no space left to compress {path}; partial archive removed") from None
        raise
    finally:
        os.close(afd)


def verify_gzip(fd: int, sha256: bytes, size: int, what: str) -> None:
    """Decompress the archive in ``fd`` and compare with the digest of what went in."""
    import gzip
    import hashlib
    os.lseek(fd, 0, os.SEEK_SET)
    check, checked = hashlib.sha256(), 0
    with os.fdopen(fd, "rb", closefd=False) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as unpacked:
        while chunk := unpacked.read(CHUNK):
            check.update(chunk)
            checked += len(chunk)
    if (check.digest(), checked) != (sha256, size):
        raise Failure("io", f"verifying {what} failed")


def keep_tail(fd: int, size: int) -> None:
    """Keep the last TRUNCATE_KEEP bytes (from the first line start in them) at the front of the file."""
    start = size - TRUNCATE_KEEP
    newline = os.pread(fd, TRUNCATE_KEEP, start).find(b"\n")
    if 0 <= newline < TRUNCATE_KEEP - 1:
        start += newline + 1
    # Copying forwards is safe although the ranges may overlap: the destination is always before
    # the source, so no byte is overwritten before it is read.
    for offset in range(start, size, CHUNK):
        write_all(fd, os.pread(fd, min(CHUNK, size - offset), offset), offset - start)
    os.ftruncate(fd, size - start)


def op_rotate_log(args: Args, work_dir: str) -> Any:
    path, method = arg_path(args, "path"), args.get("method")
    if method not in ("compress", "truncate"):
        raise Failure("invalid", "method must be 'compress' or 'truncate'")
    archive: str | None = None
    archive_size = 0
    with parent_of(path) as (dfd, name):
        fd, st = open_regular(dfd, name, path, os.O_RDWR)
        try:
            if method == "compress" and st.st_size:
                archive, archive_size = compress(dfd, name, path, fd, st)
                # copytruncate: writers keep their descriptor and go on writing into the same file.
                os.ftruncate(fd, 0)
            elif st.st_size > TRUNCATE_KEEP:
                keep_tail(fd, st.st_size)
            os.fsync(fd)
            after = os.fstat(fd).st_size
        finally:
            os.close(fd)
    return {"path": path, "method": method, "freed_bytes": st.st_size - after - archive_size,
            "archive": join(split_parent(path)[0], archive) if archive else None}


def op_disk_usage(args: Args, work_dir: str) -> Any:
    mount = arg_path(args, "mount")
    vfs = os.statvfs(mount)
    used = (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize
    avail = vfs.f_bavail * vfs.f_frsize
    inodes_used = vfs.f_files - vfs.f_ffree
    # df's arithmetic: blocks reserved for root count neither as used nor as available; inodes
    # are simply used / total.
    return {
        "mount": mount, "size_bytes": vfs.f_blocks * vfs.f_frsize, "used_bytes": used,
        "avail_bytes": avail, "used_pct": 100.0 * used / (used + avail) if used + avail else 0.0,
        "inodes_total": vfs.f_files, "inodes_used": inodes_used,
        "inodes_pct": 100.0 * inodes_used / vfs.f_files if vfs.f_files else 0.0,
    }


#: A package as ``dpkg-query -W -f '${binary:Package}'`` prints it (name, or name:arch for Multi-Arch: same).
DPKG_BINARY = re.compile(r"[a-z0-9][a-z0-9+.-]{0,199}(:[a-z0-9][a-z0-9-]{0,31})?")
DPKG_INFO = "/var/lib/dpkg/info"
DPKG_STATUS_FILE = "/var/lib/dpkg/status"
#: The largest ``.list`` read (texlive's are a few megabytes).
MAX_LIST_BYTES = 64 * 1024 * 1024
#: Files a fingerprint looks at, in all (a few packages with everything they ship).
MAX_FINGERPRINT_FILES = 200_000
#: A change this recent may share its ctime with a later one (the clock's tick): not cached.
RACY_NS = 2_000_000_000


def dpkg_list(binary: str) -> list[str] | None:
    """The paths dpkg's ``<binary>.list`` names (what the installed package shipped), or None when dpkg
    has no list of it. Never through a symlink, never waiting on a FIFO.

    Raises: Failure (``invalid``: not a regular file, or a symlink; ``too_large``: over
    :data:`MAX_LIST_BYTES`)."""
    path = f"{DPKG_INFO}/{binary}.list"
    try:
        fd = os.open(path, READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Failure("invalid", f"refusing {path}: it is a symlink") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Failure("invalid", f"{path} is not a regular file")
        data = bytearray()
        while len(data) <= MAX_LIST_BYTES and (chunk := os.read(fd, CHUNK)):
            data += chunk
    finally:
        os.close(fd)
    if len(data) > MAX_LIST_BYTES:
        raise Failure("too_large", f"{path} is larger than {MAX_LIST_BYTES} bytes")
    return [os.fsdecode(raw) for raw in bytes(data).split(b"\n") if raw.startswith(b"/")]


def op_dpkg_fingerprint(args: Args, work_dir: str) -> Any:
    """What ``dpkg --verify`` of ``binaries`` would look at, as one digest: the lstat (inode, size,
    mtime, ctime, mode) of every non-directory their ``.list`` names, of their ``.list`` and
    ``.md5sums`` and of dpkg's status file (a directory counts by its path and type only). Content
    cannot change without changing a file's ctime, so an equal digest means an earlier verify's answer
    still holds; ``racy`` says a file changed so recently that a later change could share its ctime
    (the caller then verifies and keeps nothing)."""
    binaries = args.get("binaries")
    if not isinstance(binaries, list) or not 0 < len(binaries) <= 64 or not all(
            isinstance(b, str) and DPKG_BINARY.fullmatch(b) for b in binaries):
        raise Failure("invalid", "binaries must be 1 to 64 dpkg package names")
    digest = hashlib.sha256()
    now = time.time_ns()
    racy = False
    count = 0

    def add(path: str) -> None:
        nonlocal racy
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            digest.update(f"-\0{path}\0".encode("utf-8", "surrogateescape"))
            return
        if stat.S_ISDIR(st.st_mode):
            # dpkg --verify hashes files only; a directory's times move with every file made in it
            # (/etc, /var/log), which would make every fingerprint differ.
            digest.update(f"d\0{path}\0".encode("utf-8", "surrogateescape"))
            return
        racy = racy or st.st_ctime_ns >= now - RACY_NS or st.st_mtime_ns >= now - RACY_NS
        digest.update(f"{path}\0{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:"
                      f"{st.st_mode}\0".encode("utf-8", "surrogateescape"))

    add(DPKG_STATUS_FILE)
    for binary in binaries:
        add(f"{DPKG_INFO}/{binary}.list")
        add(f"{DPKG_INFO}/{binary}.md5sums")
        # None: dpkg knows no files of it, and the status file's stat covers its state.
        for path in dpkg_list(binary) or ():
            count += 1
            if count > MAX_FINGERPRINT_FILES:
                raise Failure("too_large", f"more than {MAX_FINGERPRINT_FILES} packaged files")
            add(path)
    return {"fingerprint": digest.hexdigest(), "racy": racy, "files": count}


#: Where apt keeps the packages it downloaded; the only directory deb_meta reads from (a module
#: constant so tests can point it at a temporary directory).
DEB_ARCHIVES = "/var/cache/apt/archives"
#: A file name apt gives a downloaded package: name_version_arch.deb, the epoch's ':' as "%3a".
DEB_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]{0,199}_(?:[0-9]{1,9}%3a)?[0-9][A-Za-z0-9.+~-]{0,199}"
                      r"_[a-z0-9][a-z0-9-]{0,31}\.deb")
AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60
#: A .deb holds debian-binary, control.tar.* and data.tar.* (dpkg tolerates extra "_"-members).
MAX_AR_MEMBERS = 16
MAX_AR_SIZE = 8 * 1024 ** 3
#: Tar members read from one data.tar (texlive-fonts-extra, among the largest, ships about 90,000).
MAX_DEB_MEMBERS = 200_000
MAX_DEB_PATHS = 4096
#: deb_file answers config files (the caller asks for up to 1 MiB); a file over this is refused.
MAX_DEB_FILE_BYTES = 8 * 1024 * 1024
#: The data member's compressions tarfile can stream; zstd (Ubuntu's default since 22.04) is not in
#: the stdlib.
DEB_DATA = {"data.tar": "r|", "data.tar.gz": "r|gz", "data.tar.xz": "r|xz", "data.tar.bz2": "r|bz2"}


class Bounded:
    """Reads at most ``size`` bytes of ``fd`` from where it stands: the data member, never past it."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.left = fd, size

    def read(self, size: int = -1) -> bytes:
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = os.read(self.fd, size) if size else b""
        self.left -= len(data)
        return data


def read_exactly(fd: int, size: int, what: str) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise Failure("invalid", f"{what}: cut short")
        data += chunk
    return data


def open_deb(path: str) -> int:
    """The .deb ``path`` opened read-only, never through a symlink; it must be a plain file directly in
    DEB_ARCHIVES with an apt file name."""
    check_path(path, "deb")
    head, name = split_parent(path)
    if head != DEB_ARCHIVES or not DEB_NAME.fullmatch(name):
        raise Failure("invalid", f"deb must be a package file name_version_arch.deb directly in "
                                 f"{DEB_ARCHIVES}, got {path!r}")
    dfd = open_dir(head, for_path=path)
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dfd)
    except FileNotFoundError:
        raise Failure("not_found", f"{path} does not exist") from None
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise Failure("invalid", f"refusing {path}: it is a symlink") from None
    finally:
        os.close(dfd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Failure("invalid", f"refusing {path}: not a regular file")
    return fd


def find_data_member(fd: int, path: str) -> tuple[str, int]:
    """Walk the ar container up to the data member: its name and size, ``fd`` at its first byte."""
    if read_exactly(fd, len(AR_MAGIC), path) != AR_MAGIC:
        raise Failure("invalid", f"{path} is not a Debian package (no ar magic)")
    for _ in range(MAX_AR_MEMBERS):
        header = os.read(fd, AR_HEADER)
        if not header:
            break
        if len(header) != AR_HEADER or header[58:60] != b"`\n":
            raise Failure("invalid", f"{path}: damaged ar member header")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size_text = header[48:58].decode("ascii", "replace").strip()
        if not size_text.isdigit() or int(size_text) > MAX_AR_SIZE:
            raise Failure("invalid", f"{path}: ar member {name!r} has a bad size")
        size = int(size_text)
        # A cut-off data member could end the tar stream early and make shipped paths look absent.
        if size > os.fstat(fd).st_size - os.lseek(fd, 0, os.SEEK_CUR):
            raise Failure("invalid", f"{path}: ar member {name!r} is cut short")
        if name.startswith("data.tar"):
            if name not in DEB_DATA:
                raise Failure("invalid", f"{path}: {name} uses an unsupported compression "
                                         f"(only {', '.join(DEB_DATA)} can be read)")
            return name, size
        os.lseek(fd, size + size % 2, os.SEEK_CUR)  # members are padded to an even offset
    raise Failure("invalid", f"{path}: no data.tar member")


def deb_member_path(name: str) -> str | None:
    """``./etc/x`` as ``/etc/x``; None for a name with a '..' component."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        return None
    return "/" + "/".join(parts)


#: The member headers of the .debs this process read, by the file's identity (device, inode, size,
#: mtime, ctime), and whether the whole data.tar was read: a server answers a whole run, and a round
#: asks about one .deb once per component (systemd's for journald, udevd, the gettys ...), each a
#: decompression of its data.tar (a second or more under TCG). A file replaced or rewritten has another
#: identity, so it is read again.
DEB_MEMBERS: dict[tuple[int, ...], tuple[dict[str, dict[str, Any]], bool]] = {}
#: .debs whose headers a process keeps (the oldest is dropped first).
MAX_DEB_MEMO = 16


def dpkg_listed(deb: str) -> set[str] | None:
    """The paths dpkg says the installed package of the .deb file ``deb`` shipped (its ``.list``:
    ``<name>:<arch>.list`` for a Multi-Arch: same package, else ``<name>.list``), or None when there
    is no usable list."""
    name, _, rest = split_parent(deb)[1].partition("_")
    arch = rest.rpartition("_")[2].removesuffix(".deb")
    for binary in (f"{name}:{arch}", name):
        try:
            paths = dpkg_list(binary)
        except (Failure, OSError):
            return None
        if paths is not None:
            return {"/" if path == "/." else path for path in paths}
    return None


def deb_data(fd: int, deb: str) -> Generator[tuple[str, Any, Any], None, None]:
    """(path, tar member, the tar) of each member of the data.tar of the .deb open on ``fd``, streamed in
    the archive's order (a member with a '..' component is skipped). A damaged or unreadable data.tar
    raises Failure; so do more than MAX_DEB_MEMBERS members."""
    import tarfile
    import zlib
    member, size = find_data_member(fd, deb)
    try:
        with tarfile.open(fileobj=Bounded(fd, size), mode=DEB_DATA[member]) as tar:  # type: ignore[call-overload]
            for count, info in enumerate(tar, 1):
                if count > MAX_DEB_MEMBERS:
                    raise Failure("invalid", f"{deb}: more than {MAX_DEB_MEMBERS} members in {member}")
                name = deb_member_path(info.name)
                if name is not None:
                    yield name, info, tar
    except tarfile.CompressionError as exc:  # this interpreter lacks lzma or bz2
        raise Failure("invalid", f"{deb}: unsupported compression of {member}: {exc}") from None
    # In stream mode tarfile turns the decompressors' errors into ReadError (a TarError).
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise Failure("invalid", f"{deb}: damaged {member}: {exc}") from None


def deb_members(fd: int, deb: str, until: set[str] | None = None) -> tuple[dict[str, dict[str, Any]], bool]:
    """The member headers of the .deb open on ``fd``, by path, and whether the whole data.tar was read.
    With ``until``, reading stops once every path of it was seen: the headers come in the archive's
    order, and a component's config files in /etc are near its start (under 15 % of udev's data.tar
    and 25 % of systemd's come before the last unit file of theirs that a probe asks about)."""
    found: dict[str, dict[str, Any]] = {}
    pending = set(until) if until is not None else None
    members = deb_data(fd, deb)
    for name, info, _ in members:
        kind = "file" if info.isfile() or info.islnk() else "dir" if info.isdir() \
            else "symlink" if info.issym() else "other"
        found[name] = {"path": name, "type": kind, "mode": info.mode & 0o7777, "uid": info.uid,
                       "gid": info.gid, "uname": info.uname[:256], "gname": info.gname[:256]}
        if pending is not None:
            pending.discard(name)
            if not pending:
                members.close()
                return found, False
    return found, True


def op_deb_file(args: Args, work_dir: str) -> Any:
    """The content of the regular file ``path`` as the package ``deb`` ships it, streamed from its
    data.tar up to that member (nothing is written to disk, nothing after it is decompressed); found
    false when the package ships no regular file there. Over ``max_bytes``: too_large."""
    import base64
    path, max_bytes = arg_path(args, "path"), arg_int(args, "max_bytes", 0, MAX_DEB_FILE_BYTES)
    deb = args.get("deb")
    fd = open_deb(deb if isinstance(deb, str) else "")
    try:
        members = deb_data(fd, str(deb))
        for name, info, tar in members:
            if name != path:
                continue
            if not info.isfile():
                members.close()
                return {"found": False}
            if info.size > max_bytes:
                members.close()
                raise Failure("too_large", f"{deb} ships {path} with {info.size} bytes, over {max_bytes}")
            data = tar.extractfile(info).read(max_bytes + 1)
            members.close()
            if len(data) != info.size:
                raise Failure("invalid", f"{deb}: {path} is cut short")
            return {"found": True, "data_b64": base64.b64encode(data).decode()}
        return {"found": False}
    finally:
        os.close(fd)


def op_deb_meta(args: Args, work_dir: str) -> Any:
    """Type, mode, owner of ``paths`` as the package ``deb`` ships them (its data.tar's member headers,
    streamed, nothing extracted), and the paths it does not ship. dpkg records no modes, so the .deb is
    the package's only word on them.

    Which of ``paths`` the package ships, dpkg's .list of the installed package says (the .deb is the one
    apt cached for the installed version): reading stops once all of those were seen, and the others are
    absent. Without a .list (or when one of its paths never comes), the whole data.tar is read."""
    paths = arg_paths(args, "paths")
    if not 0 < len(paths) <= MAX_DEB_PATHS:
        raise Failure("invalid", f"paths must be 1 to {MAX_DEB_PATHS} paths")
    deb = args.get("deb")
    fd = open_deb(deb if isinstance(deb, str) else "")
    asked = list(dict.fromkeys(paths))  # each path answered once, however often it was asked
    try:
        st = os.fstat(fd)
        identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        found, complete = DEB_MEMBERS.get(identity, ({}, False))
        listed = None if complete else dpkg_listed(str(deb))
        wanted = None if listed is None else {p for p in asked if p in listed}
        if not complete and (wanted is None or not wanted <= found.keys()):
            more, complete = deb_members(fd, str(deb), wanted)
            found = {**found, **more}
            DEB_MEMBERS.pop(identity, None)
            while len(DEB_MEMBERS) >= MAX_DEB_MEMO:
                del DEB_MEMBERS[next(iter(DEB_MEMBERS))]
            DEB_MEMBERS[identity] = (found, complete)
    finally:
        os.close(fd)
    return {"entries": [found[p] for p in asked if p in found],
            "absent": [p for p in asked if p not in found]}


#: A URL the http_status op accepts: http(s), printable ASCII, no spaces (the client checks it too).
HTTP_URL = re.compile(r"https?://[!-~]{1,2000}")


def op_http_status(args: Args, work_dir: str) -> Any:
    """GET ``url`` without following redirects or any proxy, as ``curl -sS --noproxy '*'`` would:
    the status line's code, or why no HTTP answer came within ``timeout_s`` (per socket operation).
    The body is never read. Imported here: only the probes that ask pay for http.client."""
    import http.client
    import urllib.parse

    url = args.get("url")
    if not isinstance(url, str) or not HTTP_URL.fullmatch(url):
        raise Failure("invalid", "url must be an http:// or https:// URL of printable ASCII")
    timeout = args.get("timeout_s")
    if not isinstance(timeout, (int, float)) or not 0 < timeout <= 60:
        raise Failure("invalid", "timeout_s must be a number in (0, 60]")
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise Failure("invalid", f"bad url: {exc}") from exc
    if not host:
        raise Failure("invalid", "url has no host")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = kind(host, port, timeout=float(timeout))
    try:
        conn.request("GET", target, headers={"User-Agent": "vmrepair-agent", "Accept": "*/*"})
        return {"status": conn.getresponse().status, "error": None}
    except (OSError, http.client.HTTPException) as exc:
        return {"status": None, "error": f"{type(exc).__name__}: {exc}"[:500]}
    finally:
        conn.close()


def open_for_writing(files: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Which (dev, ino) of ``files`` some process holds open for writing (best effort, via /proc)."""
    found: set[tuple[int, int]] = set()
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # gone, or not ours to look at
        for fd in fds:
            try:
                st = os.stat(f"/proc/{pid}/fd/{fd}")
                if (st.st_dev, st.st_ino) not in files:
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}", "rb") as info:
                    flags = next((int(x.split()[1], 8) for x in info if x.startswith(b"flags:")), 0)
            except (OSError, ValueError, IndexError):
                continue
            if flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR):
                found.add((st.st_dev, st.st_ino))
    return found


def op_big_files(args: Args, work_dir: str) -> Any:
    import heapq
    roots = arg_paths(args, "roots")
    min_bytes, limit = arg_int(args, "min_bytes"), arg_int(args, "limit", 1, 10_000)
    best: list[tuple[int, str, tuple[int, int]]] = []
    seen: set[str] = set()
    for root in roots:
        if not os.path.lexists(root):
            continue
        for path, st, _, _ in walk(root):
            if path in seen or not stat.S_ISREG(st.st_mode) or st.st_size < min_bytes:
                continue
            seen.add(path)
            item = (st.st_size, path, (st.st_dev, st.st_ino))
            if len(best) < limit:
                heapq.heappush(best, item)
            else:
                heapq.heappushpop(best, item)
    best.sort(key=lambda item: (-item[0], item[1]))
    writers = open_for_writing({key for _, _, key in best}) if best else set()
    return {"files": [{"path": path, "size": size, "is_open_by_writer": key in writers}
                      for size, path, key in best]}


# ---------------------------------------------------------------- dispatch

#: Operations a batch may carry: reads that change nothing (a batch answers the detect and validate
#: probes with one interpreter start instead of one each).
BATCHABLE = ("manifest", "read_file", "jsonl_check", "disk_usage", "big_files")
MAX_BATCH = 64


def op_batch(args: Args, work_dir: str) -> Any:
    requests = args.get("requests")
    if not isinstance(requests, list) or not 0 < len(requests) <= MAX_BATCH:
        raise Failure("invalid", f"requests must be a list of 1 to {MAX_BATCH} requests")
    answers = []
    for request in requests:
        if not isinstance(request, dict) or request.get("op") not in BATCHABLE:
            answers.append({"ok": False, "code": "invalid",
                            "error": f"only {', '.join(BATCHABLE)} can be batched"})
        else:
            answers.append(handle(request, work_dir=work_dir))
    return {"answers": answers}


OPS: dict[str, Callable[[Args, str], Any]] = {
    "manifest": op_manifest, "pack": op_pack, "unpack": op_unpack, "discard": op_discard,
    "read_file": op_read_file, "write_file": op_write_file, "remove_file": op_remove_file,
    "verify_package": op_verify_package,
    "set_symlink": op_set_symlink, "remove_symlink": op_remove_symlink, "make_dir": op_make_dir,
    "remove_dir": op_remove_dir, "set_meta": op_set_meta,
    "sweep_temps": op_sweep_temps,
    "move_file": op_move_file, "jsonl_check": op_jsonl_check, "jsonl_repair": op_jsonl_repair,
    "rotate_log": op_rotate_log, "disk_usage": op_disk_usage, "big_files": op_big_files,
    "http_status": op_http_status, "dpkg_fingerprint": op_dpkg_fingerprint, "deb_meta": op_deb_meta,
    "deb_file": op_deb_file,
    "batch": op_batch,
}


def describe(exc: OSError) -> str:
    where = " ".join(repr(f) for f in (exc.filename, exc.filename2) if f is not None)
    return f"{exc.strerror or exc}{': ' + where if where else ''}"


def dispatch(request: object, work_dir: str) -> Any:
    if not isinstance(request, dict) or not isinstance(request.get("args", {}), dict):
        raise Failure("invalid", "request must be an object with 'op' and an 'args' object")
    op = OPS.get(str(request.get("op")))
    if op is None:
        raise Failure("invalid", f"unknown op {request.get('op')!r}")
    return op(request.get("args", {}), work_dir)


def handle(request: object, *, work_dir: str) -> dict[str, Any]:
    """Answer one request; refusals and OS errors become ``{"ok": false}`` answers."""
    try:
        return {"ok": True, "result": dispatch(request, work_dir)}
    except Failure as exc:
        return {"ok": False, "error": exc.message, "code": exc.code}
    except OSError as exc:
        code = {errno.ENOENT: "not_found", errno.ENOSPC: "nospace", errno.EDQUOT: "nospace"}
        message = describe(exc)
        args = request.get("args") if isinstance(request, dict) else None
        subject = next((args[k] for k in ("path", "src", "tar", "mount") if k in args), None) \
            if isinstance(args, dict) else None
        if exc.filename is None and isinstance(subject, str):
            message += f" ({subject})"  # a failed write names no file; say which one we were at
        return {"ok": False, "error": message, "code": code.get(exc.errno or 0, "io")}


def serve(work_dir: str) -> int:
    """``--serve``: answer one request per line until stdin closes, each answer framed as its length in
    ASCII digits, a newline, then the JSON. One interpreter for a whole run instead of one per request
    (starting one costs about 0.5 s in a TCG guest). A request line that is too long, or not
    newline-terminated, cannot be resynchronised: the server answers once and exits."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        line = stdin.readline(MAX_REQUEST + 1)
        if not line:
            return 0
        is_framed = line.endswith(b"\n") and len(line) <= MAX_REQUEST
        if not is_framed:
            answer: dict[str, Any] = {"ok": False, "code": "invalid",
                                      "error": f"request line longer than {MAX_REQUEST} bytes or cut off"}
        else:
            try:
                request = json.loads(line)
            except (ValueError, RecursionError) as exc:
                answer = {"ok": False, "error": f"request is not JSON: {exc}", "code": "invalid"}
            else:
                # Per request, as when each request was its own process: an account created since the
                # last request (useradd in the troubleshooting VM) must not keep its old answer.
                NAMES.clear()
                answer = handle(request, work_dir=work_dir)
        body = json.dumps(answer, ensure_ascii=True, separators=(",", ":")).encode("ascii")
        stdout.write(b"%d\n" % len(body) + body)
        stdout.flush()
        if not is_framed:
            return 1


def main() -> int:
    os.umask(0o077)  # anything not given a mode explicitly stays private to root
    work_dir = os.path.dirname(os.path.abspath(__file__))
    if sys.argv[1:] == ["--serve"]:
        return serve(work_dir)
    try:
        request = json.loads(sys.stdin.buffer.read())
    except ValueError as exc:
        answer: dict[str, Any] = {"ok": False, "error": f"request is not JSON: {exc}", "code": "invalid"}
    else:
        answer = handle(request, work_dir=work_dir)
    # ASCII only: undecodable path bytes travel as \udcXX escapes and come back unchanged.
    sys.stdout.buffer.write(json.dumps(answer, ensure_ascii=True, separators=(",", ":")).encode("ascii"))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
