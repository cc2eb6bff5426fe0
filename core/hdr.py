"""What a screen shows of a phone's HDR video frame, for the reviewer's eyes.

An iPhone films HDR by default (HLG), and an Android phone's HDR10 is PQ, both in BT.2020
colours: decoded as they are and shown as an ordinary picture, an HLG frame comes out pale and a
PQ frame grey and flat. The review, its face thumbnails and the audit's thumbnail show such a
frame tone-mapped to SDR BT.709 instead, as a player on an ordinary screen shows it. Detection,
covering and the residual check work on the frame's own values: the file written keeps the
clip's HDR (see `video._keep_colours`).
"""

from __future__ import annotations

from functools import cache

import numpy as np

# AVColorTransferCharacteristic: SMPTE ST 2084 (PQ) and ARIB STD-B67 (HLG).
PQ, HLG = 16, 18
TRANSFERS = (PQ, HLG)

# Where SDR's white sits: 203 cd/m2 (BT.2408), which HLG puts at 75 % of its signal on the
# 1000 cd/m2 display its system gamma of 1.2 is defined for.
_REFERENCE_WHITE = 203.0
_HLG_PEAK = 1000.0
# BT.2020 to BT.709 primaries, on linear light.
_TO_709 = np.array([[1.6605, -0.5876, -0.0728],
                    [-0.1246, 1.1329, -0.0083],
                    [-0.0182, -0.1006, 1.1187]], np.float32)
# Highlights above this (SDR white = 1) are rolled off smoothly into what SDR can show.
_KNEE = 0.75


@cache
def _linear(transfer: int) -> np.ndarray:
    """For each 16-bit signal value, its light relative to SDR white (1.0)."""
    signal = np.arange(65536, dtype=np.float64) / 65535
    if transfer == PQ:
        m1, m2, c1, c2, c3 = 0.1593017578125, 78.84375, 0.8359375, 18.8515625, 18.6875
        p = signal ** (1 / m2)
        nits = 10000 * (np.maximum(p - c1, 0) / (c2 - c3 * p)) ** (1 / m1)
        return (nits / _REFERENCE_WHITE).astype(np.float32)
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    scene = np.where(signal <= 0.5, signal ** 2 / 3, (np.exp((signal - c) / a) + b) / 12)
    return (_HLG_PEAK * scene ** 1.2 / _REFERENCE_WHITE).astype(np.float32)


@cache
def _encoded() -> np.ndarray:
    """For 4096 steps of relative light from 0 to 1, the 8-bit SDR value (BT.1886's 2.4)."""
    return np.round(255 * np.linspace(0, 1, 4096) ** (1 / 2.4)).astype(np.uint8)


def to_sdr(rgb48: np.ndarray, transfer: int) -> np.ndarray:
    """16-bit R'G'B' in BT.2020 with `transfer` (PQ or HLG) as 8-bit SDR RGB in BT.709."""
    light = _linear(transfer)[rgb48] @ _TO_709.T
    np.maximum(light, 0, out=light)
    high = light > _KNEE
    light[high] = _KNEE + (1 - _KNEE) * (1 - np.exp(-(light[high] - _KNEE) / (1 - _KNEE)))
    return _encoded()[np.minimum(light * 4095 + 0.5, 4095).astype(np.uint16)]
