"""fstab parsing and the rules of what takes part in the boot and what an entry needs (pure functions)."""

from __future__ import annotations

import pytest

from orchestrator.detect.fstab_table import (
    FstabEntry,
    Need,
    need_of,
    parse_fstab,
    split_options,
    takes_part_in_boot,
    udev_escape,
)


def one(line: bytes) -> FstabEntry:
    (entry,) = parse_fstab(line + b"\n")
    return entry


# -- parse_fstab ----------------------------------------------------------------------------------

def test_comments_blank_lines_and_short_lines_are_skipped() -> None:
    data = (b"# /etc/fstab: static file system information.\n"
            b"\n"
            b"   \t\n"
            b"   # an indented comment /dev/vdb /srv ext4 defaults 0 2\n"
            b"/dev/vdb /srv\n"                       # two fields: a parse error libmount skips
            b"UUID=abc /data ext4 defaults 0 2\n")
    (entry,) = parse_fstab(data)
    assert (entry.line, entry.source, entry.target, entry.fstype) == (6, "UUID=abc", "/data", "ext4")


def test_fields_split_on_tabs_and_runs_of_spaces() -> None:
    entry = one(b"UUID=abc\t\t/data   ext4\t defaults,noatime \t0\t2")
    assert (entry.source, entry.target, entry.fstype) == ("UUID=abc", "/data", "ext4")
    assert entry.options == ("defaults", "noatime")


def test_octal_escapes_are_decoded_in_every_field() -> None:
    entry = one(rb"LABEL=my\040disk /mnt/my\040data\011x ext4 defaults 0 0")
    assert entry.source == "LABEL=my disk"
    assert entry.target == "/mnt/my data\tx"
    # The raw line is kept as written, escapes and all.
    assert entry.text == rb"LABEL=my\040disk /mnt/my\040data\011x ext4 defaults 0 0"


def test_a_missing_options_field_means_defaults() -> None:
    entry = one(b"/dev/vdb /srv ext4")
    assert entry.options == ("defaults",)
    assert entry.has_options_field is False
    assert entry.options_end == len(b"/dev/vdb /srv ext4")


def test_offsets_point_at_the_line_and_the_end_of_its_options() -> None:
    data = b"# comment\n/dev/vda / ext4 defaults 0 1\n\tUUID=abc /data xfs rw,noatime 0 2\n"
    root, data_entry = parse_fstab(data)
    for entry in (root, data_entry):
        assert data[entry.offset:entry.offset + len(entry.text)] == entry.text
    end = data_entry.offset + data_entry.options_end
    assert data[:end].endswith(b"rw,noatime")
    assert data_entry.line == 3


def test_crlf_line_endings_stay_out_of_the_fields() -> None:
    entry, last = parse_fstab(b"/dev/vdb /srv ext4 defaults\r\n/dev/vdc /opt ext4\r\n")
    assert entry.options == ("defaults",)
    assert entry.text == b"/dev/vdb /srv ext4 defaults"
    assert last.fstype == "ext4"
    assert last.offset == len(b"/dev/vdb /srv ext4 defaults\r\n")


def test_a_last_line_without_newline_is_parsed() -> None:
    (entry,) = parse_fstab(b"# x\n/dev/vdb /srv ext4 defaults 0 2")
    assert (entry.line, entry.target) == (2, "/srv")


def test_undecodable_bytes_survive_the_round_trip() -> None:
    entry = one(b"LABEL=caf\xe9 /mnt/caf\xe9 ext4 defaults 0 0")
    assert entry.source.encode("utf-8", "surrogateescape") == b"LABEL=caf\xe9"


def test_empty_and_comment_only_files_have_no_entries() -> None:
    assert parse_fstab(b"") == ()
    assert parse_fstab(b"# nothing\n\n") == ()


@pytest.mark.parametrize(("field", "expected"), [
    ("defaults", ("defaults",)),
    ("rw,nofail,,x-systemd.device-timeout=5s", ("rw", "nofail", "x-systemd.device-timeout=5s")),
    ('context="system_u:object_r:a_t:s0:c1,c2",nofail', ('context="system_u:object_r:a_t:s0:c1,c2"',
                                                         "nofail")),
])
def test_split_options_keeps_quoted_commas(field: str, expected: tuple[str, ...]) -> None:
    assert split_options(field) == expected


