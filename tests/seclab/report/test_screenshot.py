"""Render the sample report with headless Chromium and check the screenshot is a real page.

Why a screenshot: a page can be valid HTML and still be unreadable (CSS blocked by its own CSP, an SVG
that does not render, a blank page). The PNG is decoded with zlib/struct (no Pillow needed) and must
have the requested size and enough pixel variance to hold text, tables and the plot.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

from seclab.report.build import build
from tests.conftest import need
from tests.seclab.report.test_report_build import full_options

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
WIDTH, HEIGHT = 1280, 2000


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """8-bit RGB/RGBA non-interlaced PNG -> (width, height, rows of raw pixel bytes), filters undone."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    height = bit_depth = colour = 0
    while pos < len(data):
        (length,), ctype = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if ctype == b"IHDR":
            width, height, bit_depth, colour = struct.unpack(">IIBB", body[:10])
        elif ctype == b"IDAT":
            idat += body
        pos += 12 + length
    assert bit_depth == 8 and colour in (2, 6), f"unexpected PNG format depth={bit_depth} colour={colour}"
    bpp = 3 if colour == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r[i] for i in range(0, len(r), bpp)) for r in rows]  # red channel


def test_report_screenshot(tmp_path: Path) -> None:
    need(CHROMIUM is not None, "chromium (./lab up installs it: the report and the browser tests use it)")
    assert CHROMIUM is not None
    out = tmp_path / "report"
    build(full_options(out))
    png = tmp_path / "report.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}", f"--window-size={WIDTH},{HEIGHT}",
           "--hide-scrollbars", (out / "index.html").resolve().as_uri()]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert png.exists(), f"no screenshot: {proc.stderr[-600:]}"
    keep = Path("/tmp/seclab-report-screenshot.png")  # for a person to look at after the run
    shutil.copyfile(png, keep)
    width, height, red = decode_png(png.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    values = [v for row in red[::8] for v in row[::8]]
    mean = sum(values) / len(values)
    variance = sum((v - mean) ** 2 for v in values) / len(values)
    assert variance > 300, f"screenshot looks blank (variance {variance:.0f})"
    # The dark header band (CSS applied under the page's own CSP) fills the top rows.
    assert sum(red[20][::16]) / len(red[20][::16]) < 80, "header not dark: the stylesheet did not apply"
    dark_rows = sum(1 for row in red[200::10] if min(row) < 90)
    assert dark_rows > 50, "too little text below the header"
