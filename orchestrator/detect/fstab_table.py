"""fstab(5) as data: parse the file into entries, and tell what each entry needs to mount at boot.

Pure functions over bytes, shared by the ``fstab:`` probe (on the target) and the ``fstab_entry`` repair
step (in the troubleshooting VM), so both judge a file by exactly the same rules. The file is untrusted:
it is parsed, never interpreted, and the caller caps its size.

Parsing follows libmount: fields are separated by spaces or tabs; a line whose first non-blank
character is ``#`` is a comment; octal escapes (``\\040`` for a space, ``\\011`` for a tab) are decoded
in every field; a missing options field means ``defaults``. A line with fewer than three fields is a
parse error libmount skips, so it is skipped here too (it cannot stop the boot). Lines end at ``\\n``; a
``\\r`` before it (a file edited on Windows) is treated as part of the line ending, never as data, and
is kept as it is by any edit.

Which entries take part in the boot (systemd's fstab generator makes ``local-fs.target`` require
them, and ``local-fs.target`` failing means emergency mode) — every entry except:

- ``noauto`` (not mounted at boot), ``nofail`` (wanted, not required), ``x-systemd.automount`` (the
  automount point is set up instead; the device is only needed on first access);
- network file systems (the generator hangs them under ``remote-fs.target``, whose failure does not
  stop the boot) and ``_netdev``;
- virtual file systems (tmpfs, proc, ...): their source names no device;
- the root file system: the initramfs mounts it from the kernel command line, its fstab line only
  remounts it (a clone with another root device still boots).

Swap entries take part too, but a missing swap device only delays the boot (systemd waits for the
device, 90 s by default, then continues without it): the probe reports those as a warning.

What an entry needs (:func:`need_of`): ``UUID=``, ``LABEL=``, ``PARTUUID=`` and ``PARTLABEL=`` name the
udev symlink ``/dev/disk/by-uuid|by-label|by-partuuid|by-partlabel/<value>``, with the value escaped
the way udev names it (``/`` is ``\\x2f``, a space ``\\x20``); a bind mount needs its source path; any
other absolute source needs that path. A source that is neither (``server:/export``, ``tmpfs``) is not a
local device and is not checked.
"""

from __future__ import annotations

import posixpath
import re
import string
from dataclasses import dataclass

#: File systems systemd's generator treats as remote (fstype_is_network), plus smb3 and davfs.
NETWORK_FS = frozenset({
    "afs", "ceph", "cifs", "davfs", "gfs", "gfs2", "glusterfs", "lustre", "ncp", "ncpfs", "nfs", "nfs4",
    "ocfs2", "pvfs2", "smb3", "smbfs", "sshfs",
})
#: File systems whose source is a name, not a device.
VIRTUAL_FS = frozenset({
    "autofs", "binfmt_misc", "bpf", "configfs", "debugfs", "devpts", "devtmpfs", "efivarfs", "fusectl",
    "hugetlbfs", "mqueue", "none", "proc", "pstore", "ramfs", "securityfs", "sysfs", "tmpfs", "tracefs",
})
#: Options that keep an entry out of the boot transaction (see the module docstring).
OPTIONAL_OPTIONS = frozenset({"noauto", "nofail", "_netdev", "x-systemd.automount"})
BIND_OPTIONS = frozenset({"bind", "rbind"})
#: fstab tags and the /dev/disk directory udev keeps their symlinks in.
TAG_DIRS = {"UUID": "by-uuid", "LABEL": "by-label", "PARTUUID": "by-partuuid", "PARTLABEL": "by-partlabel"}
#: Characters udev keeps as they are in /dev/disk/by-* names (encode_devnode_name); others are \xNN.
_UDEV_PLAIN = frozenset(string.ascii_letters + string.digits + "#+-.:=@_")
_FIELD = re.compile(rb"[^ \t]+")
_OCTAL = re.compile(rb"\\([0-7]{3})")
_TAG = re.compile(r"^(UUID|LABEL|PARTUUID|PARTLABEL)=(.*)$", re.DOTALL)
_SURROGATES = range(0xDC80, 0xDD00)  # undecodable bytes, as decoded with "surrogateescape"


