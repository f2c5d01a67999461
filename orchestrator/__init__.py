"""vmrepair: reproduce host faults in disposable VMs and apply only verified fixes."""

__version__ = "0.1.0"
