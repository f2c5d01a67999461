#!/bin/sh
# Install the Debian packages vmrepair needs on the host, only when one is missing (idempotent, fast
# when everything is present: dpkg-query only, no apt-get update).
set -eu
# groff-base and zsh: the tests render the man page and syntax-check the zsh completion script;
# and the shellcheck package: the tests lint the image recipes' shell scripts.
# chromium: tests/integration/test_report_html.py renders report.html in it headless and looks at it.
# openssh-server: tests/integration/test_remote_hypervisor.py runs its own sshd on a loopback port as
# the qemu+ssh:// hypervisor (the host's own sshd is never started: see policy-rc.d below).
PACKAGES="qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
libvirt-dev pkg-config gcc debootstrap e2fsprogs mount coreutils ca-certificates openssh-client
openssh-server groff-base zsh chromium shellcheck"
missing=""
for pkg in $PACKAGES; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $pkg" ;;
  esac
done
if [ -z "$missing" ]; then
  echo "host packages: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "host packages missing:$missing; run as root (make setup installs them with apt-get)" >&2
  exit 1
fi
echo "host packages: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# --no-install-recommends keeps the install small. libvirtd and virtlogd are started by
# start-daemons.sh, not by the packages' postinst scripts.
# The packages' maintainer scripts must not start services on this machine (an sshd listening on
# every interface above all): invoke-rc.d asks policy-rc.d, and 101 means "not now". An existing
# policy-rc.d is left as it is.
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# written by vmrepair scripts/host-packages.sh for one apt-get run\nexit 101\n' > "$policy"
  chmod 0755 "$policy"
  own_policy=1
fi
trap '[ -n "$own_policy" ] && rm -f "$policy"' EXIT
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
