"""Hostile input for ``vmrepair log verify|repair`` (issue 13 items 1, 10, 11): garbage mixtures,
encodings, huge lines, things that are not files, symlinks, missing and empty files, gzip bombs,
write failures. Each case asserts the exit code and what the user reads; a repair that exits 0 must
also have lost no byte (``accounted``).
"""

from __future__ import annotations

import base64
import errno
import gzip
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.agent.remote import vmrepair_agent
from orchestrator.audit.log import AuditLog
from orchestrator.jsonl import files as files_module
from orchestrator.jsonl import restore as restore_module
from tests.hostile.conftest import CliResult

Cli = Callable[..., CliResult]
EXIT_REFUSED = 14  # AuditError: the file could not be repaired (and is unchanged)
EXIT_TORN, EXIT_CORRUPT, EXIT_CHAIN, EXIT_UNREADABLE = 20, 21, 22, 23


def said(result: CliResult, *fragments: str) -> None:
    """Each fragment appears in the output; rich wraps long lines (even inside a long path), so
    whitespace is ignored on both sides."""
    text = "".join(result.text.split())
    for fragment in fragments:
        assert "".join(fragment.split()) in text, (fragment, result.text)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".bak-" in p.name or ".quarantine-" in p.name
                  or p.name.startswith(".vmrepair-"))


def quarantined(directory: Path) -> list[bytes]:
    (quarantine,) = [p for p in directory.iterdir() if ".quarantine-" in p.name]
    return [base64.b64decode(json.loads(line)["raw_base64"]) for line in quarantine.read_bytes().splitlines()]


# -- garbage mixtures: every byte kept or quarantined ----------------------------------------------

MIXTURES = [  # (line, what the repaired file holds, what the quarantine holds)
    (b'{"id":1}X{"id":2}', b'{"id":1}\n{"id":2}\n', [b"X"]),
    (b'{"id":3}[1,2]{"id":4}', b'{"id":3}\n{"id":4}\n', [b"[1,2]"]),
    (b'{"a":1}{"b":2}', b'{"a":1}\n{"b":2}\n', []),
    (b'{"a":1}null{"b":2}', b'{"a":1}\n{"b":2}\n', [b"null"]),
    (b'\x00\x00{"g":7}\x00', b'{"g":7}\n', [b"\x00\x00", b"\x00"]),
    (b'{"d":4} trailing garbage', b'{"d":4}\n', [b" trailing garbage"]),
    (b'{"a":1}\r{"b":2}', b'{"a":1}\n\r{"b":2}\n', []),  # CR is JSON whitespace: stays, with the next object
    (b'\xef\xbb\xbf{"bom":1}', b'{"bom":1}\n', [b"\xef\xbb\xbf"]),  # a UTF-8 BOM is not JSON
    (b'junk {"cut": "sho', b'{"cut": "sho"}\n', [b"junk "]),  # garbage, then a torn object
    (b'{"a":1}' + b"{" * 200_000, b'{"a":1}\n', [b"{" * 200_000]),  # salvage gives up in time
]


@pytest.mark.parametrize(("line", "kept", "garbage"), MIXTURES, ids=[
    "object-X-object", "object-list-object", "objects-run-together", "object-null-object", "nul-padding",
    "trailing-garbage", "carriage-return", "utf8-bom", "garbage-then-torn-object", "200k-open-braces"])
def test_repair_of_a_mixed_line_keeps_every_object_and_quarantines_the_rest(
        cli: Cli, hostile_env: Path, line: bytes, kept: bytes, garbage: list[bytes]) -> None:
    path = hostile_env / "app.jsonl"
    path.write_bytes(b'{"first":0}\n' + line + b"\n")
    result = cli("log", "repair", str(path))
    assert result.code == 0, result.text
    said(result, f"repaired: {path}", "lines read 2: kept 1, repaired 1, quarantined 0",
         "verify after repair: ok")
    if garbage:
        said(result, f"(and {len(garbage)} fragment(s) of repaired lines); "
                     f"{sum(map(len, garbage))} byte(s) in the quarantine")
        assert quarantined(hostile_env) == garbage
    assert path.read_bytes() == b'{"first":0}\n' + kept


def test_repair_json_counts_the_fragments(cli: Cli, hostile_env: Path) -> None:
    path = hostile_env / "app.jsonl"
    path.write_bytes(b'{"id":1}X{"id":2}\n{"id":3}[1,2]{"id":4}\n')
    result = cli("log", "repair", "--json", str(path))
    assert result.code == 0, result.text
    done = json.loads(result.out)["repair"]
    counts = ("kept", "repaired", "quarantined", "fragments", "quarantined_bytes")
    assert [done[key] for key in counts] == [0, 2, 0, 2, 6]


