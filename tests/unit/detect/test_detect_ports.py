"""port:<component>:<n> probes: ss -H -ltn and /proc/net/tcp{,6} as Debian 12 prints them, one listing
per detector run."""

from __future__ import annotations

import pytest

from orchestrator.components.config import WatchConfig
from orchestrator.detect import Detector, ports
from orchestrator.detect.ports import Listening, evaluate, load_listening, parse_proc_net_tcp, parse_ss
from orchestrator.errors import AgentFailedError, CommandTimeoutError
from orchestrator.model import Component, IssueKind, Severity
from orchestrator.transport.fake import FakeTransport
from tests.unit.detect.fakes import FakeHost, local_style_missing
from tests.unit.fake_agent import FakeAgent, call_brief

NGINX = Component("nginx", units=("nginx.service",), ports=(80, 443))
REDIS = Component("redis", vital=False, units=("redis-server.service",), ports=(6379,))

#: `ss -H -ltn` on the template guest: nginx on 80 (v4 and v6), sshd on 22, sampleapp on loopback.
SS_TEMPLATE = (b"LISTEN 0      511          0.0.0.0:80        0.0.0.0:*          \n"
               b"LISTEN 0      128          0.0.0.0:22        0.0.0.0:*          \n"
               b"LISTEN 0      5          127.0.0.1:8080      0.0.0.0:*          \n"
               b"LISTEN 0      511             [::]:80           [::]:*          \n"
               b"LISTEN 0      128             [::]:22           [::]:*          \n")
#: What other hosts print: systemd-resolved on an interface, a dual-stack wildcard, a v4-mapped
#: address, a link-local address bound to its interface.
SS_OTHERS = (b"LISTEN 0      4096   127.0.0.53%lo:53        0.0.0.0:*          \n"
             b"LISTEN 0      4096               *:9100            *:*          \n"
             b"LISTEN 0      128    [::ffff:127.0.0.1]:6379       *:*\n"
             b"LISTEN 0      128    [fe80::5054:ff:fe12:3456]%enp1s0:2222   [::]:*\n")
_TAIL = b"00000000:00000000 00:00000000 00000000     0        0 17935 1 0000000000000000 100 0 0 10 0\n"
PROC_TCP = (b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
            b"inode\n"
            b"   0: 00000000:0050 00000000:0000 0A " + _TAIL +      # 0.0.0.0:80, listening
            b"   1: 0100007F:1F90 00000000:0000 0A " + _TAIL +      # 127.0.0.1:8080, listening
            b"   2: 0F02000A:0016 0202000A:D4A2 01 " + _TAIL)       # 10.0.2.15:22, an ssh session
PROC_TCP6 = (b"  sl  local_address                         remote_address                        st tx_queue "
             b"rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
             b"   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A " + _TAIL)


def test_parse_ss_reads_every_address_form() -> None:
    assert parse_ss(SS_TEMPLATE.decode()) == (frozenset({80, 22, 8080}), 0)
    assert parse_ss(SS_OTHERS.decode()) == (frozenset({53, 9100, 6379, 2222}), 0)


def test_parse_ss_skips_headers_other_states_and_garbage() -> None:
    text = ("State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\n"
            "UNCONN 0      0          0.0.0.0:68        0.0.0.0:*\n"
            "LISTEN 0      5        127.0.0.1:99999     0.0.0.0:*\n"
            "LISTEN 0      5        127.0.0.1:0         0.0.0.0:*\n"
            "LISTEN 0      5   \x1b[31m127.0.0.1:²³     0.0.0.0:*\n"
            "\x00\xff\n"
            "\n"
            "LISTEN 0      5          0.0.0.0:25        0.0.0.0:*\n")
    assert parse_ss(text) == (frozenset({25}), 6)


def test_parse_ss_of_a_huge_listing() -> None:
    text = "".join(f"LISTEN 0 5 10.0.{i // 250}.{i % 250}:{1024 + i % 60000} 0.0.0.0:*\n"
                   for i in range(300_000))
    found, rejected = parse_ss(text)
    assert len(found) == 60_000 and rejected == 0   # the first ports.MAX_LINES lines are looked at


def test_parse_proc_net_tcp_keeps_only_listening_sockets() -> None:
    assert parse_proc_net_tcp(PROC_TCP.decode()) == (frozenset({80, 8080}), 0)
    assert parse_proc_net_tcp(PROC_TCP6.decode()) == (frozenset({443}), 0)
    assert parse_proc_net_tcp("header\n   0: zz:0050 0 0A\n   1: 00000000:0050\n") == (frozenset(), 2)


