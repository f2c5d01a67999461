"""Capture: snapshot the affected components of a target without stopping it."""
