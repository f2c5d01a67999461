"""Host layers: the target's packages, at the target's versions, over a template image."""
