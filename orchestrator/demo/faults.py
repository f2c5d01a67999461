"""Named faults injected into a patient VM booted from the template.

Each fault is a small, fixed Python program run in the guest with ``python3 -c`` (our own constant code,
arguments passed as argv, never spliced into a shell string). Variants let tests inject *different*
faults of the same class, so playbooks are judged on the class, not on one injected line.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.errors import ConfigError
from orchestrator.transport.base import Transport

_NGINX = r'''
import pathlib, subprocess, sys
variant = sys.argv[1]
site = pathlib.Path("/etc/nginx/sites-available/default")
if variant == "directive":
    text = site.read_text().replace("server_name _;", "server_name _;\n\tthis_is_not_a_directive on;", 1)
    site.write_text(text)
elif variant == "brace":
    text = site.read_text()
    cut = text.rindex("\n}")  # the server block's closing brace (a commented example follows it)
    site.write_text(text[:cut] + text[cut + 2:])
elif variant == "new-site":
    pathlib.Path("/etc/nginx/sites-available/shop").write_text(
        "server {\n\tlisten 8081;\n\tlocation / { return 200 'shop'; \n}\n")
    pathlib.Path("/etc/nginx/sites-enabled/shop").symlink_to("/etc/nginx/sites-available/shop")
else:
    sys.exit("unknown variant")
subprocess.run(["systemctl", "restart", "nginx"], check=False)
'''

_DROPIN = r'''
import pathlib, subprocess, sys, time
variant = sys.argv[1]
d = pathlib.Path("/etc/systemd/system/sampleapp.service.d")
d.mkdir(exist_ok=True)
if variant == "execstart":
    body = "[Service]\nExecStart=\nExecStart=/usr/bin/python3 -m sampleapp_v2 --serve\n"
elif variant == "user":
    body = "[Service]\nUser=sampleapp-svc\n"
elif variant == "env":
    # EnvironmentFile= (which sets SAMPLEAPP_PORT) is applied after Environment=, so break a variable
    # the file does not set: an address sampleapp cannot bind.
    body = "[Service]\nEnvironment=SAMPLEAPP_BIND=256.0.0.1\n"
else:
    sys.exit("unknown variant")
(d / "50-tuning.conf").write_text(body)
subprocess.run(["systemctl", "daemon-reload"], check=True)
subprocess.run(["systemctl", "restart", "sampleapp"], check=False)
# Let the restart loop run into its start limit so the patient is in a settled, failed state.
for _ in range(60):
    if subprocess.run(["systemctl", "is-failed", "--quiet", "sampleapp"]).returncode == 0:
        break
    time.sleep(1)
'''

_DISK = r'''
import os, shutil, sys
path = sys.argv[1]
target_pct = float(sys.argv[2])
os.makedirs(os.path.dirname(path), exist_ok=True)
line = b"2026-11-21T04:00:00Z DEBUG sampleapp.worker retrying upstream call attempt=%d\n"
chunk = b"".join(line % i for i in range(14000))
with open(path, "ab") as handle:
    while True:
        st = os.statvfs("/")
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        avail = st.f_bavail * st.f_frsize
        if used * 100.0 / (used + avail) >= target_pct or avail < 4 * len(chunk):
            break
        handle.write(chunk)
    handle.flush()
    os.fsync(handle.fileno())
'''

_JSONL = r'''
import json, os, pathlib, pwd, subprocess, sys
variant = sys.argv[1]
log = pathlib.Path("/var/lib/sampleapp/interactions.jsonl")
good = [json.dumps({"ts": f"2026-11-20T10:{i:02d}:00Z", "method": "GET", "path": "/health",
                    "status": 200, "client": "127.0.0.1"}) for i in range(40)]
lines = [g.encode() for g in good]
if variant == "mixed":
    lines[7] = lines[7][:-1]                     # missing closing brace
    lines[15] = lines[15] + b" #garbage"         # trailing garbage
    lines[22] = b"\x00\xff\xfe not json at all"  # unrecoverable
    lines[30] = lines[30] + lines[31]            # two objects glued together
elif variant == "torn":
    lines[-1] = lines[-1][: len(lines[-1]) // 2]
elif variant == "binary":
    lines[3] = os.urandom(64).replace(b"\n", b"x")
else:
    sys.exit("unknown variant")
log.write_bytes(b"\n".join(lines) + (b"" if variant == "torn" else b"\n"))
user = pwd.getpwnam("sampleapp")
os.chown(log, user.pw_uid, user.pw_gid)
subprocess.run(["systemctl", "restart", "sampleapp"], check=False)
'''

# A mount the boot requires, for a device that does not exist (no nofail): the next boot would drop to
# emergency mode. Only the line is written: nothing is mounted and nothing reboots, so the patient keeps
# running; daemon-reload runs systemd's fstab generator over it, as the next boot would. The mount point
# is not created either, so /etc/fstab is the only file the fault changes (the one a fix may touch).
_FSTAB = r'''
import os, subprocess, sys, uuid
path, variant = sys.argv[1], sys.argv[2]
if variant == "uuid":
    source = "UUID=" + str(uuid.uuid4())      # random: no disk anywhere carries it
elif variant == "device":
    source = "/dev/vdz1"                      # a virtio disk the patient does not have
else:
    sys.exit("unknown variant")
st = os.stat(path)
with open(path, "rb") as handle:
    data = handle.read()
if data and not data.endswith(b"\n"):
    data += b"\n"
data += f"{source}\t/mnt/vmrepair-data\text4\tdefaults\t0\t2\n".encode()
tmp = path + ".vmrepair-fault"
with open(tmp, "wb") as handle:
    handle.write(data)
    handle.flush()
    os.fsync(handle.fileno())
os.chmod(tmp, st.st_mode & 0o7777)
os.chown(tmp, st.st_uid, st.st_gid)
os.replace(tmp, path)
subprocess.run(["systemctl", "daemon-reload"], check=True)
'''


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    program: str
    variants: tuple[str, ...]
    #: Fixed arguments before the variant (the file the program changes).
    args: tuple[str, ...] = ()

    def argv(self, variant: str) -> list[str]:
        if variant not in self.variants:
            raise ConfigError(f"fault {self.name}: unknown variant {variant!r} "
                              f"(choose from {', '.join(self.variants)})")
        return ["python3", "-c", self.program, *self.args, variant]


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault("nginx-config", "a syntax error in an enabled nginx site; nginx down, HTTP down",
              _NGINX, ("directive", "brace", "new-site")),
        Fault("unit-dropin", "a drop-in for sampleapp with a broken ExecStart; service failed",
              _DROPIN, ("execstart", "user", "env")),
        Fault("disk-full", "a runaway log pushes the root filesystem past 95% usage",
              _DISK, ("97", "99"), ("/var/log/sampleapp/debug.log",)),
        Fault("jsonl-log", "corrupted lines in sampleapp's interaction log; it refuses to start",
              _JSONL, ("mixed", "torn", "binary")),
        Fault("fstab", "an fstab entry for a disk that does not exist, without nofail; the next boot "
              "would drop to emergency mode", _FSTAB, ("uuid", "device"), ("/etc/fstab",)),
    )
}


def inject(transport: Transport, name: str, variant: str | None = None) -> str:
    """Break the patient behind ``transport``; returns the variant used.

    Raises:
        ConfigError: unknown fault or variant.
        CommandFailedError: the injection program failed.
    """
    fault = FAULTS.get(name)
    if fault is None:
        raise ConfigError(f"unknown fault {name!r}", remedy=f"choose from {', '.join(FAULTS)}")
    chosen = variant or fault.variants[0]
    transport.check(fault.argv(chosen), timeout=600)
    return chosen
