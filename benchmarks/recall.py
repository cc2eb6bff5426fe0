"""Recall, false regions, time and memory of the engine at default settings.

    python -m benchmarks.recall [FOLDER] [--repeat N]

FOLDER holds `annotations.json` and the images it names (default ../shared/eval). A face is
protected when at least half its box lies inside the union of anonymised regions; a region
is false when less than a tenth of it lies on any face or ignore box (the eval README's
measure). Times are end to end: read and decode the file, detect, anonymise, encode.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from core.images import decode_photo, encode_photo, output_format
from core.pipeline import Engine, Settings, anonymize, residual_faces

BINS = ("<16", "16-32", "32-64", ">=64")


def size_bin(w: float, h: float) -> str:
    s = (w * h) ** 0.5
    return "<16" if s < 16 else "16-32" if s < 32 else "32-64" if s < 64 else ">=64"


def _mask(boxes, width: int, height: int) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    for x, y, w, h in boxes:
        x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
        mask[y0:max(y0, int(round(y + h))), x0:max(x0, int(round(x + w)))] = True
    return mask


def score_image(regions, faces, ignore, width: int, height: int) -> tuple[dict, int]:
    """(protected, total) per size bin, and the number of false regions, for one image."""
    covered = _mask(regions, width, height)
    counts = {b: [0, 0] for b in BINS}
    for x, y, w, h in faces:
        box = _mask([(x, y, w, h)], width, height)
        counts[size_bin(w, h)][0] += bool(box.any() and covered[box].mean() >= 0.5)
        counts[size_bin(w, h)][1] += 1
    truth = _mask(list(faces) + list(ignore), width, height)
    false = sum(1 for x, y, w, h in regions if w * h and truth[y:y + h, x:x + w].mean() < 0.1)
    return counts, false


def process(engine: Engine, data: bytes, name: str, settings: Settings):
    """One image end to end, as the command line does it; returns the regions covered and
    the anonymised pixels."""
    photo = decode_photo(data, name, engine.max_pixels)
    faces = engine.detect(photo)
    pixels = anonymize(photo.pixels, faces, settings)
    encode_photo(pixels, output_format(photo), settings.jpeg_quality)
    return settings.regions(faces, photo.width, photo.height), pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "eval")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per image (median taken)")
    parser.add_argument("--batch", type=int, default=100, help="images in the memory run")
    args = parser.parse_args()

    entries = json.loads((args.folder / "annotations.json").read_text())
    files = {e["image"]: (args.folder / e["image"]).read_bytes() for e in entries}
    settings = Settings()
    totals = {b: [0, 0] for b in BINS}
    false_regions = 0
    per_image_ms = []
    residual_flagged = []
    with Engine() as engine:
        for entry in entries:
            data = files[entry["image"]]
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                regions, pixels = process(engine, data, entry["image"], settings)
                times.append((time.perf_counter() - start) * 1000)
            per_image_ms.append(statistics.median(times))
            if residual_faces(engine.detector, pixels, regions):
                residual_flagged.append(entry["image"])
            counts, false = score_image(regions, entry["faces"], entry.get("ignore", []),
                                        entry["width"], entry["height"])
            false_regions += false
            for b in BINS:
                totals[b][0] += counts[b][0]
                totals[b][1] += counts[b][1]

        for i in range(args.batch):
            entry = entries[i % len(entries)]
            process(engine, files[entry["image"]], entry["image"], settings)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        crowd = max(entries, key=lambda e: len(e["faces"]))
        big12mp = _twelve_megapixel_jpeg(files[crowd["image"]])
        twelve = [_timed(lambda: process(engine, big12mp, "12mp.jpg", settings)) for _ in range(args.repeat)]
        peak_12mp_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"images {len(entries)}, faces {sum(t[1] for t in totals.values())}, settings {settings.to_dict()}")
    for b in BINS:
        hit, total = totals[b]
        print(f"recall {b:>6} px: {hit / max(total, 1):.3f}  ({hit}/{total})")
    big = [totals[b] for b in BINS[1:]]
    print(f"recall  >=16 px: {sum(h for h, _ in big) / max(sum(t for _, t in big), 1):.3f}")
    print(f"false regions per image: {false_regions / len(entries):.2f}")
    print(f"images flagged by the residual check: {len(residual_flagged)} of {len(entries)}")
    print(f"median ms per image (decode+detect+anonymise+encode, median of {args.repeat}): "
          f"{statistics.median(per_image_ms):.1f}")
    print(f"peak memory after a {args.batch}-image batch: {peak_mb:.0f} MB")
    print(f"12 MP crowd photo ({len(crowd['faces'])} faces) end to end, median of {args.repeat}: "
          f"{statistics.median(twelve):.0f} ms; peak memory then {peak_12mp_mb:.0f} MB")


def _timed(work) -> float:
    start = time.perf_counter()
    work()
    return (time.perf_counter() - start) * 1000


def _twelve_megapixel_jpeg(data: bytes) -> bytes:
    """A 4000 x 3000 JPEG made by enlarging an evaluation photo, kept in memory only."""
    image = Image.open(io.BytesIO(data)).convert("RGB").resize((4000, 3000), Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


if __name__ == "__main__":
    main()
