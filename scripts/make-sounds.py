#!/usr/bin/env python3
"""Writes the short alarm sounds shipped with Alarm Tray (src-tauri/sounds/*.wav).

Made here from sine tones, so the app ships no sound from elsewhere: 22,050 Hz, mono,
16-bit PCM, each well under a second and a half. Run again only to change them:

    python3 scripts/make-sounds.py
"""
import math
import struct
import wave
from pathlib import Path

RATE = 22_050
OUT = Path(__file__).resolve().parent.parent / "src-tauri" / "sounds"


def tone(freqs, secs, volume=0.5, fade=0.01):
    """A tone of one or more partials with short fades (no clicks at either end)."""
    n = int(RATE * secs)
    f = max(1, int(RATE * fade))
    out = []
    for i in range(n):
        t = i / RATE
        v = sum(math.sin(2 * math.pi * fr * t) for fr in freqs) / len(freqs)
        env = min(1.0, i / f, (n - 1 - i) / f)
        out.append(v * env * volume)
    return out


def silence(secs):
    return [0.0] * int(RATE * secs)


def chime_note(freq, secs, volume=0.45):
    """A struck note: quick attack, exponential decay."""
    n = int(RATE * secs)
    return [
        volume * math.exp(-4.0 * i / n) * min(1.0, i / 60)
        * (math.sin(2 * math.pi * freq * i / RATE) + 0.3 * math.sin(4 * math.pi * freq * i / RATE)) / 1.3
        for i in range(n)
    ]


def write(name, samples):
    OUT.mkdir(parents=True, exist_ok=True)
    with wave.open(str(OUT / name), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(struct.pack("<h", int(max(-1, min(1, s)) * 32767)) for s in samples))


# Critical: three urgent two-tone beeps (high, then higher).
alarm = []
for _ in range(3):
    alarm += tone([880, 1760], 0.12, 0.6) + tone([1175, 2350], 0.12, 0.6) + silence(0.08)
write("alarm.wav", alarm)

# Warning: two calm beeps.
write("alert.wav", tone([660], 0.18, 0.45) + silence(0.12) + tone([660], 0.18, 0.45))

# Gentle: a rising two-note chime.
write("chime.wav", chime_note(784, 0.45) + chime_note(1047, 0.6))
