#!/bin/sh
# Guest-side customization of the vmrepair Debian 12 template.
#
# The image builder runs this once, as `chroot TREE /bin/sh /root/customize.sh`, after it
# has copied images/debian-12/overlay/ into TREE and written the pinned SSH host key and
# root's authorized_keys. Inside the chroot there is no network, no /proc and no running
# systemd: only offline operations (systemctl enable/mask, useradd, file edits).
#
# Leaves /var/cache/apt/archives alone: repairs restore pristine conffiles from those .debs.
set -eu

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL

say() { printf 'customize: %s\n' "$*"; }
die() { printf 'customize: error: %s\n' "$*" >&2; exit 1; }

# --- 0. The packages this recipe relies on ------------------------------------------------
for tool in systemctl sshd nginx python3 cron rsyslogd logrotate stress-ng useradd ip curl; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is missing: add its package to the template"
done
[ -x /lib/systemd/systemd-networkd ] || die "systemd-networkd is missing (package systemd)"

# --- 1. Identity: every clone generates its own machine ID --------------------------------
# An empty /etc/machine-id (not a missing one, not "uninitialized") makes systemd generate
# an ID at boot without entering first-boot mode (no preset-all, no firstboot wizard);
# systemd-machine-id-commit.service then writes it to the read-write root, so it is stable
# across reboots of that clone. dbus must not keep its own copy, or systemd would reuse it.
: >/etc/machine-id
chmod 0444 /etc/machine-id
rm -f /var/lib/dbus/machine-id
if [ -d /var/lib/dbus ]; then
    ln -s /etc/machine-id /var/lib/dbus/machine-id
fi
# Each clone seeds its own entropy pool instead of all sharing the build's seed.
rm -f /var/lib/systemd/random-seed

# --- 2. SSH: ssh.service with the pinned ed25519 host key only ----------------------------
rm -f /etc/ssh/ssh_host_rsa_key /etc/ssh/ssh_host_rsa_key.pub \
    /etc/ssh/ssh_host_ecdsa_key /etc/ssh/ssh_host_ecdsa_key.pub \
    /etc/ssh/ssh_host_dsa_key /etc/ssh/ssh_host_dsa_key.pub
chmod 0644 /etc/ssh/sshd_config.d/vmrepair.conf
if [ -f /etc/ssh/ssh_host_ed25519_key ]; then
    chmod 0600 /etc/ssh/ssh_host_ed25519_key
    # sshd -t wants its privilege separation directory; at boot ssh.service creates it.
    made_privsep_dir=no
    if [ ! -d /run/sshd ]; then
        mkdir -p /run/sshd
        made_privsep_dir=yes
    fi
    sshd -t || die "sshd rejects its configuration"
    if [ "$made_privsep_dir" = yes ]; then
        rmdir /run/sshd
    fi
else
    say "warning: /etc/ssh/ssh_host_ed25519_key is not there yet; sshd will not start without it"
fi
# Root's shell startup files run for every SSH command: keep them empty.
chmod 0700 /root
: >/root/.bashrc
: >/root/.profile
if [ -d /root/.ssh ]; then
    chmod 0700 /root/.ssh
    if [ -f /root/.ssh/authorized_keys ]; then
        chmod 0600 /root/.ssh/authorized_keys
    fi
fi

# --- 3. sampleapp --------------------------------------------------------------------------
if ! getent passwd sampleapp >/dev/null; then
    useradd --system --user-group --home-dir /var/lib/sampleapp --no-create-home \
        --shell /usr/sbin/nologin --comment "sampleapp service" sampleapp
fi
install -d -o sampleapp -g sampleapp -m 0750 /var/lib/sampleapp
chown -R root:root /opt/sampleapp
chmod -R u=rwX,go=rX /opt/sampleapp
chmod 0644 /etc/default/sampleapp /etc/default/locale /etc/systemd/system/sampleapp.service
# Byte-compile now: the service cannot write under /opt (ProtectSystem=strict), and under
# TCG compiling at every start is slow. checked-hash keeps edited sources authoritative.
python3 -m compileall -q -f --invalidation-mode checked-hash /opt/sampleapp/sampleapp
(
    cd /opt/sampleapp
    SAMPLEAPP_LOG=/var/lib/sampleapp/interactions.jsonl python3 -B -m sampleapp --check
) || die "sampleapp does not run"

# --- 4. Network: systemd-networkd with DHCP on e*; no DNS ----------------------------------
chmod 0644 /etc/systemd/network/20-vmrepair-dhcp.network /etc/resolv.conf /etc/hosts \
    /etc/hostname /etc/fstab

# --- 5. Journal: persistent, capped in /etc/systemd/journald.conf.d/vmrepair.conf ---------
if getent group systemd-journal >/dev/null; then
    install -d -o root -g systemd-journal -m 2755 /var/log/journal
else
    install -d -m 2755 /var/log/journal
fi

# --- 6. Services -----------------------------------------------------------------------------
nginx -t -q || die "nginx rejects its configuration"
systemctl set-default multi-user.target
systemctl enable systemd-networkd.service ssh.service nginx.service cron.service \
    rsyslog.service logrotate.timer sampleapp.service

# Masked rather than disabled, so that nothing (a preset run, a Wants=) brings them back:
#  - systemd-networkd-wait-online: nginx wants network-online.target; waiting for a DHCP
#    lease on every boot only delays it, and nothing here needs a routable address.
#  - ssh.socket: sshd runs as ssh.service (the socket unit conflicts with it).
#  - apt-daily*, apt-daily-upgrade*: no network, they would fail (degrading the system)
#    and an unattended upgrade would change a guest under test.
#  - e2scrub_all*, e2scrub_reap: ext4-on-LVM scrubbing; there is no LVM.
#  - fstrim*: weekly discard on a throwaway virtual disk gains nothing.
#  - man-db.timer: no manual pages to index (harmless if not installed).
#  - systemd-firstboot: interactive console wizard; it would hang a first-boot-mode boot.
systemctl disable systemd-networkd-wait-online.service ssh.socket >/dev/null 2>&1 || true
# Pulled in by enabling systemd-networkd; it only turns ip= on the kernel command line into
# .network files, and this image is configured by the file above.
systemctl disable systemd-network-generator.service
systemctl mask systemd-networkd-wait-online.service ssh.socket \
    apt-daily.timer apt-daily.service apt-daily-upgrade.timer apt-daily-upgrade.service \
    e2scrub_all.timer e2scrub_all.service e2scrub_reap.service \
    fstrim.timer fstrim.service man-db.timer man-db.service \
    systemd-firstboot.service

say "done"
