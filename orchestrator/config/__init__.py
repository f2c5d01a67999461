"""Loading and validating the files users write: config, templates (and later playbooks)."""
