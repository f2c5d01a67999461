"""What vmrepair knows about common daemons: a component's canonical name, config paths and config
test, applied to a unit that discovery found on the target (never to one it did not find).

The table describes Debian 12 (bookworm) as its packages ship it. Each ``config_test`` was checked against
the daemon's manual or source at bookworm's version (the comment above each profile says which); where
no test validates the configuration without side effects, ``config_test`` is empty and the comment says
why. Every test here starts nothing, writes no pid file and opens no listening socket; the few that
create a missing log file or a scratch directory as they parse say so.

``config_paths`` never cover private keys, nor secrets kept in files of their own (host keys, TLS keys,
rndc/TSIG keys, SMTP relay and SQL passwords): those stay on the target, so some profiles list files
rather than their whole directory. A secret written inline in the one configuration file (redis's
``requirepass``) cannot be split off and travels with it. ``log_paths`` are only directories of plain
log files a disk repair may rotate.

Template units: a profile may list ``foo@.service``; :func:`profile_for` maps every instance
(``foo@bar.service``) to it. Only templates whose instances share the profile's configuration are
listed (``postgresql@15-main.service`` reads /etc/postgresql/15/main); ``apache2@.service`` and
``mariadb@.service`` are not, because each instance reads its own configuration that the profile's test
would not check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from orchestrator.model import HttpCheck


@dataclass(frozen=True)
class Profile:
    """Knowledge about one daemon, keyed by the unit names it runs under."""

    #: Canonical component name (``sshd`` for ``ssh.service``): playbooks and baselines use it.
    name: str
    #: Unit names this profile applies to (``named.service`` and ``bind9.service`` are one daemon);
    #: ``foo@.service`` covers every instance of the template.
    units: tuple[str, ...]
    #: Files and directories under /etc that hold the configuration; never private keys.
    config_paths: tuple[str, ...] = ()
    #: argv that checks the configuration without starting the daemon; exit 0 means valid.
    config_test: tuple[str, ...] = ()
    #: Debian packages that own the daemon (the host layer installs them in the VM).
    packages: tuple[str, ...] = ()
    #: Directories of plain log files that a disk repair may rotate, compress or truncate.
    log_paths: tuple[str, ...] = ()
    http: tuple[HttpCheck, ...] = ()
    #: None: decided by discovery (a daemon listening on a TCP port is vital).
    vital: bool | None = None


#: sudo is no service (so no profile), but a broken sudoers file locks admins out of the host just the
#: same: this is the host-level check of /etc/sudoers and every file it includes. ``visudo -c`` is
#: visudo's check-only mode (sudo 1.9 visudo(8)): it parses and checks owner and mode, edits nothing.
SUDOERS_PATHS: Final = ("/etc/sudoers", "/etc/sudoers.d")
SUDOERS_CHECK: Final = ("visudo", "-c")


PROFILES: Final[tuple[Profile, ...]] = (
    # --- web servers and proxies ---------------------------------------------------------------------
    # nginx(8): -t tests the configuration and exits. It opens the log files it names (creating a
    # missing one), as the start would; nothing else.
    Profile("nginx", ("nginx.service",), config_paths=("/etc/nginx",), config_test=("nginx", "-t"),
            packages=("nginx", "nginx-common"), log_paths=("/var/log/nginx",)),
    # Not `apache2ctl -t`: Debian's apache2ctl needs /etc/apache2/envvars for that; `configtest` sources
    # it and runs `apache2 -t` (exit 1: "Invalid command ..."; see tests/integration/services.py).
    # Debian's apache2ctl may create its run and lock directories first, as the start does.
    Profile("apache2", ("apache2.service",), config_paths=("/etc/apache2",),
            config_test=("apache2ctl", "configtest"),
            packages=("apache2", "apache2-bin", "apache2-data", "apache2-utils"),
            log_paths=("/var/log/apache2",)),
    # lighttpd(8) 1.4.69: -tt tests the syntax, loads and initialises the modules, and exits; it is
    # Debian's own ExecStartPre. In src/server.c the test run drops the pid file and returns before any
    # bind() (network.c); a module may create its cache directory, as the start does.
    Profile("lighttpd", ("lighttpd.service",), config_paths=("/etc/lighttpd",),
            config_test=("lighttpd", "-tt", "-f", "/etc/lighttpd/lighttpd.conf"),
            packages=("lighttpd",), log_paths=("/var/log/lighttpd",)),
    # haproxy doc/management.txt: "-c : only performs a check of the configuration files and exits
    # before trying to bind. The exit status is zero if everything is OK"; Debian's unit reloads after
    # `haproxy -f $CONFIG -c -q`. Not all of /etc/haproxy: TLS certificates with their keys are often
    # kept there; errors/ holds the error pages haproxy.cfg names.
    Profile("haproxy", ("haproxy.service",),
            config_paths=("/etc/haproxy/haproxy.cfg", "/etc/haproxy/errors", "/etc/default/haproxy"),
            config_test=("haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg"), packages=("haproxy",)),
    # squid(8) 5.7: "-k parse" parses the configuration and exits; src/main.cc returns the number of
    # errors before any pid file, cache directory or listening port. Not all of /etc/squid: TLS
    # interception keys are commonly kept there.
    Profile("squid", ("squid.service",), config_paths=("/etc/squid/squid.conf", "/etc/squid/conf.d"),
            config_test=("squid", "-k", "parse", "-f", "/etc/squid/squid.conf"),
            packages=("squid", "squid-common"), log_paths=("/var/log/squid",)),
    # varnishd(1) 7.1: -C compiles the VCL to C, prints it and exits (mgt_main.c exits 2 on a VCL
    # error). It works in a scratch directory under $TMPDIR that it removes on exit; no pid file.
    # Only default.vcl: /etc/varnish/secret is the management interface's shared secret.
    Profile("varnish", ("varnish.service",), config_paths=("/etc/varnish/default.vcl",),
            config_test=("varnishd", "-C", "-f", "/etc/varnish/default.vcl"),
            packages=("varnish",), log_paths=("/var/log/varnish",)),
    # php-fpm8.2 -t (--test, sapi/fpm/fpm/fpm_main.c): fpm_conf_init_main() returns right after parsing
    # and checking the pools, before the pid file and the sockets. Like nginx -t it opens its error
    # log. The path of Debian's unit (ExecStart ... --fpm-config). bookworm's PHP is 8.2.
    Profile("php-fpm", ("php8.2-fpm.service",), config_paths=("/etc/php/8.2/fpm",),
            config_test=("php-fpm8.2", "-t", "--fpm-config", "/etc/php/8.2/fpm/php-fpm.conf"),
            packages=("php8.2-fpm",)),

    # --- databases and caches ------------------------------------------------------------------------
    # bookworm's MariaDB 10.11 has no --validate-config; `mariadbd --help --verbose` reads every option
    # file and exits non-zero on an unknown option or an unreadable !includedir (the reasons and
    # measurements are in tests/integration/services.py, WATCH_YAML). mysql.service and mysqld.service
    # are the unit's aliases. No log_paths: bookworm's MariaDB logs to the journal.
    Profile("mariadb", ("mariadb.service", "mysql.service", "mysqld.service"),
            config_paths=("/etc/mysql",), config_test=("mariadbd", "--help", "--verbose"),
            packages=("mariadb-server", "mariadb-server-core", "mariadb-client", "mariadb-client-core",
                      "mariadb-common", "mysql-common")),
    # postgresql.service only starts the clusters; each runs as postgresql@VERSION-CLUSTER.service.
    # No test: `postgres -C` parses postgresql.conf but needs the cluster's data directory, refuses to
    # run as root and is not on PATH (/usr/lib/postgresql/15/bin); pg_ctlcluster has no check mode.
    Profile("postgresql", ("postgresql.service", "postgresql@.service"),
            config_paths=("/etc/postgresql", "/etc/postgresql-common"),
            packages=("postgresql", "postgresql-15", "postgresql-common"),
            log_paths=("/var/log/postgresql",)),
    # redis-server 7.0 has no config check (its usage lists only --test-memory and --check-system).
    # redis.service is the unit's alias; redis-server@NAME reads /etc/redis/redis-NAME.conf. redis.conf
    # may hold requirepass inline: it is the whole configuration, so it is listed all the same.
    Profile("redis", ("redis-server.service", "redis.service", "redis-server@.service"),
            config_paths=("/etc/redis",), packages=("redis-server", "redis-tools"),
            log_paths=("/var/log/redis",)),
    # memcached reads its options from the command line; Debian's wrapper turns /etc/memcached.conf
    # into them, so there is nothing to check beforehand.
    Profile("memcached", ("memcached.service",),
            config_paths=("/etc/memcached.conf", "/etc/default/memcached"),
            packages=("memcached",)),

    # --- DNS and time -------------------------------------------------------------------------------
    # named-checkconf(8): checks the syntax of named.conf and every file it includes; exit 1 on errors.
    # Not all of /etc/bind: rndc.key is the control channel's secret (zones a site adds are listed in
    # its own watch: configuration). named.conf.default-zones' zone files come with the package.
    Profile("bind9", ("named.service", "bind9.service"),
            config_paths=("/etc/bind/named.conf", "/etc/bind/named.conf.options",
                          "/etc/bind/named.conf.local", "/etc/bind/named.conf.default-zones",
                          "/etc/default/named"),
            config_test=("named-checkconf", "/etc/bind/named.conf"), packages=("bind9", "bind9-utils")),
    # unbound-checkconf(8): "exits with status code 1 on error, 0 for a correct config file". It also
    # requires the files the configuration names to exist (the trust anchor /var/lib/unbound/root.key,
    # which the unit's ExecStartPre installs). Not all of /etc/unbound: unbound_server.key and
    # unbound_control.key are private keys.
    Profile("unbound", ("unbound.service",),
            config_paths=("/etc/unbound/unbound.conf", "/etc/unbound/unbound.conf.d"),
            config_test=("unbound-checkconf", "/etc/unbound/unbound.conf"), packages=("unbound",)),
    # dnsmasq(8): "--test Read and syntax check configuration file(s). Exit with code 0 if all is OK".
    # Debian's unit checks with `dnsmasq --test -7 $CONFIG_DIR` (/usr/share/dnsmasq/init-system-common)
    # and CONFIG_DIR in /etc/default/dnsmasq defaults to the value below, so the drop-in directory is
    # checked as the daemon reads it. dnsmasq@NAME reads another configuration: not listed.
    Profile("dnsmasq", ("dnsmasq.service",),
            config_paths=("/etc/dnsmasq.conf", "/etc/dnsmasq.d", "/etc/default/dnsmasq"),
            config_test=("dnsmasq", "--test", "--conf-dir=/etc/dnsmasq.d,.dpkg-dist,.dpkg-old,.dpkg-new"),
            packages=("dnsmasq", "dnsmasq-base")),
    # chronyd(8) 4.3: -p prints the configuration and exits; main.c returns right after parsing, before
    # the pid file check, and every parse error is fatal (exit 1). chronyd.service is the unit's alias.
    # Not chrony.keys: NTP authentication keys.
    Profile("chrony", ("chrony.service", "chronyd.service"),
            config_paths=("/etc/chrony/chrony.conf", "/etc/chrony/conf.d", "/etc/chrony/sources.d"),
            config_test=("chronyd", "-p"), packages=("chrony",), log_paths=("/var/log/chrony",)),

    # --- mail ---------------------------------------------------------------------------------------
    # No test: `postfix check` is not read-only (postfix-script: it creates missing queue directories
    # and runs postsuper, which renames misplaced queue files), and postconf only warns on unknown
    # parameters. postfix.service is a wrapper; the daemon runs as postfix@-.service. Not all of
    # /etc/postfix: sasl_passwd and its maps hold relay passwords.
    Profile("postfix", ("postfix.service", "postfix@.service"),
            config_paths=("/etc/postfix/main.cf", "/etc/postfix/master.cf"), packages=("postfix",)),
    # No test: `exim4 -bV` checks the runtime configuration that update-exim4.conf generates under
    # /var/lib/exim4 when the service starts, not the files in /etc/exim4, so it would pass a broken
    # edit. exim4.service is generated from /etc/init.d/exim4. Not all of /etc/exim4: passwd.client
    # (SMTP passwords) and exim.key.
    Profile("exim4", ("exim4.service",),
            config_paths=("/etc/exim4/update-exim4.conf.conf", "/etc/exim4/exim4.conf.template",
                          "/etc/exim4/conf.d"),
            packages=("exim4-base", "exim4-config", "exim4-daemon-light"), log_paths=("/var/log/exim4",)),
    # doveconf(1) 2.3.19 parses the whole configuration (`dovecot -n` runs it); doveconf.c ends with
    # i_fatal on any parse or settings error (exit 89). Not all of /etc/dovecot: private/ holds the TLS
    # key and dovecot-sql.conf.ext / dovecot-ldap.conf.ext the directory passwords.
    Profile("dovecot", ("dovecot.service",),
            config_paths=("/etc/dovecot/dovecot.conf", "/etc/dovecot/conf.d"),
            config_test=("doveconf", "-n"), packages=("dovecot-core",)),

    # --- remote access, file and print sharing -------------------------------------------------------
    # sshd(8) -t: test mode, checks the configuration and the keys. ssh.service's alias is sshd.service.
    Profile("sshd", ("ssh.service", "sshd.service"),
            # Not all of /etc/ssh: host private keys never leave the target.
            config_paths=("/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d"),
            config_test=("sshd", "-t"), packages=("openssh-server",)),
    # testparm(1): -s suppresses the prompt; source3/utils/testparm.c exits 1 when smb.conf does not
    # load ("Error loading services") or a global check fails. Both daemons read smb.conf; smb.service
    # and nmb.service are their aliases. samba-ad-dc.service (a domain controller) is another role.
    Profile("samba", ("smbd.service", "nmbd.service", "smb.service", "nmb.service"),
            config_paths=("/etc/samba/smb.conf",),
            config_test=("testparm", "-s"), packages=("samba", "samba-common", "samba-common-bin"),
            log_paths=("/var/log/samba",)),
    # No test: `cupsd -t` is not read-only; cupsdReadConfiguration() (scheduler/conf.c, 2.4.2) fixes
    # the owner and mode of /etc/cups files and creates missing directories even when testing.
    # Not /etc/cups/ssl (keys) nor printers.conf (device URIs may embed passwords).
    Profile("cups", ("cups.service",),
            config_paths=("/etc/cups/cupsd.conf", "/etc/cups/cups-files.conf"),
            packages=("cups", "cups-daemon"), log_paths=("/var/log/cups",)),

    # --- firewall and high availability --------------------------------------------------------------
    # nft(8): "-c, --check Check commands validity without actually applying the changes" (the kernel
    # validates the batch and discards it).
    Profile("nftables", ("nftables.service",), config_paths=("/etc/nftables.conf",),
            config_test=("nft", "-c", "-f", "/etc/nftables.conf"), packages=("nftables",)),
    # fail2ban-client 1.0.2: -t (--test) reads the whole configuration and exits without a server
    # (fail2bancmdline.py: "OK: configuration test is successful"; exit 255 on failure).
    Profile("fail2ban", ("fail2ban.service",), config_paths=("/etc/fail2ban",),
            config_test=("fail2ban-client", "-t"), packages=("fail2ban",)),
    # keepalived(8) 2.2.7: -t (--config-test) "will check the configuration file and exit with non-zero
    # exit status if there are errors"; main.c exits before the pid files and the reload file.
    Profile("keepalived", ("keepalived.service",),
            config_paths=("/etc/keepalived", "/etc/default/keepalived"),
            config_test=("keepalived", "-t"), packages=("keepalived",)),

    # --- system services -----------------------------------------------------------------------------
    # cron and rsyslog replace the entries in orchestrator/components/defaults.py and must stay equal
    # to them. Neither is vital: with either down the host still serves.
    Profile("cron", ("cron.service",), config_paths=("/etc/crontab", "/etc/cron.d"),
            packages=("cron",), vital=False),
    # rsyslogd -N1 (rsyslogd(8): config check, level 1); tools/rsyslogd.c exits 1 on any config error.
    # Not its alias syslog.service: the generic name of whichever system logger is installed, and the
    # profile equals the default it replaces.
    Profile("rsyslog", ("rsyslog.service",), config_paths=("/etc/rsyslog.conf", "/etc/rsyslog.d"),
            config_test=("rsyslogd", "-N1"), packages=("rsyslog",), log_paths=("/var/log",), vital=False),
    # syslog-ng(8) 3.38: -s (--syntax-only) reads and parses the configuration and exits (main.c, exit
    # 1 on a parse error) before the pid file and the sources. Not vital, like rsyslog.
    Profile("syslog-ng", ("syslog-ng.service",), config_paths=("/etc/syslog-ng",),
            config_test=("syslog-ng", "--syntax-only"), packages=("syslog-ng-core",),
            log_paths=("/var/log",), vital=False),
)

_BY_UNIT: Final = {unit: profile for profile in PROFILES for unit in profile.units}


def template_of(unit: str) -> str | None:
    """The template unit of an instance (``postgresql@15-main.service`` → ``postgresql@.service``);
    None when ``unit`` is not an instance of a template (no ``@``, or a template itself)."""
    prefix, at, rest = unit.partition("@")
    instance, dot, suffix = rest.rpartition(".")
    if not (prefix and at and instance and dot and suffix):
        return None
    return f"{prefix}@.{suffix}"


def profile_for(unit: str) -> Profile | None:
    """The profile of ``unit`` (``nginx.service``, ``postgresql@15-main.service``), or None when
    vmrepair knows nothing about it. An exact name wins over the template of an instance."""
    exact = _BY_UNIT.get(unit)
    if exact is not None:
        return exact
    template = template_of(unit)
    return _BY_UNIT.get(template) if template is not None else None
