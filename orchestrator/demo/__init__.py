"""Demo and test support: break a *patient* VM on purpose (never the machine vmrepair runs on)."""
