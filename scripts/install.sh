#!/bin/sh
# `make install` / `make uninstall`: vmrepair as a server runs it, outside this checkout.
#
#   install    a venv under $PREFIX (/opt/vmrepair) from the built wheel $WHEEL, the command linked as
#              $BINDIR/vmrepair (the unit's ExecStart), the systemd unit, tmpfiles.d and logrotate
#              snippets, /etc/vmrepair/config.yaml.example, shell completion and the man page.
#   uninstall  removes all of that; keeps /etc/vmrepair/config.yaml (and config.d, playbooks.d),
#              /var/lib/vmrepair (state, backups of applied fixes) and /var/log/vmrepair (audit log).
#
# DESTDIR stages everything under another root (the install test, packaging); systemd is then not
# touched. The venv is created in place: a venv cannot be moved after it is made.
set -eu
ACTION=${1:?usage: scripts/install.sh install|uninstall}
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/opt/vmrepair}
BINDIR=${BINDIR:-/usr/local/bin}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-/etc/systemd/system}
TMPFILESDIR=${TMPFILESDIR:-/etc/tmpfiles.d}
LOGROTATEDIR=${LOGROTATEDIR:-/etc/logrotate.d}
BASHCOMPDIR=${BASHCOMPDIR:-/usr/share/bash-completion/completions}
ZSHCOMPDIR=${ZSHCOMPDIR:-/usr/local/share/zsh/site-functions}
MANDIR=${MANDIR:-/usr/local/share/man/man1}
PYTHON=${PYTHON:-python3}

root() { printf '%s%s' "$DESTDIR" "$1"; }
# systemd is asked to reload only on a real install on a host it runs (not in a container without
# it, not for a staged DESTDIR, not when NO_SYSTEMD=1: the install test puts every path in a tmp dir).
has_systemd() { [ -z "$DESTDIR" ] && [ -z "${NO_SYSTEMD:-}" ] && [ -d /run/systemd/system ]; }

FILES="$UNITDIR/vmrepair.service $TMPFILESDIR/vmrepair.conf $LOGROTATEDIR/vmrepair
$SYSCONFDIR/vmrepair/config.yaml.example $SYSCONFDIR/vmrepair/config.schema.json $BASHCOMPDIR/vmrepair $ZSHCOMPDIR/_vmrepair $MANDIR/vmrepair.1"

install_all() {
  wheel=${WHEEL:?set WHEEL to the built wheel (make install builds it)}
  [ -f "$wheel" ] || { echo "install: no wheel at $wheel (make install builds it)" >&2; exit 2; }
  venv=$(root "$PREFIX")
  echo "install: venv $venv"
  "$PYTHON" -m venv --clear "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q "$wheel"
  cli="$venv/bin/vmrepair"
  "$cli" --version
  install -d -m 0755 "$(root "$BINDIR")" "$(root "$UNITDIR")" "$(root "$TMPFILESDIR")" \
    "$(root "$LOGROTATEDIR")" "$(root "$BASHCOMPDIR")" "$(root "$ZSHCOMPDIR")" "$(root "$MANDIR")" \
    "$(root "$SYSCONFDIR/vmrepair")" "$(root "$SYSCONFDIR/vmrepair/config.d")" \
    "$(root "$SYSCONFDIR/vmrepair/playbooks.d")"
  # The link is what the unit's ExecStart names; it points into the venv (not into $DESTDIR).
  ln -sfn "$PREFIX/bin/vmrepair" "$(root "$BINDIR")/vmrepair"
  # ExecStart names the link; a BINDIR other than /usr/local/bin is written into the unit.
  sed "s#/usr/local/bin/vmrepair#$BINDIR/vmrepair#g" packaging/systemd/vmrepair.service \
    > "$(root "$UNITDIR")/vmrepair.service"
  chmod 0644 "$(root "$UNITDIR")/vmrepair.service"
  install -m 0644 packaging/tmpfiles/vmrepair.conf "$(root "$TMPFILESDIR")/vmrepair.conf"
  install -m 0644 packaging/logrotate/vmrepair "$(root "$LOGROTATEDIR")/vmrepair"
  # From the installed package (generated from its models), so they describe the installed version.
  shipped=$("$venv/bin/python" -c 'from orchestrator.resources import shipped_config_dir; print(shipped_config_dir())')
  install -m 0644 "$shipped/config.yaml.example" "$(root "$SYSCONFDIR/vmrepair")/config.yaml.example"
  install -m 0644 "$shipped/config.schema.json" "$(root "$SYSCONFDIR/vmrepair")/config.schema.json"
  "$cli" completion bash > "$(root "$BASHCOMPDIR")/vmrepair"
  "$cli" completion zsh > "$(root "$ZSHCOMPDIR")/_vmrepair"
  "$cli" manpage > "$(root "$MANDIR")/vmrepair.1"
  if has_systemd; then
    systemctl daemon-reload
    systemd-tmpfiles --create "$TMPFILESDIR/vmrepair.conf"
  fi
  echo "install: done. Next: cp $SYSCONFDIR/vmrepair/config.yaml.example $SYSCONFDIR/vmrepair/config.yaml,"
  echo "  edit it, \`vmrepair config check\`, then \`systemctl enable --now vmrepair\`."
}

uninstall_all() {
  if has_systemd && systemctl is-enabled --quiet vmrepair.service 2>/dev/null; then
    systemctl disable --now vmrepair.service
  fi
  for file in $FILES; do
    rm -f "$(root "$file")"
  done
  link=$(root "$BINDIR")/vmrepair
  # Only our link: a vmrepair installed there by other means is not ours to remove.
  if [ -L "$link" ] && [ "$(readlink "$link")" = "$PREFIX/bin/vmrepair" ]; then
    rm -f "$link"
  fi
  rm -rf "$(root "$PREFIX")"
  if has_systemd; then
    systemctl daemon-reload
  fi
  echo "uninstall: done; kept $SYSCONFDIR/vmrepair (your config), /var/lib/vmrepair (state and backups)"
  echo "  and /var/log/vmrepair (audit log). Remove them by hand if you no longer need them."
}

case "$ACTION" in
  install) install_all ;;
  uninstall) uninstall_all ;;
  *) echo "usage: scripts/install.sh install|uninstall" >&2; exit 2 ;;
esac
