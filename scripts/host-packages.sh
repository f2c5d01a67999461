#!/bin/sh
# Install the Debian packages vmrepair needs on the host, only when one is missing (idempotent, fast
# when everything is present: dpkg-query only, no apt-get update).
set -eu
# groff-base and zsh: the tests render the man page and syntax-check the zsh completion script;
# shellcheck: the tests lint the image recipes' shell scripts.
# chromium: tests/integration/test_report_html.py renders report.html in it headless and looks at it.
PACKAGES="qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
libvirt-dev pkg-config gcc debootstrap e2fsprogs mount coreutils ca-certificates openssh-client
groff-base zsh chromium shellcheck"
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
# --no-install-recommends keeps the install small; policy-rc.d is not touched: without systemd the
# postinst scripts cannot start the daemons anyway, start-daemons.sh does that.
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