@dataclass(frozen=True)
class FstabEntry:
    """One mount line. Text fields are unescaped (``\\040`` → space) and decoded as UTF-8 with
    ``surrogateescape``, so no byte is lost; offsets are what an edit needs to touch only this line."""

    line: int                  # 1-based line number
    offset: int                # byte offset of the line's first byte in the file
    text: bytes                # the line as written, without its line ending
    source: str
    target: str
    fstype: str
    options: tuple[str, ...]
    #: Byte offset in ``text`` just past the options field (past the type field when there is none).
    options_end: int
    has_options_field: bool

    @property
    def option_names(self) -> frozenset[str]:
        return frozenset(option_name(o) for o in self.options)

    @property
    def is_swap(self) -> bool:
        return self.fstype == "swap"

    @property
    def is_bind(self) -> bool:
        return bool(self.option_names & BIND_OPTIONS)


@dataclass(frozen=True)
class Need:
    """What must exist for an entry to mount: ``path``, or nothing can (``path`` None, ``why`` says)."""

    entry: FstabEntry
    path: str | None
    why: str = ""

    @property
    def is_device(self) -> bool:
        """A device node or udev symlink, checked with lstat; other paths (bind sources, even under
        /dev, and image files) are checked with stat, never walked."""
        return self.path is not None and self.path.startswith("/dev/") and not self.entry.is_bind

    def describe(self) -> str:
        return f"{self.path} does not exist" if self.path is not None else self.why


def parse_fstab(data: bytes) -> tuple[FstabEntry, ...]:
    """Every mount line of ``data`` (comments, blank and malformed lines are skipped)."""
    entries: list[FstabEntry] = []
    offset = 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        text = raw[:-1] if raw.endswith(b"\r") else raw
        spans = [m.span() for m in _FIELD.finditer(text)]
        if len(spans) >= 3 and not text[spans[0][0]:].startswith(b"#"):
            source, target, fstype, *rest = (unescape(text[a:b]) for a, b in spans[:4])
            entries.append(FstabEntry(
                line=number, offset=offset, text=text, source=source, target=target, fstype=fstype,
                options=split_options(rest[0]) if rest else ("defaults",),
                options_end=spans[3][1] if rest else spans[2][1], has_options_field=bool(rest)))
        offset += len(raw) + 1
    return tuple(entries)


def unescape(field: bytes) -> str:
    r"""Decode libmount's octal escapes (``\040``) and the bytes as UTF-8, keeping invalid bytes."""
    decoded = _OCTAL.sub(lambda m: bytes([int(m[1], 8) & 0xFF]), field)
    return decoded.decode("utf-8", "surrogateescape")


def split_options(field: str) -> tuple[str, ...]:
    """Comma-separated options; commas inside double quotes (``context="a,b"``) do not split."""
    options: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in field:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            options.append("".join(current))
            current = []
        else:
            current.append(ch)
    options.append("".join(current))
    return tuple(o for o in options if o)


def option_name(option: str) -> str:
    return option.partition("=")[0]


def takes_part_in_boot(entry: FstabEntry) -> bool:
    """The boot needs this entry mounted (or, for swap, waits for its device); module docstring."""
    fstype = entry.fstype
    if entry.option_names & OPTIONAL_OPTIONS or entry.target == "/":
        return False
    if fstype in NETWORK_FS or fstype.startswith(("fuse.", "cgroup")):
        return False
    # A bind mount is often typed "none"; it still needs its source directory.
    return entry.is_bind or fstype not in VIRTUAL_FS


def udev_escape(value: str) -> str:
    r"""``value`` as udev spells it in a /dev/disk/by-* name: ``my disk/1`` → ``my\x20disk\x2f1``."""
    out: list[str] = []
    for ch in value:
        if ch in _UDEV_PLAIN:
            out.append(ch)
        elif ord(ch) in _SURROGATES:  # an undecodable byte: escaped like any other invalid byte
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        else:  # valid multi-byte UTF-8 is kept
            out.append(ch)
    return "".join(out)


def need_of(entry: FstabEntry) -> Need | None:
    """What ``entry`` needs to mount at boot; None when it does not take part in the boot or its
    source is not a local device (nothing to check)."""
    if not takes_part_in_boot(entry):
        return None
    source = entry.source
    tag = _TAG.match(source)
    if tag is not None and not entry.is_bind:
        name, value = tag.group(1), _unquote(tag.group(2))
        if value in ("", ".", ".."):
            return Need(entry, None, f"{name}={value} names no device")
        return Need(entry, f"/dev/disk/{TAG_DIRS[name]}/{udev_escape(value)}")
    if not source.startswith("/") or "\0" in source:
        return None
    # Lexically normalised (the agent only takes normalised paths); '//' at the start is kept by
    # posixpath.normpath, hence the lstrip.
    return Need(entry, "/" + posixpath.normpath(source).lstrip("/"))


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value
