"""The `vmrepair` command line: the only place errors become exit codes and messages."""
