#!/usr/bin/env python3
"""pngstat.py FILE [POINTS_JSON]: prints, as JSON, a PNG's size, its colour
histogram (up to 64 colours, most frequent first) and the RGB of the given
[x, y] points. For the interop suite's checks of vncdotool captures and
Chromium screenshots; uses Pillow, which vncdotool already needs."""
import json
import sys

from PIL import Image

im = Image.open(sys.argv[1]).convert("RGB")
points = json.loads(sys.argv[2]) if len(sys.argv) > 2 else []
colors = im.getcolors(64) or []
colors.sort(reverse=True)
print(json.dumps({
    "width": im.width,
    "height": im.height,
    "colors": [[n, list(rgb)] for n, rgb in colors],
    "many_colors": len(colors) == 0,
    "points": [list(im.getpixel((x, y))) for x, y in points],
}))
