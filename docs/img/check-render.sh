#!/usr/bin/env bash
# Draws the demo's picture from a real (short) run and renders it in a real browser, headless
# Chromium, in the light and the dark colour scheme; fails if the browser draws nothing, or
# not the picture's bars:
#
#     apt-get install -y chromium        # Debian's package, once
#     docs/img/check-render.sh           # about 10 s after the build
#
# What "draws something" means here, read from the screenshot's pixels (python3's zlib decodes
# the PNG; no imaging library): the PNG is not a single colour; at least three of the bar
# colours (the threaded and forking panels have a worker colour each) cover a visible area; and
# the background is light in the light scheme and dark in the dark one (the picture's
# `prefers-color-scheme` style works). It also checks every committed docs/img/*.svg with a
# real XML parser and against the 50 KB budget.
#
# Loopback only: the demo starts its four servers on free ports of 127.0.0.1 and stops and
# reaps them itself; the browser gets --disable-background-networking and friends and opens a
# local file. Everything runs under `timeout`.
set -euo pipefail
cd "$(dirname "$0")/../.."
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [[ ! -x $CHROMIUM ]]; then
    echo "check-render: no browser at $CHROMIUM (apt-get install -y chromium, or set CHROMIUM)" >&2
    exit 1
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "== check-render: every docs/img/*.svg parses and is under 50 KB"
python3 - docs/img/*.svg <<'EOF'
import os, sys, xml.etree.ElementTree as ET
for path in sys.argv[1:]:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg", f"{path}: root is {root.tag}"
    assert os.path.getsize(path) < 50_000, f"{path}: {os.path.getsize(path)} bytes"
print(f"{len(sys.argv) - 1} pictures ok")
EOF

echo "== check-render: the demo's picture, from a short run"
cargo build --quiet --example demo
timeout 120 target/debug/examples/demo -n 3 --delay 0.2 --svg "$WORK" >"$WORK/demo.txt"
test -s "$WORK/demo.svg"

render() {
    local scheme=$1
    shift
    # The profile directory is fresh each time: nothing of a previous run, and nothing written
    # into the user's home.
    timeout 90 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
        --user-data-dir="$(mktemp -d -p "$WORK")" --window-size=1300,520 "$@" \
        --screenshot="$WORK/$scheme.png" "file://$WORK/demo.svg" >"$WORK/$scheme.log" 2>&1 || {
        cat "$WORK/$scheme.log" >&2
        echo "check-render: chromium failed ($scheme)" >&2
        exit 1
    }
    test -s "$WORK/$scheme.png"
}
render light
render dark --force-dark-mode

python3 - "$WORK/light.png" "$WORK/dark.png" <<'EOF'
import struct, sys, zlib

def read_png(path):
    """(width, height, rows of (r, g, b) tuples) of an 8-bit RGB or RGBA PNG."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    pos, idat, head = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = head
    assert depth == 8 and colour in (2, 6) and interlace == 0, f"{path}: unsupported PNG {head}"
    bpp = 4 if colour == 6 else 3
    raw, stride = zlib.decompress(idat), width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(width)])
        prev = line
    return width, height, rows

# The bar colours of course/src/client/svg/mod.rs's PALETTE.
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7"]
PALETTE = [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in PALETTE]

for path, dark in zip(sys.argv[1:], [False, True]):
    width, height, rows = read_png(path)
    colours = {}
    for row in rows:
        for px in row:
            colours[px] = colours.get(px, 0) + 1
    assert len(colours) > 1, f"{path}: a single colour: the browser drew nothing"
    near = lambda px, c: all(abs(p - q) <= 6 for p, q in zip(px, c))
    found = [sum(n for px, n in colours.items() if near(px, c)) for c in PALETTE]
    shown = [n for n in found if n >= 100]
    assert len(shown) >= 3, f"{path}: bar colours found {found}: the bars were not drawn"
    corner = rows[3][3]  # inside the picture: its background rectangle
    bright = sum(corner) / 3
    assert (bright < 60) if dark else (bright > 200), f"{path}: background {corner} in the {'dark' if dark else 'light'} scheme"
    print(f"{path}: {width}x{height}, {len(colours)} colours, bar pixels per colour {found}, background {corner}")
print("check-render: ok")
EOF