@pytest.mark.parametrize(("data", "code", "message"), [
    (b'{"id":1}X{"id":2}\n{"ok":1}\n', EXIT_CORRUPT, "1 corrupt line(s) in the middle"),
    (b'{"ok":1}\n{"id":1}X{"id":2}\n', EXIT_TORN, "torn tail (1 line(s))"),
    (b'{"ok":1}\n{"a":1}', EXIT_TORN, "last line has no newline"),
    (b'{"a":1}\r\n{"b":2}\r\n', 0, "2 line(s), 2 good"),
    (b'\xff\xfe{\x00"\x00a\x00"\x00}\x00\n{"ok":1}\n', EXIT_CORRUPT, "nul_bytes"),  # UTF-16
    (b'{"s":"caf\xe9"}\n{"ok":1}\n', EXIT_CORRUPT, "invalid UTF-8 at byte 9 of the line"),  # latin-1
    (b'{"n":' + b"[" * 100_000 + b"]" * 100_000 + b'}\n{"ok":1}\n', EXIT_CORRUPT,
     "not JSON: RecursionError"),
], ids=["mixture-middle", "mixture-tail", "no-final-newline", "crlf", "utf16", "latin1", "deep-nesting"])
def test_verify_names_what_is_wrong(cli: Cli, hostile_env: Path, data: bytes, code: int,
                                    message: str) -> None:
    path = hostile_env / "app.jsonl"
    path.write_bytes(data)
    result = cli("log", "verify", str(path))
    assert result.code == code, result.text
    said(result, message)
    assert path.read_bytes() == data


def test_a_line_over_16_mib_is_quarantined_not_parsed(cli: Cli, hostile_env: Path) -> None:
    path = hostile_env / "app.jsonl"
    huge = b'{"x":"' + b"a" * (16 * 1024 * 1024) + b'"}'
    path.write_bytes(b'{"a":1}\n' + huge + b'\n{"b":2}')  # and no final newline
    verified = cli("log", "verify", str(path))
    assert verified.code == EXIT_CORRUPT
    said(verified, "line 2 (byte 8) oversized, middle: line longer than 16777216 bytes")
    result = cli("log", "repair", str(path))
    assert result.code == 0, result.text
    said(result, "lines read 3: kept 2, repaired 0, quarantined 1", f"{len(huge)} byte(s) in the quarantine")
    assert path.read_bytes() == b'{"a":1}\n{"b":2}\n'
    assert quarantined(hostile_env) == [huge]


def test_a_hostile_15_mib_line_is_searched_for_objects_in_bounded_time(cli: Cli, hostile_env: Path) -> None:
    # 1000 objects each opening an array that never closes: every try to parse one scans megabytes
    # and fails on the nesting; unbounded, the search took 154 s.
    line = (b'{"a":[' + b"1," * 8000) * 1000
    path = hostile_env / "app.jsonl"
    path.write_bytes(b'{"first":0}\n' + line + b"\n")
    started = time.monotonic()
    result = cli("log", "repair", str(path))
    assert time.monotonic() - started < 30
    assert result.code == 0, result.text
    said(result, "lines read 2: kept 1, repaired 0, quarantined 1", f"{len(line)} byte(s) in the quarantine")
    assert path.read_bytes() == b'{"first":0}\n'


# -- nothing good to keep: refused, file untouched -------------------------------------------------


@pytest.mark.parametrize("data", [
    b"garbage\n",
    b"[1,2]\nnull\ntrue\n",
    b"\x00" * 4096,
    b"\xff\xfe\xfd\n\xc3(\n",
    b'{\x00"\x00a\x00"\x00:\x001\x00}\x00\n',  # UTF-16 without BOM
    b"not json\n\n   \n",  # blank lines are no reason to empty it
    b"\xef\xbb\xbf",
], ids=["one-bad-line", "not-objects", "nul-block", "invalid-utf8", "utf16", "garbage-and-blanks",
        "bom-only"])
def test_a_file_with_nothing_good_is_refused_and_kept(cli: Cli, hostile_env: Path, data: bytes) -> None:
    path = hostile_env / "app.jsonl"
    path.write_bytes(data)
    result = cli("log", "repair", str(path))
    assert result.code == EXIT_REFUSED, result.text
    said(result, f"nothing good to keep in {path}: none of its",
         "so a repair would empty it; it was left untouched",
         f"the evidence is {path} itself (`vmrepair log verify {path}` lists why each line is bad)")
    assert path.read_bytes() == data
    assert leftovers(hostile_env) == []


