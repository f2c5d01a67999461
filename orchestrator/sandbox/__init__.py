"""The troubleshooting VM: an ephemeral linked clone where faults are reproduced and repaired."""
