#!/bin/sh
# Guest-side customization of the debian-12-services patient template (the extra recipe).
#
# The image builder runs this as `chroot TREE /bin/sh /root/customize.sh` AFTER
# images/debian-12/customize.sh (the default guest: identity, sshd, sampleapp, network, journal,
# its services), once images/debian-12-services/overlay/ has been copied over TREE. Same rules:
# no network, no /proc, no running systemd, only offline operations.
#
# Touches /var/cache/apt/archives only to drop mariadb's .debs (section 3); the others stay, as
# in debian-12, and the builder's package-cache step then makes sure apache2's are there.
set -eu

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL

say() { printf 'customize (services): %s\n' "$*"; }
die() { printf 'customize (services): error: %s\n' "$*" >&2; exit 1; }

# --- 0. The packages this recipe relies on ------------------------------------------------
for tool in apache2ctl a2enconf a2ensite mariadbd mariadb; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is missing: add its package to the template"
done

# --- 1. apache2 on port 8088 only (ports.conf and sites-available/000-default.conf) --------
a2enconf -q vmrepair-servername
a2ensite -q 000-default
chmod 0644 /etc/apache2/ports.conf /etc/apache2/sites-available/000-default.conf \
    /etc/apache2/conf-available/vmrepair-servername.conf /var/www/apache2/index.html
# apache2's postinst puts its "It works" page into /var/www/html, which is nginx's document
# root: nginx on port 80 would then serve apache's page. Removed only if it is that copy.
if cmp -s /usr/share/apache2/default-site/index.html /var/www/html/index.html; then
    rm -f /var/www/html/index.html
fi
# apache2ctl creates its run directory; at boot /run is a tmpfs and apache2.service makes it.
made_run_dir=no
if [ ! -d /run/apache2 ]; then
    made_run_dir=yes
fi
apache2ctl configtest || die "apache2 rejects its configuration"
if [ "$made_run_dir" = yes ]; then
    rm -rf /run/apache2
fi

# --- 2. mariadb: the package's own configuration --------------------------------------------
# mariadb.service, and mariadb.socket (enabled by the package) listening on
# /run/mysqld/mysqld.sock and port 3306. Its postinst created the system tables in the chroot;
# without them the server cannot start.
[ -d /var/lib/mysql/mysql ] || die "mariadb's data directory /var/lib/mysql was not initialised"

# --- 3. The apt cache: mariadb's packages are not kept -------------------------------------
# debootstrap leaves every .deb it installed in /var/cache/apt/archives (the template's
# package_cache only makes sure some are there). This patient is the target of host-layer
# tests: a layer for apache2 finds all its packages in the target's cache, a layer for mariadb
# must download mariadb's own packages (and galera-4) from the mirror. The dependencies they
# pulled in (socat, rsync, libdbi-perl...) stay, like every other .deb.
archives=/var/cache/apt/archives
rm -f "$archives"/mariadb-*.deb "$archives"/libmariadb*.deb "$archives"/mysql-common_*.deb \
    "$archives"/galera-*.deb

# --- 4. Services ---------------------------------------------------------------------------
# The packages' scripts enable both already; said again so the recipe does not depend on it.
systemctl enable apache2.service mariadb.service

say "done"