def test_an_audit_log_without_one_good_record_is_refused(cli: Cli, hostile_env: Path) -> None:
    path = hostile_env / "audit.jsonl"
    path.write_bytes(b'{"seq": 1, "prev": "0"}\n\x00\x00\n')
    result = cli("log", "repair", "--audit", str(path))
    assert result.code == EXIT_REFUSED, result.text
    said(result, "none of its 2 line(s) holds a well-formed audit record")
    assert path.read_bytes() == b'{"seq": 1, "prev": "0"}\n\x00\x00\n'


def test_a_broken_audit_chain_is_acknowledged_by_repair(cli: Cli, hostile_env: Path) -> None:
    path = hostile_env / "audit.jsonl"
    log = AuditLog(path)
    for index in range(3):
        log.record("tick", component="c", status="ok", details={"i": index})
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[2])
    verified = cli("log", "verify", str(path))
    assert verified.code == EXIT_CHAIN
    said(verified, "hash chain broken in 1 place(s)")
    result = cli("log", "repair", str(path))
    assert result.code == 0, result.text
    said(result, "appended 1 audit record(s) acknowledging 1 chain break(s)", "verify after repair: ok")


# -- not a regular file ---------------------------------------------------------------------------


def _fifo(base: Path) -> Path:
    os.mkfifo(base / "fifo.jsonl")
    return base / "fifo.jsonl"


def _directory(base: Path) -> Path:
    (base / "dir.jsonl").mkdir()
    return base / "dir.jsonl"


def _symlink(base: Path) -> Path:
    (base / "real.jsonl").write_bytes(b"garbage\n")
    (base / "link.jsonl").symlink_to(base / "real.jsonl")
    return base / "link.jsonl"


def _dangling(base: Path) -> Path:
    (base / "link.jsonl").symlink_to(base / "nowhere.jsonl")
    return base / "link.jsonl"


NOT_FILES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("fifo", _fifo, "is not a regular file"),  # opened O_NONBLOCK: never hangs
    ("directory", _directory, "is not a regular file"),
    ("char-device", lambda base: Path("/dev/null"), "/dev/null is not a regular file"),
    ("symlink", _symlink, "is a symlink, which is refused: name the file it points to"),
    ("dangling-symlink", _dangling, "is a symlink, which is refused"),
]


@pytest.mark.parametrize(("make", "message"), [(m, msg) for _, m, msg in NOT_FILES],
                         ids=[name for name, _, _ in NOT_FILES])
@pytest.mark.parametrize("verb", ["verify", "repair"])
def test_what_is_not_a_regular_file_is_refused(cli: Cli, hostile_env: Path, verb: str,
                                               make: Callable[[Path], Path], message: str) -> None:
    path = make(hostile_env)
    result = cli("log", verb, str(path))
    assert result.code == (EXIT_UNREADABLE if verb == "verify" else EXIT_REFUSED), result.text
    said(result, message)
    if verb == "repair":
        said(result, f"cannot repair {path}")
    assert leftovers(hostile_env) == []


# -- symlinked directories ------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["link", "link/sub"], ids=["parent", "grandparent"])
def test_repair_refuses_a_symlinked_directory_above_the_file(cli: Cli, hostile_env: Path, via: str) -> None:
    real = hostile_env / "real"
    (real / "sub").mkdir(parents=True)
    (hostile_env / "link").symlink_to(real)
    shown = hostile_env / via / "app.jsonl"
    target = real / Path(via).relative_to("link") / "app.jsonl"
    target.write_bytes(b'{"a":1}\ngarbage\n')
    result = cli("log", "repair", str(shown))
    assert result.code == EXIT_REFUSED, result.text
    said(result, f"refusing {shown}: {hostile_env / 'link'} is a symlink (to {real}), which is not followed",
         f"name the file by its real path, {target}")
    assert target.read_bytes() == b'{"a":1}\ngarbage\n'
    assert [p.name for p in real.rglob("*") if p.is_file()] == ["app.jsonl"]


def test_verify_still_reads_through_a_symlinked_directory(cli: Cli, hostile_env: Path) -> None:
    (hostile_env / "real").mkdir()
    (hostile_env / "real" / "app.jsonl").write_bytes(b'{"a":1}\n')
    (hostile_env / "link").symlink_to(hostile_env / "real")
    result = cli("log", "verify", str(hostile_env / "link" / "app.jsonl"))
    assert result.code == 0, result.text
    said(result, "ok:", "1 line(s), 1 good")