def test_a_port_listened_on_passes_and_one_that_is_not_fails() -> None:
    listening = Listening(frozenset({80, 22}), "ss -H -ltn")
    result = evaluate(NGINX, 80, listening)
    assert (result.ok, result.probe, result.kind, result.subject) == (True, "port:nginx:80",
                                                                      IssueKind.PORT_DOWN, "tcp/80")
    down = evaluate(NGINX, 443, listening)
    assert (down.ok, down.severity) == (False, Severity.CRITICAL)
    assert down.summary == ("nginx: nothing listens on TCP port 443 any more (it did when the component "
                            "was discovered)")
    assert down.evidence["listening"] == "22 80"
    assert down.evidence["remedy"] == ("systemctl restart nginx.service  (then journalctl -u nginx.service "
                                       "if it does not come back)")
    assert evaluate(REDIS, 6379, listening).severity is Severity.WARNING


def test_a_cut_listing_cannot_prove_a_port_down() -> None:
    cut = Listening(frozenset({80}), "ss -H -ltn", is_truncated=True)
    assert evaluate(NGINX, 80, cut).ok
    assert evaluate(NGINX, 443, cut).is_unavailable


@pytest.mark.parametrize("port", [0, 65536, -1, True])
def test_a_number_that_is_no_port_is_unavailable(port: int) -> None:
    assert evaluate(NGINX, port, Listening(frozenset({80}))).is_unavailable


def test_the_listening_ports_in_the_evidence_are_capped() -> None:
    many = Listening(frozenset(range(1000, 2000)), "ss")
    assert evaluate(NGINX, 80, many).evidence["listening"].endswith("(and 936 more)")


def test_ss_is_asked_first() -> None:
    transport = FakeHost(listening=SS_TEMPLATE).transport()
    agent = FakeAgent(record=call_brief)
    listening = load_listening(transport, agent)
    assert (listening.ports, listening.source) == (frozenset({22, 80, 8080}), "ss -H -ltn")
    assert transport.argvs == [("ss", "-H", "-ltn")]
    assert agent.calls == []


@pytest.mark.parametrize("ss", ["missing", "local-missing", "fails", "hangs"])
def test_without_ss_the_agent_reads_proc_net_tcp(ss: str) -> None:
    def handler(argv: tuple[str, ...], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        if ss == "local-missing":
            return local_style_missing(argv, stdin)
        if ss == "hangs":
            raise CommandTimeoutError("hung", argv=list(argv))
        return (127, b"", b"sh: 1: ss: not found\n") if ss == "missing" else \
            (1, b"", b"Cannot open netlink socket: Protocol not supported\n")

    agent = FakeAgent(files={"/proc/net/tcp": PROC_TCP, "/proc/net/tcp6": PROC_TCP6})
    listening = load_listening(FakeTransport(handler), agent)
    assert listening.ports == frozenset({80, 8080, 443})
    assert listening.source.startswith("/proc/net/tcp//proc/net/tcp6 (ss ")
    assert listening.unavailable_reason is None


def test_no_ipv6_is_fine_but_an_unreadable_proc_is_unavailable() -> None:
    no_ss = FakeHost(missing={"ss"}).transport()
    assert load_listening(no_ss, FakeAgent(files={"/proc/net/tcp": PROC_TCP})).ports == frozenset({80, 8080})
    agent = FakeAgent(errors={"read_file": AgentFailedError("denied", host="t", op="read_file", code="io")})
    listening = load_listening(no_ss, agent)
    assert listening.unavailable_reason == ("ss is not installed, and the agent could not read "
                                            "/proc/net/tcp: denied")
    assert evaluate(NGINX, 80, listening).is_unavailable


def test_one_listing_per_detector_run_shared_by_the_port_probes() -> None:
    host = FakeHost(listening=SS_TEMPLATE)
    transport = host.transport()
    watch = WatchConfig((Component("web", ports=(80, 443)), Component("ssh", ports=(22,))), mounts=())
    detector = Detector(watch, transport, FakeAgent())
    assert [p for p in detector.probe_names if p.startswith("port:")] == [
        "port:web:80", "port:web:443", "port:ssh:22"]

    results = detector.run_components(["web", "ssh"])   # the host-wide probes run other commands
    assert [(r.probe, r.ok) for r in results] == [("port:web:80", True), ("port:web:443", False),
                                                  ("port:ssh:22", True)]
    assert transport.argvs == [("ss", "-H", "-ltn")]
    host.listening += b"LISTEN 0 511 0.0.0.0:443 0.0.0.0:*\n"   # nginx's TLS server is back
    assert all(r.ok for r in detector.run_components(["web"]))   # a new run asks again
    assert detector.run_probe("port:web:443").ok
    assert transport.argvs == [("ss", "-H", "-ltn")] * 3


def test_probe_name_is_stable() -> None:
    assert ports.probe_name(NGINX, 443) == "port:nginx:443"
