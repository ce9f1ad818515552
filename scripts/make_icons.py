#!/usr/bin/env python3
"""Draws the app icon and the four tray state icons as PNGs (pure Python, no deps).

A bell on a rounded square; the colour and a badge tell the state:
ok (green), alarm (red, "!"), problem (amber, broken ring), paused (grey, two bars).
Re-run after changing a shape: python3 scripts/make_icons.py
"""
import math, os, struct, zlib

OUT = os.path.join(os.path.dirname(__file__), "..", "icons")

def png(path, w, h, px):
    raw = b"".join(b"\0" + bytes(px[y * w * 4:(y + 1) * w * 4]) for y in range(h))
    def chunk(t, d):
        c = struct.pack(">I", len(d)) + t + d
        return c + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)

def coverage(inside, x, y, n=4):
    """Anti-aliasing: fraction of n*n subsamples of pixel (x, y) inside the shape."""
    hit = 0
    for i in range(n):
        for j in range(n):
            if inside(x + (i + 0.5) / n, y + (j + 0.5) / n):
                hit += 1
    return hit / (n * n)

def rounded_square(u, v, r=0.22):
    dx, dy = max(abs(u - 0.5) - (0.5 - r), 0), max(abs(v - 0.5) - (0.5 - r), 0)
    return dx * dx + dy * dy <= r * r

def bell(u, v):
    # body: a dome from v=0.22 to 0.66, widening downwards; a lip; a clapper; a knob
    if 0.22 <= v <= 0.66:
        half = 0.13 + 0.15 * ((v - 0.22) / 0.44) ** 1.6
        if abs(u - 0.5) <= half:
            return True
    if 0.64 <= v <= 0.71 and abs(u - 0.5) <= 0.32:
        return True
    if (u - 0.5) ** 2 + (v - 0.76) ** 2 <= 0.075 ** 2:
        return True
    if (u - 0.5) ** 2 + (v - 0.2) ** 2 <= 0.05 ** 2:
        return True
    return False

def badge_shape(state):
    cx, cy, r = 0.76, 0.76, 0.22
    def disc(u, v):
        return (u - cx) ** 2 + (v - cy) ** 2 <= r * r
    def glyph(u, v):
        if state == "alarm":  # exclamation mark
            return (abs(u - cx) <= 0.035 and cy - 0.14 <= v <= cy + 0.03) or (u - cx) ** 2 + (v - cy - 0.1) ** 2 <= 0.035 ** 2
        if state == "paused":  # two bars
            return cy - 0.11 <= v <= cy + 0.11 and (abs(u - (cx - 0.06)) <= 0.03 or abs(u - (cx + 0.06)) <= 0.03)
        if state == "problem":  # a ring with a gap: broken link
            d = math.hypot(u - cx, v - cy)
            ang = math.degrees(math.atan2(v - cy, u - cx))
            return 0.07 <= d <= 0.12 and not (-60 <= ang <= -20)
        if state == "ok":  # check mark
            return abs((v - cy) - (-(u - cx) * 1.2 + 0.0)) < 0.04 and u > cx - 0.02 and u < cx + 0.12 or \
                   abs((v - cy) - ((u - cx) * 1.0 + 0.03)) < 0.04 and cx - 0.1 < u <= cx - 0.0
        return False
    return disc, glyph

COLORS = {"ok": (46, 160, 67), "alarm": (218, 54, 51), "problem": (219, 140, 20), "paused": (130, 138, 145)}

def draw(size, state, badge=True):
    px = bytearray(size * size * 4)
    base = COLORS[state]
    disc, glyph = badge_shape(state)
    for y in range(size):
        for x in range(size):
            col = [0, 0, 0, 0.0]
            def over(rgb, a):
                if a <= 0:
                    return
                col[0] = rgb[0] * a + col[0] * (1 - a)
                col[1] = rgb[1] * a + col[1] * (1 - a)
                col[2] = rgb[2] * a + col[2] * (1 - a)
                col[3] = a + col[3] * (1 - a)
            f = lambda fn: coverage(lambda a, b: fn(a / size, b / size), x, y)
            over((38, 50, 64), f(rounded_square))
            over((245, 247, 250), f(bell))
            if badge:
                over((255, 255, 255), f(lambda u, v: (u - 0.76) ** 2 + (v - 0.76) ** 2 <= 0.25 ** 2))
                over(base, f(disc))
                over((255, 255, 255), f(glyph))
            a = col[3]
            i = (y * size + x) * 4
            if a > 0:
                px[i:i + 4] = bytes([min(255, int(col[0] / a + 0.5)) if a < 1 else int(col[0]),
                                     min(255, int(col[1] / a + 0.5)) if a < 1 else int(col[1]),
                                     min(255, int(col[2] / a + 0.5)) if a < 1 else int(col[2]),
                                     int(a * 255 + 0.5)])
    return px

def main():
    os.makedirs(OUT, exist_ok=True)
    for state in COLORS:
        png(os.path.join(OUT, f"tray-{state}.png"), 64, 64, draw(64, state))
    for name, size in [("32x32.png", 32), ("128x128.png", 128), ("128x128@2x.png", 256), ("icon.png", 512)]:
        png(os.path.join(OUT, name), size, size, draw(size, "ok"))

if __name__ == "__main__":
    main()
