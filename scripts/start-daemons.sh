#!/bin/sh
# Start virtlogd and libvirtd when they are not running. There may be no systemd as PID 1 (CI, containers):
# then the daemons are started by hand, as shared/FIELD_NOTES.md measured.
set -eu
URI="${LIBVIRT_URI:-qemu:///system}"
if virsh -c "$URI" version >/dev/null 2>&1; then
  echo "libvirtd: already answering at $URI"
  exit 0
fi
if [ "$(ps -p 1 -o comm= 2>/dev/null)" = "systemd" ]; then
  systemctl start virtlogd.socket libvirtd.service
else
  pgrep -x virtlogd >/dev/null 2>&1 || virtlogd -d
  pgrep -x libvirtd >/dev/null 2>&1 || libvirtd -d
fi
i=0
while [ $i -lt 100 ]; do
  if virsh -c "$URI" version >/dev/null 2>&1; then
    echo "libvirtd: started, answering at $URI"
    exit 0
  fi
  i=$((i + 1))
  sleep 0.2
done
echo "libvirtd did not answer at $URI within 20 s; see /var/log/libvirt/libvirtd.log" >&2
exit 1
