"""A tiny valid PNG as a base64 string, shared by the TokenHub client scripts."""

import base64
import struct
import zlib


def png_base64(width=8, height=6):
    """An RGB PNG of `width`×`height`, base64-encoded."""
    raw = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 30 % 256, y * 40 % 256, 128))
        for y in range(height)
    )

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return base64.b64encode(png).decode()
