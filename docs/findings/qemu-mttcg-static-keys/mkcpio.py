#!/usr/bin/env python3
"""Writes a newc ("070701") cpio archive holding one file, /init, to stdout.
A fallback for machines without cpio(1); the Makefile uses cpio when it can."""
import os
import sys


def entry(name: bytes, mode: int, data: bytes, ino: int) -> bytes:
    namesz = len(name) + 1
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, namesz, 0]
    hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
    out = hdr + name + b"\0"
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "init"
    with open(path, "rb") as f:
        data = f.read()
    archive = entry(b"init", 0o100755, data, 1) + entry(b"TRAILER!!!", 0, b"", 0)
    archive += b"\0" * (-len(archive) % 512)
    sys.stdout.buffer.write(archive)


if __name__ == "__main__":
    main()
