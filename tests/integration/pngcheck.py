"""A tiny PNG decoder (zlib only) for looking at a screenshot: 8-bit RGB or RGBA, not interlaced —
what Chromium writes. Enough to count colours; not a general decoder."""

from __future__ import annotations

import struct
import zlib
from collections import Counter

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {2: 3, 6: 4}   # colour type -> bytes per pixel at bit depth 8


def pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of raw pixel bytes) of an 8-bit RGB(A) PNG; AssertionError otherwise."""
    assert data.startswith(_SIGNATURE), "not a PNG"
    pos, idat, header = len(_SIGNATURE), bytearray(), b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in _CHANNELS and interlace == 0, f"unsupported PNG: {depth=} {colour=}"
    bpp = _CHANNELS[colour]
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        _unfilter(kind, line, previous, bpp)
        rows.append(bytes(line))
        previous = line
    return width, height, rows


def _unfilter(kind: int, line: bytearray, up: bytearray, bpp: int) -> None:
    if kind == 0:
        return
    if kind == 2:
        for i in range(len(line)):
            line[i] = (line[i] + up[i]) & 0xFF
        return
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + ((left + up[i]) >> 1)) & 0xFF
        elif kind == 4:
            upper_left = up[i - bpp] if i >= bpp else 0
            estimate = left + up[i] - upper_left
            pa, pb, pc = abs(estimate - left), abs(estimate - up[i]), abs(estimate - upper_left)
            best = left if pa <= pb and pa <= pc else up[i] if pb <= pc else upper_left
            line[i] = (line[i] + best) & 0xFF
        else:
            raise AssertionError(f"bad PNG filter {kind}")


def colours(data: bytes) -> Counter[tuple[int, int, int]]:
    """How many pixels of each RGB colour the PNG has."""
    width, _, rows = pixels(data)
    bpp = len(rows[0]) // width if rows else 3
    counts: Counter[tuple[int, int, int]] = Counter()
    for row in rows:
        counts.update(zip(row[0::bpp], row[1::bpp], row[2::bpp], strict=True))
    return counts
