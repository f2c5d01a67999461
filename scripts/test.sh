#!/bin/sh
# `make test`: the real-VM tests and the tests without a VM, side by side.
#
# Why two streams: while the VM tests run, the host's 2 cores are about half idle (QEMU waits on the
# guest, the guest waits on SSH). The ~7.5 min of tests that need no VM (unit, hostile input, crash
# recovery) fill that idle time under `nice -n 19`, so the VMs keep the CPU whenever they want it:
# TCG guests have timeouts, unit tests do not. The two streams share nothing: the tests without a VM
# never reach libvirt's system connection or the state directory, and each stream has its own
# pytest base directory.
#
# Usage: scripts/test.sh BIN   (BIN: the venv's bin directory). Exit status: non-zero if either failed.
set -u
BIN=${1:?usage: scripts/test.sh VENV_BIN}
NIGHTLY="not nightly"
host_tmp=$(mktemp -d /tmp/vmrepair-test-host.XXXXXX)
host_log="$host_tmp/pytest.log"
nice -n 19 "$BIN/pytest" -q -p no:cacheprovider -m "not integration and $NIGHTLY" --durations=10 \
    --basetemp="$host_tmp/tmp" tests >"$host_log" 2>&1 &
host_pid=$!
trap 'kill "$host_pid" 2>/dev/null; exit 130' INT TERM
echo "tests without a VM: running alongside (niced), output in $host_log"

"$BIN/pytest" -q -m "integration and $NIGHTLY" --durations=30 tests
vm_status=$?

wait "$host_pid"
host_status=$?
echo
echo "================ tests without a VM (ran alongside the VM tests) ================"
cat "$host_log"
echo "real-VM tests: exit $vm_status; tests without a VM: exit $host_status"
if [ "$vm_status" -ne 0 ] || [ "$host_status" -ne 0 ]; then
    exit 1
fi
rm -rf "$host_tmp"
