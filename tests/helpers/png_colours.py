#!/usr/bin/env python3
"""Counts the pixels of a PNG screenshot near each colour given (#rrggbb), as JSON.

Used by the tests to check that a page rendered by a real browser shows what it should
(Chromium's screenshots: 8-bit RGB or RGBA, not interlaced). The standard library only.
"""
import json
import struct
import sys
import zlib


def pixels(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{path}: not a PNG")
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour_type not in (2, 6) or interlace:
                sys.exit(f"{path}: only 8-bit RGB(A), non-interlaced PNGs are read")
            channels = 3 if colour_type == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            up_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) & 255
        yield from (tuple(line[i:i + 3]) for i in range(0, stride, channels))
        previous = line


def main():
    path, colours = sys.argv[1], sys.argv[2:]
    wanted = {c: tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in colours}
    counts = dict.fromkeys(colours, 0)
    for pixel in pixels(path):
        for name, rgb in wanted.items():
            if all(abs(a - b) <= 8 for a, b in zip(pixel, rgb)):
                counts[name] += 1
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
