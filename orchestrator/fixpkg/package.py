"""A fix package and its directory form: ``package.json`` plus content-addressed ``files/<sha256>``.

Saving is crash-safe: each blob is written atomically first and ``package.json`` last, so a directory
without ``package.json`` is an interrupted save, never a package. Loading verifies every blob against its
hash and refuses the package if one is missing or differs (tampered with or corrupt). ``package.json``
itself carries a digest of its operations, which catches accidental edits and corruption (not a forger
with write access to the state directory, who could rewrite the digest too).

``package_sha256`` is the digest of the whole package (:meth:`FixPackage.canonical_document`; blobs are
bound through the ``sha256`` of their operations). It is taken when the package is built from the
validated sandbox, recorded in ``package.json`` and the session's evidence, and checked again by the
agent on the target right before the first change (:func:`orchestrator.apply.runner.apply_package`),
so a package changed on disk between validation and apply is refused with the target untouched. A
forger who can rewrite ``package.json`` consistently still fails that check: the expected digest is the
one the pipeline kept from validation, not the one on disk.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.errors import FixPackageError, StateError
from orchestrator.fixpkg.ops import (
    BLOB_OPS,
    DATA_OPS,
    PATH_OPS,
    DebInstallOp,
    Operation,
    WriteFileOp,
    op_from_dict,
    op_to_dict,
    validate_operations,
)
from orchestrator.fsutil import atomic_write, ensure_private_dir

PACKAGE_JSON = "package.json"
FILES_DIR = "files"
FORMAT = 1
PACKAGE_SHA256 = "package_sha256"
#: package.json holds operations and capped diffs only; anything bigger is not ours.
MAX_PACKAGE_JSON = 32 * 1024 * 1024
_CHUNK = 1024 * 1024
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

T = TypeVar("T")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _operations_digest(ops: Sequence[Operation]) -> str:
    canonical = json.dumps([op_to_dict(op) for op in ops], sort_keys=True, separators=(",", ":"))
    return sha256_hex(canonical.encode())


@dataclass(frozen=True)
class FixPackage:
    """A verified fix: operations to run on the target, the content they write, and why.

    Construction checks the operation invariants (:func:`~.ops.validate_operations`) and that every
    ``write_file`` and ``deb_install`` blob is present and matches its sha256 and size, so a package
    object is always whole.

    Raises:
        FixPackageError: from the constructor, when an invariant does not hold.
    """

    id: str
    created_at: str
    operations: tuple[Operation, ...]
    #: sha256 -> content, for every ``write_file`` and ``deb_install`` operation.
    blobs: Mapping[str, bytes]
    issue: dict[str, Any]
    diagnosis: dict[str, Any]
    validation: dict[str, Any]
    reboot_required: bool
    allowed_roots: tuple[str, ...]
    #: path -> unified diff (capped) for the report; text files only.
    diffs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _ID_RE.match(self.id):
            raise FixPackageError(f"package id {self.id!r} is not a plain name")
        validate_operations(self.operations, self.allowed_roots)
        for op in self.operations:
            if isinstance(op, BLOB_OPS):
                data = self.blobs.get(op.sha256)
                if data is None or len(data) != op.size or sha256_hex(data) != op.sha256:
                    raise FixPackageError(f"{_subject(op)}: content {op.sha256} missing or not matching")

    @property
    def paths(self) -> list[str]:
        """Every path an operation touches, in package order."""
        return [op.path for op in self.operations if isinstance(op, (*PATH_OPS, *DATA_OPS))]

    def blob(self, sha256: str) -> bytes:
        return self.blobs[sha256]

    def as_dict(self) -> dict[str, Any]:
        """The content of ``package.json`` (and of the session's record): everything but the blobs."""
        return {**self._body(), PACKAGE_SHA256: self.package_sha256}

    def _body(self) -> dict[str, Any]:
        ops = list(self.operations)
        return {
            "format": FORMAT, "id": self.id, "created_at": self.created_at,
            "reboot_required": self.reboot_required, "allowed_roots": list(self.allowed_roots),
            "issue": self.issue, "diagnosis": self.diagnosis, "validation": self.validation,
            "operations": [op_to_dict(op) for op in ops],
            "operations_sha256": _operations_digest(ops), "diffs": self.diffs,
        }

    def canonical_document(self) -> bytes:
        """The bytes :attr:`package_sha256` digests: ``package.json`` without that key, as compact,
        key-sorted ASCII JSON. Taken through one JSON round trip first (``default=str`` as in
        :meth:`save`), so a package in memory (tuples, non-string keys, paths in its evidence) and the
        same package loaded back give the same bytes."""
        plain = json.loads(json.dumps(self._body(), default=str))
        return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")

    @functools.cached_property
    def package_sha256(self) -> str:
        """Digest of the whole package (operations, their blobs' hashes, roots, evidence)."""
        return sha256_hex(self.canonical_document())

    def save(self, directory: Path) -> Path:
        """Write the package into ``directory`` (``<state>/packages/<id>/``); returns ``package.json``.

        Raises:
            StateError: the directory or a file cannot be written (disk full, permissions); a package
                half-written this way has no ``package.json`` and does not load.
            FixPackageError: ``directory`` already holds a different package (packages are immutable).
        """
        document = (json.dumps(self.as_dict(), indent=2, default=str) + "\n").encode()
        files = ensure_private_dir(ensure_private_dir(directory) / FILES_DIR)
        target = directory / PACKAGE_JSON
        try:
            existing = target.read_bytes() if target.exists() else None
        except OSError as exc:
            raise StateError(f"cannot read {target}: {exc.strerror or exc}") from exc
        if existing is not None and existing != document:
            raise FixPackageError(f"{directory} already holds a different fix package")
        for op in self.operations:
            if isinstance(op, BLOB_OPS):
                # Blobs can hold secrets from /etc: owner-only, like the rest of the state directory.
                atomic_write(files / op.sha256, self.blobs[op.sha256], mode=0o600)
        atomic_write(target, document, mode=0o600)  # last: its presence means "complete"
        return target

    @classmethod
    def load(cls, directory: Path, *, allowed_roots: Sequence[str] | None = None) -> FixPackage:
        """Read and verify a package saved by :meth:`save`.

        ``allowed_roots``, when given, must also contain every path (the config may have narrowed since
        the package was made); the package's own recorded roots are always checked.

        Raises:
            FixPackageError: ``package.json`` is missing, unreadable or malformed, its operations do not
                match their digest, an operation is invalid or outside the roots, or a blob is missing
                or does not match its hash.
        """
        path = directory / PACKAGE_JSON
        data = _read_document(path)   # its errors already name the file
        try:
            return cls._from_document(data, directory, allowed_roots)
        except FixPackageError as exc:
            raise FixPackageError(f"{path}: {exc.message}", remedy=exc.remedy) from exc

    @classmethod
    def _from_document(
        cls, data: dict[str, Any], directory: Path, allowed_roots: Sequence[str] | None
    ) -> FixPackage:
        ops = tuple(
            op_from_dict(item, f"operations[{index}]")
            for index, item in enumerate(_typed(data, "operations", list))
        )
        if _operations_digest(ops) != data.get("operations_sha256"):
            raise FixPackageError("operations do not match operations_sha256 (edited or corrupt)")
        if allowed_roots is not None:
            validate_operations(ops, allowed_roots)
        blobs = {
            op.sha256: _read_blob(directory / FILES_DIR / op.sha256, op)
            for op in ops if isinstance(op, BLOB_OPS)
        }
        package = cls(
            id=_typed(data, "id", str), created_at=_typed(data, "created_at", str),
            operations=ops, blobs=blobs, issue=_typed(data, "issue", dict),
            diagnosis=_typed(data, "diagnosis", dict), validation=_typed(data, "validation", dict),
            reboot_required=_typed(data, "reboot_required", bool),
            allowed_roots=tuple(_strings(data, "allowed_roots")), diffs=_string_map(data, "diffs"),
        )
        # Required, not defaulted: without it, edits outside the operations (roots, evidence) would
        # load unnoticed. A package is only ever loaded by the run that built it, so none predates it.
        recorded = data.get(PACKAGE_SHA256)
        if recorded != package.package_sha256:
            raise FixPackageError(
                f"{PACKAGE_SHA256} {recorded!r:.80} does not match the package "
                f"(sha256 {package.package_sha256}): edited or corrupt",
                remedy="run the repair again so the fix is rebuilt and validated; never edit a saved package",
            )
        return package


def _read_document(path: Path) -> dict[str, Any]:
    try:
        raw = _read_regular(path, MAX_PACKAGE_JSON)
    except FileNotFoundError as exc:
        raise FixPackageError(
            f"{path} is missing: no fix package here (an interrupted save leaves none)"
        ) from exc
    except _NotRegularError as exc:
        raise FixPackageError(f"{path} is not a regular file ({exc}); a package is never one") from exc
    except OSError as exc:
        raise FixPackageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if raw is None:
        raise FixPackageError(f"{path} is larger than {MAX_PACKAGE_JSON} bytes")
    try:
        data = json.loads(raw, object_pairs_hook=_no_duplicates)
    except RecursionError as exc:
        raise FixPackageError(f"{path} is not valid JSON: nested too deeply") from exc
    except ValueError as exc:
        raise FixPackageError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise FixPackageError(f"{path}: not a format-{FORMAT} fix package")
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A key given twice is refused: a reader of the file would see one value and the loader use the
    other (json keeps the last silently)."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"duplicate key {key!r}")
        data[key] = value
    return data


class _NotRegularError(OSError):
    """The path is a symlink, FIFO, directory ...: its kind is the message."""


def _read_regular(path: Path, max_bytes: int) -> bytes | None:
    """Up to ``max_bytes`` of a regular file (None when it is longer), never through a symlink and
    never blocking: a FIFO planted in the state directory must not hang the apply.

    Raises:
        FileNotFoundError, _NotRegularError, OSError.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _NotRegularError("a symlink") from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _NotRegularError("a directory" if stat.S_ISDIR(st.st_mode) else "a special file")
        if st.st_size > max_bytes:   # refused without reading (or allocating) it
            return None
        # Read to EOF in chunks rather than read(max_bytes + 1): a forged size may be 2**70.
        data = bytearray()
        while len(data) <= max_bytes and (chunk := os.read(fd, min(_CHUNK, max_bytes + 1 - len(data)))):
            data += chunk
    finally:
        os.close(fd)
    return None if len(data) > max_bytes else bytes(data)


def _subject(op: WriteFileOp | DebInstallOp) -> str:
    return op.path if isinstance(op, WriteFileOp) else f"the .deb of {op.spec} {op.version}"


def _read_blob(path: Path, op: WriteFileOp | DebInstallOp) -> bytes:
    where = f"content of {_subject(op)} ({FILES_DIR}/{op.sha256})"
    try:
        data = _read_regular(path, op.size)
    except _NotRegularError as exc:
        raise FixPackageError(f"{where} is not a regular file ({exc}): tampered or corrupt") from exc
    except OSError as exc:
        raise FixPackageError(f"{where} is missing") from exc
    if data is None or len(data) != op.size or sha256_hex(data) != op.sha256:
        raise FixPackageError(f"{where} does not match its hash: tampered or corrupt")
    return data


def _typed(data: dict[str, Any], key: str, kind: type[T]) -> T:
    value = data.get(key)
    if not isinstance(value, kind):
        raise FixPackageError(f"{key}: expected {kind.__name__}, got {value!r:.80}")
    return value


def _strings(data: dict[str, Any], key: str) -> list[str]:
    values = _typed(data, key, list)
    if not all(isinstance(value, str) for value in values):
        raise FixPackageError(f"{key}: expected a list of strings")
    return values


def _string_map(data: dict[str, Any], key: str) -> dict[str, str]:
    values = _typed(data, key, dict)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in values.items()):
        raise FixPackageError(f"{key}: expected an object of strings")
    return values
