"""Sessions: one directory per run with the evidence as JSON, written as it happens."""