def test_repair_under_a_regular_file_is_refused(cli: Cli, hostile_env: Path) -> None:
    (hostile_env / "plain").write_bytes(b"")
    result = cli("log", "repair", str(hostile_env / "plain" / "app.jsonl"))
    assert result.code == EXIT_REFUSED, result.text
    said(result, f"{hostile_env / 'plain'} is not a directory")


# -- missing, empty, rotations and gzip bombs -----------------------------------------------------


def test_verify_of_a_missing_file(cli: Cli, hostile_env: Path) -> None:
    path = hostile_env / "gone.jsonl"
    result = cli("log", "verify", str(path))
    assert result.code == EXIT_UNREADABLE
    said(result, f"{path}: no such file",
         f"`vmrepair log repair {path}` restores it from a rotation or backup")


def test_repair_of_a_missing_file_without_rotations(cli: Cli, hostile_env: Path) -> None:
    path = hostile_env / "gone.jsonl"
    result = cli("log", "repair", str(path))
    assert result.code == EXIT_REFUSED
    said(result, f"{path} is missing and no good backup or rotation was found beside it (none found)",
         "looked for gone.jsonl.1, gone.jsonl.1.gz")


def test_repair_in_a_missing_directory(cli: Cli, hostile_env: Path) -> None:
    path = hostile_env / "nodir" / "app.jsonl"
    result = cli("log", "repair", str(path))
    assert result.code == EXIT_REFUSED
    said(result, f"cannot open the directory {hostile_env / 'nodir'}: No such file or directory")


def test_an_empty_file_is_valid_and_stays_empty(cli: Cli, hostile_env: Path) -> None:
    path = hostile_env / "app.jsonl"
    path.write_bytes(b"")
    assert cli("log", "verify", str(path)).code == 0
    result = cli("log", "repair", str(path))
    assert result.code == 0, result.text
    said(result, "the file is empty, which is valid; nothing good to restore it from (none found)")
    assert path.read_bytes() == b""


def test_an_empty_file_is_restored_from_its_rotation(cli: Cli, hostile_env: Path) -> None:
    path = hostile_env / "app.jsonl"
    path.write_bytes(b"")
    with gzip.open(hostile_env / "app.jsonl.1.gz", "wb") as packed:
        packed.write(b'{"a":1}\n')
    result = cli("log", "repair", str(path))
    assert result.code == 0, result.text
    said(result, f"restored: {path}",
         f"{path} was empty: restored 1 line(s) from {hostile_env / 'app.jsonl.1.gz'}")
    assert path.read_bytes() == b'{"a":1}\n'


def _bomb(path: Path, megabytes: int) -> None:
    with gzip.open(path, "wb", compresslevel=9) as packed:
        for _ in range(megabytes):
            packed.write(b'{"a":1}\n' * (1024 * 128))


def test_a_gzip_bomb_rotation_is_stopped_by_its_ratio(cli: Cli, hostile_env: Path) -> None:
    _bomb(hostile_env / "app.jsonl.1.gz", 40)
    result = cli("log", "repair", str(hostile_env / "app.jsonl"))
    assert result.code == EXIT_REFUSED, result.text
    said(result, f"{hostile_env / 'app.jsonl'} is missing and no good backup or rotation was found beside it",
         f"app.jsonl.1.gz: decompresses to more than {restore_module.MAX_GZIP_RATIO} times its",
         "(a gzip bomb?)")
    assert sorted(p.name for p in hostile_env.iterdir() if "app" in p.name) == ["app.jsonl.1.gz"]


def test_a_rotation_past_the_size_cap_is_passed_over(cli: Cli, hostile_env: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restore_module, "MAX_RESTORED_BYTES", 2 * 1024 * 1024)
    _bomb(hostile_env / "app.jsonl.1.gz", 3)
    (hostile_env / "app.jsonl.2").write_bytes(b'{"old":1}\n')
    os.utime(hostile_env / "app.jsonl.2", (1_600_000_000, 1_600_000_000))  # older than .1.gz
    result = cli("log", "repair", str(hostile_env / "app.jsonl"))
    assert result.code == 0, result.text
    said(result, f"not restored from {hostile_env / 'app.jsonl.1.gz'}: decompresses to more than "
                 "2097152 bytes, the cap for a restored file",
         f"restored from: {hostile_env / 'app.jsonl.2'}")
    assert (hostile_env / "app.jsonl").read_bytes() == b'{"old":1}\n'