# -- takes_part_in_boot -----------------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    b"/dev/vdb /srv ext4 defaults,nofail 0 2",
    b"/dev/vdb /srv ext4 noauto 0 2",
    b"/dev/vdb /srv ext4 defaults,_netdev 0 2",
    b"/dev/vdb /srv ext4 x-systemd.automount 0 2",
    b"server:/export /srv nfs defaults 0 0",
    b"server:/export /srv nfs4 defaults 0 0",
    b"//server/share /srv cifs credentials=/root/c 0 0",
    b"//server/share /srv smb3 defaults 0 0",
    b"me@host:/ /srv fuse.sshfs defaults 0 0",
    b"me@host:/ /srv sshfs defaults 0 0",
    b"tmpfs /tmp tmpfs mode=1777 0 0",
    b"proc /proc proc defaults 0 0",
    b"sysfs /sys sysfs defaults 0 0",
    b"devpts /dev/pts devpts gid=5 0 0",
    b"udev /dev devtmpfs defaults 0 0",
    b"cgroup2 /sys/fs/cgroup cgroup2 defaults 0 0",
    b"cgroup /sys/fs/cgroup/cpu cgroup cpu 0 0",
    b"securityfs /sys/kernel/security securityfs defaults 0 0",
    b"debugfs /sys/kernel/debug debugfs defaults 0 0",
    b"efivarfs /sys/firmware/efi/efivars efivarfs defaults 0 0",
    b"/dev/sdz1 /srv none defaults 0 0",
    b"UUID=gone / ext4 errors=remount-ro 0 1",  # root: mounted by the initramfs, not from here
], ids=lambda line: line.split()[2].decode() + ":" + line.split()[3].decode())
def test_entries_the_boot_does_not_require(line: bytes) -> None:
    entry = one(line)
    assert takes_part_in_boot(entry) is False
    assert need_of(entry) is None


@pytest.mark.parametrize("line", [
    b"UUID=abc /data ext4 defaults 0 2",
    b"/dev/vdb /srv xfs rw 0 0",
    b"/dev/vdb none swap sw 0 0",
    b"/srv/data /var/www none bind 0 0",           # a bind mount typed none still needs its source
    b"/srv/data /var/www none rbind,ro 0 0",
    b"/dev/vdb /srv ext4 x-systemd.device-timeout=5s 0 2",
    b"/dev/vdb1 /mnt/usb fuseblk defaults 0 0",    # a local block device behind FUSE (ntfs-3g)
])
def test_entries_the_boot_requires(line: bytes) -> None:
    assert takes_part_in_boot(one(line)) is True


# -- need_of --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("source", "path"), [
    (b"UUID=0f3c6b1e-1d5e-4b7a-9c55-2f4b2c1d9e01", "/dev/disk/by-uuid/0f3c6b1e-1d5e-4b7a-9c55-2f4b2c1d9e01"),
    (b"PARTUUID=6a1b2c3d-02", "/dev/disk/by-partuuid/6a1b2c3d-02"),
    (b"LABEL=data", "/dev/disk/by-label/data"),
    (rb"LABEL=my\040disk", r"/dev/disk/by-label/my\x20disk"),
    (b"LABEL=a/b", r"/dev/disk/by-label/a\x2fb"),
    (rb'PARTLABEL="EFI\040system"', r"/dev/disk/by-partlabel/EFI\x20system"),
    (b"UUID='abc'", "/dev/disk/by-uuid/abc"),
    (b"/dev/vdz1", "/dev/vdz1"),
    (b"/dev//mapper/vg-data/", "/dev/mapper/vg-data"),
    (b"//dev/vdb", "/dev/vdb"),
])
def test_what_a_source_needs(source: bytes, path: str) -> None:
    need = need_of(one(source + b" /data ext4 defaults 0 2"))
    assert need is not None
    assert need.path == path
    assert need.is_device is True
    assert need.describe() == f"{path} does not exist"


@pytest.mark.parametrize(("source", "path"), [(b"/srv/data/", "/srv/data"), (b"/dev/shm", "/dev/shm")])
def test_a_bind_mount_needs_its_source_path_checked_with_stat(source: bytes, path: str) -> None:
    # Even under /dev: a bind source is a directory, and manifest would walk it.
    need = need_of(one(source + b" /var/www none bind 0 0"))
    assert need is not None
    assert need.path == path
    assert need.is_device is False


@pytest.mark.parametrize("source", [b"UUID=", b"LABEL=.", b"PARTUUID=..", b'UUID=""'])
def test_a_tag_that_names_no_device_cannot_be_resolved(source: bytes) -> None:
    need = need_of(one(source + b" /data ext4 defaults 0 2"))
    assert need is not None
    assert need.path is None
    tag, _, value = source.decode().partition("=")
    assert need.describe() == f"{tag}={value.strip(chr(34))} names no device"


@pytest.mark.parametrize("source", [b"server:/export", b"uuid=lowercase-is-no-tag", b"rootfs", b"ID=x"])
def test_sources_that_are_not_local_devices_are_not_checked(source: bytes) -> None:
    assert need_of(one(source + b" /data ext4 defaults 0 2")) is None


def test_need_describes_what_is_missing() -> None:
    entry = one(b"/dev/vdz1 /data ext4 defaults 0 2")
    assert Need(entry, "/dev/vdz1").describe() == "/dev/vdz1 does not exist"
    assert Need(entry, None, "UUID= names no device").describe() == "UUID= names no device"


# -- udev_escape ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("plain-Name_1.2:3=4@5#6+7", "plain-Name_1.2:3=4@5#6+7"),
    ("a b/c", r"a\x20b\x2fc"),
    ("back\\slash", r"back\x5cslash"),
    ("tab\there", r"tab\x09here"),
    ("café", "café"),                          # valid UTF-8 is kept, as udev does
    (b"caf\xe9".decode("utf-8", "surrogateescape"), r"caf\xe9"),
])
def test_udev_escape(value: str, expected: str) -> None:
    assert udev_escape(value) == expected
