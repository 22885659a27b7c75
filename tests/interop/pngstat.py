#!/usr/bin/env python3
"""pngstat.py FILE [POINTS_JSON]: prints, as JSON, a PNG's size, its colour
histogram (its 64 most frequent colours, most frequent first;
`many_colors` if it has more) and the RGB of the given [x, y] points. For
the interop suite's checks of vncdotool captures, Chromium screenshots and
Xvfb screenshots (xshot.py); uses Pillow, which vncdotool already needs."""
import json
import sys

from PIL import Image

im = Image.open(sys.argv[1]).convert("RGB")
points = json.loads(sys.argv[2]) if len(sys.argv) > 2 else []
colors = im.getcolors(im.width * im.height)
colors.sort(reverse=True)
print(json.dumps({
    "width": im.width,
    "height": im.height,
    "colors": [[n, list(rgb)] for n, rgb in colors[:64]],
    "many_colors": len(colors) > 64,
    "points": [list(im.getpixel((x, y))) for x, y in points],
}))
