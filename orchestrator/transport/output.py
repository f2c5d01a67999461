"""Command output is untrusted: decode it, make control characters visible, and cap it.

These helpers sit in the transport package because every package that reads a target's output needs
them, including low ones (:mod:`orchestrator.systemd`) that must not import probes or sessions.
:func:`cap_text` is the one implementation; ``orchestrator.session.store.cap_text`` only adds the
session's default cap.
"""

from __future__ import annotations

from orchestrator.transport.base import CommandResult

#: Default cap of one output string kept as evidence (note included, see :func:`cap_output`).
OUTPUT_MAX = 4096
#: cap_text appends "[... N more characters not kept]" after its limit; keep the total under the cap.
_CAP_NOTE_ROOM = 64


def cap_text(text: str | bytes, limit: int) -> str:
    """Decode, replace control characters (except newline/tab) and cap at ``limit`` characters.

    The cap counts escaped text; an escape is never split, and the note appended past the cap counts
    the characters of the input that were left out.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    pieces: list[str] = []
    size = 0
    for ch in text:
        # An escape sequence from a target must never reach a terminal or a report raw.
        piece = ch if ch in "\n\t" or (ch.isprintable() and ch != "\x7f") else f"\\x{ord(ch):02x}"
        if size + len(piece) > limit:
            break
        pieces.append(piece)
        size += len(piece)
    cleaned = "".join(pieces)
    if len(pieces) < len(text):
        cleaned += f"\n[... {len(text) - len(pieces)} more characters not kept]"
    return cleaned


def cap_output(text: str | bytes, limit: int = OUTPUT_MAX) -> str:
    """Like :func:`cap_text`, but ``limit`` also covers the note: the result is never longer."""
    return cap_text(text, max(1, limit - _CAP_NOTE_ROOM))


def command_output(result: CommandResult, limit: int = OUTPUT_MAX) -> str:
    """stderr then stdout of ``result`` as one capped string (tools put their errors on either)."""
    parts = [p for p in (result.stderr, result.stdout) if p.strip()]
    return cap_output(b"\n".join(parts), limit)
