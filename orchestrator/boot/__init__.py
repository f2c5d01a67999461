"""What a boot is, and when one may happen: low-level facts the layers above share.

- :mod:`.host`      a host's boot id, and rebooting it through its transport until a new boot id answers
- :mod:`.critical`  which changed paths make a fix boot-critical (fstab, crypttab, bootloader, initramfs ...)
- :mod:`.window`    maintenance windows, rebootmgr style (``"Sun 03:30 for 1h30"``), in local wall time
- :mod:`.when`      the operator's ``AT`` for a scheduled reboot

They sit below the hypervisor, the sandbox, the configuration and the reboot orchestration
(:mod:`orchestrator.reboot`), which all use them; nothing here imports those.
"""

from __future__ import annotations
