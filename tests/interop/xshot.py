#!/usr/bin/env python3
"""xshot.py DISPLAY FILE: saves the root window of the X display DISPLAY
(e.g. ":3", an Xvfb the interop suite started) as a PNG in FILE. For the
interop suite's checks of TigerVNC's viewer window; uses Pillow's ImageGrab
over XCB (Pillow, which vncdotool already needs, is built with it)."""
import sys

from PIL import ImageGrab

ImageGrab.grab(xdisplay=sys.argv[1]).save(sys.argv[2])