def test_a_corrupt_gzip_rotation_is_named(cli: Cli, hostile_env: Path) -> None:
    (hostile_env / "app.jsonl.1.gz").write_bytes(gzip.compress(b'{"a":1}\n' * 1000)[:-40])
    result = cli("log", "repair", str(hostile_env / "app.jsonl"))
    assert result.code == EXIT_REFUSED, result.text
    said(result, "(app.jsonl.1.gz: unreadable:")


# -- the disk says no -----------------------------------------------------------------------------


@pytest.mark.parametrize(("err", "remedy"), [
    (errno.EROFS, "is on a read-only filesystem: remount it read-write first"),
    (errno.ENOSPC, "free space on the filesystem holding"),
    (errno.EACCES, "run as root (or as the owner of"),
], ids=["read-only-dir", "disk-full", "permission-denied"])
def test_a_backup_that_cannot_be_written_leaves_the_file_alone(cli: Cli, hostile_env: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               err: int, remedy: str) -> None:
    # The tests run as root, whom a 0555 directory does not stop: the filesystem's answer is injected.
    def refuse(dfd: int, stem: str, suffix: str = "") -> tuple[str, int]:
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(vmrepair_agent, "create_unique", refuse)
    assert files_module.agent is vmrepair_agent
    path = hostile_env / "app.jsonl"
    path.write_bytes(b'{"a":1}\ngarbage\n')
    result = cli("log", "repair", str(path))
    assert result.code == EXIT_REFUSED, result.text
    said(result, f"cannot write a backup of {path}: {os.strerror(err)}; {path} was not changed", remedy)
    assert path.read_bytes() == b'{"a":1}\ngarbage\n'
    assert leftovers(hostile_env) == []


def test_an_unreadable_file_names_the_remedy(cli: Cli, hostile_env: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Root reads a 0000 file anyway: the kernel's answer is injected where the verifier opens it.
    from orchestrator.jsonl import verifier

    def refuse(name: str | Path, **_: object) -> tuple[int, os.stat_result]:
        raise files_module.io_error(PermissionError(errno.EACCES, "Permission denied"), Path(name), "open")

    monkeypatch.setattr(verifier, "open_regular", refuse)
    path = hostile_env / "app.jsonl"
    path.write_bytes(b"garbage\n")
    verified = cli("log", "verify", str(path))
    assert verified.code == EXIT_UNREADABLE, verified.text
    said(verified, f"cannot open {path}: Permission denied",
         f"run as root (or as the owner of {hostile_env})")
    repaired = cli("log", "repair", str(path))
    assert repaired.code == EXIT_REFUSED, repaired.text
    said(repaired, f"cannot repair {path}: cannot open {path}: Permission denied")


def test_the_default_file_is_the_audit_log(cli: Cli, hostile_env: Path) -> None:
    audit = hostile_env / "audit.jsonl"
    verified = cli("log", "verify")
    assert verified.code == EXIT_UNREADABLE, verified.text
    said(verified, f"{audit}: no such file")
    repaired = cli("log", "repair")
    assert repaired.code == EXIT_REFUSED, repaired.text
    said(repaired, f"{audit} is missing and no good backup or rotation was found beside it")


@pytest.mark.parametrize("name", ["[bold]x[", "a[/x]b", "line\nbreak", "sp ace", "-dash", "ünï"],
                         ids=["markup-open", "markup-close", "newline", "space", "leading-dash", "non-ascii"])
def test_odd_file_names_are_shown_as_they_are(cli: Cli, hostile_env: Path, name: str) -> None:
    directory = hostile_env / name.replace("/", "_")
    directory.mkdir()
    path = directory / "app.jsonl"
    path.write_bytes(b"garbage\n")
    result = cli("log", "repair", "--", str(path))
    assert result.code == EXIT_REFUSED, result.text
    said(result, "nothing good to keep in")
    assert path.read_bytes() == b"garbage\n"


def test_an_undecodable_file_name_is_shown_escaped(cli: Cli, hostile_env: Path) -> None:
    directory = hostile_env / os.fsdecode(b"bad\xff")
    directory.mkdir()
    path = directory / "app.jsonl"
    path.write_bytes(b'{"a":1}\ngarbage\n')
    result = cli("log", "repair", str(path))
    assert result.code == 0, result.text
    said(result, f"repaired: {hostile_env}/bad\\xff/app.jsonl (JSON-lines file)",
         "lines read 2: kept 1, repaired 0, quarantined 1")
    assert path.read_bytes() == b'{"a":1}\n'
