"""What a request to the agent looks like before it is sent, and what its answer may be: where the agent
lives on the host, the answer caps per operation, which operations a batch may carry, and the helpers
that make untrusted answers printable. Shared by :mod:`orchestrator.agent.rpc`,
:mod:`orchestrator.agent.client` and their callers (the apply uploads into :data:`DEFAULT_REMOTE_DIR`)."""

from __future__ import annotations

import base64
import functools
import importlib.resources
import json
import re
from collections.abc import Iterable
from typing import Any

from orchestrator.agent.api import FileEntry, Placeholder

DEFAULT_REMOTE_DIR = "/run/vmrepair"
#: What ``python3 FILE`` exits with when FILE does not exist ("can't open file").
SCRIPT_MISSING_EXIT = 2
#: Answer caps (bytes of stdout). Lists of paths can be long; 50,000 manifest entries with
#: placeholders' base64 samples stay well below LIST_ANSWER_CAP (the agent budgets the samples).
ANSWER_CAP = 4 * 1024 * 1024
LIST_ANSWER_CAP = 64 * 1024 * 1024
READ_ANSWER_CAP = 256 * 1024 * 1024
LIST_OPS = frozenset({"manifest", "pack", "unpack", "big_files"})
#: What a batch may carry (the agent refuses anything else in one): reads that change nothing.
BATCHABLE_OPS = frozenset({"manifest", "read_file", "jsonl_check", "disk_usage", "big_files"})
#: Requests the agent answers in one ``batch`` call (its MAX_BATCH; a test keeps the two equal).
MAX_BATCH = 64


def cap_of(op: str, args: dict[str, Any]) -> int:
    """The answer cap of one request, as a direct call would use it."""
    if op == "read_file" and isinstance(args.get("max_bytes"), int):
        return 4 * (int(args["max_bytes"]) // 3 + 1) + 4096
    return LIST_ANSWER_CAP if op in LIST_OPS else ANSWER_CAP


def request_key(op: str, args: dict[str, Any]) -> str:
    """The same request always gives the same key: a prefetched answer is found by it."""
    return json.dumps({"op": op, "args": args}, sort_keys=True, ensure_ascii=True)


#: The only archive names ``pack`` may answer with.
PACK_NAME = re.compile(r"pack-[0-9a-f]{16}\.tar")
# Control characters, and the invisible and bidi-override ones that could disguise a message.
UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


@functools.cache
def agent_script() -> bytes:
    """The agent script as shipped in the package."""
    return (importlib.resources.files("orchestrator.agent") / "remote" / "vmrepair_agent.py").read_bytes()


def clean(text: str, limit: int = 500) -> str:
    """Untrusted text made safe to print in one line of a message."""
    text = UNPRINTABLE.sub("?", text).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + "..."


def is_under(path: str, roots: Iterable[str]) -> bool:
    return any(root in ("/", path) or path.startswith(root + "/") for root in roots)


def placeholder_spec(placeholder: Placeholder, entry: FileEntry | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "path": placeholder.path, "size": placeholder.size, "sha256": placeholder.sha256,
        "head_b64": base64.b64encode(placeholder.head).decode("ascii"),
        "tail_b64": base64.b64encode(placeholder.tail).decode("ascii"),
    }
    if entry is not None and entry.type == "file":
        spec.update(mode=entry.mode, uid=entry.uid, gid=entry.gid, mtime=entry.mtime)
    return spec
