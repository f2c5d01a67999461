"""Watched components: what vmrepair probes, captures, baselines and may change on a target."""
