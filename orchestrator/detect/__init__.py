"""Detect: probe a target and turn what fails into :class:`~orchestrator.model.Issue` objects.

One module per probe family, each producing :class:`~orchestrator.model.ProbeResult` values whose
``probe`` name is stable, so the very same check can be re-run later by name (in a troubleshooting VM,
and to validate a fix) with :meth:`Detector.run_probe`:

=====================  =========================================  ==========================
probe name             what it checks                             runs through
=====================  =========================================  ==========================
``unit:<unit>``        systemd state of a component's unit,      transport (systemctl show,
                       and its restart loops in a time window     journalctl)
``config:<component>`` the component's config test argv           transport
``http:<url>``         an endpoint on the target's loopback       transport (curl)
``disk:<mount>``       block usage of a mount                     agent (disk_usage)
``inodes:<mount>``     inode usage of a mount                     agent (disk_usage)
``jsonl:<path>``       a JSON-lines log parses line by line       agent (jsonl_check)
``fstab:<path>``       no fstab entry would stop the next boot    agent (read_file, manifest)
``memory:pressure``    MemAvailable and PSI memory stalls         agent (read_file /proc)
``memory:oom``         OOM kills in a recent window               agent (/proc/vmstat), journalctl
``kernel:taint``       taint flags and faults logged this boot    agent (/proc), journalctl
``sysdir:<path>``      owner and mode of /tmp, /etc/shadow, ...   agent (manifest), stat (dirs)
``system:state``       systemctl is-system-running, failed units  transport (systemctl)
=====================  =========================================  ==========================

Everything read from the target is untrusted: it is parsed, never interpreted, and every evidence
string is capped (:func:`orchestrator.detect.common.cap_evidence`).
"""

from __future__ import annotations

from orchestrator.detect.detector import Detector
from orchestrator.detect.report import DetectionReport

__all__ = ["DetectionReport", "Detector"]
