"""Protection, false regions, time and memory of the engine at default settings.

    python -m benchmarks.recall [FOLDER] [--repeat N] [--mosaic GRID] [--closeups] [--variants]

FOLDER holds `annotations.json` and the images it names (default ../shared/eval).

Protection is judged first on the pixels that leave: each photo is anonymised with a solid
cover (default shape and padding), encoded and decoded again, and a face is protected when at
most 10 % of its box is still exposed (a pixel not dark in the original, max channel > 40, and
within 20 levels of it in every channel of the output); faces more than a quarter exposed are
counted. Beside it, the region measure of the eval README: a face is protected when at least
half its box lies inside the union of anonymised regions; a region is false when less than a
tenth of it lies on any face or ignore box. Times are end to end: read and decode the file,
detect, anonymise, encode.

With --closeups, every face of 64 px or more is also cut out of its photo with a margin (the face
about 45 % of the crop's side), enlarged to 1024 px and measured the same way: the close-ups
that a look at the whole photo must not miss.

With --mosaic GRID, GRID x GRID photos of the set are tiled without scaling onto camera-size
canvases (as ../shared/tools/make_mosaics.py does, in memory) and both measures are printed for
the mosaics and for the same photos one by one.

With --variants, the same photos are also measured in slightly different pixels: saved again as
JPEG, resized to 0.9 x and 1.1 x, and moved by 2 and 4 px onto a grey border (annotations too). A
threshold or a look chosen on the photos as they are should hold on these as well; what moves here
moves on other photos. With --mosaic too, the variants are of the photos the mosaics use: the
spread of their size buckets is how far a face's pixel grid alone moves them, beside which the
mosaics' buckets are read.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from core.faces import selected
from core.images import decode_photo, encode_photo, output_format
from core.pipeline import Engine, Settings, anonymize, check_output

BINS = ("<16", "16-32", "32-64", ">=64")
# The grey around photos laid on a canvas (make_mosaics.py's): mosaics, moved photos, the 100 MP photo.
CANVAS_GREY = (118, 118, 118)


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
    """(protected, total) per size bin by the region measure, and the number of false regions."""
    covered = _mask(regions, width, height)
    counts = {b: [0, 0] for b in BINS}
    for x, y, w, h in faces:
        box = _mask([(x, y, w, h)], width, height)
        counts[size_bin(w, h)][0] += bool(box.any() and covered[box].mean() >= 0.5)
        counts[size_bin(w, h)][1] += 1
    truth = _mask(list(faces) + list(ignore), width, height)
    false = sum(1 for x, y, w, h in regions if w * h and truth[y:y + h, x:x + w].mean() < 0.1)
    return counts, false


def exposure(original: np.ndarray, output: np.ndarray, faces) -> list[tuple[str, float]]:
    """(size bin, share of the box still exposed) for every annotated face, judged on pixels."""
    before, after = original[:, :, :3].astype(np.int16), output[:, :, :3].astype(np.int16)
    shares = []
    for x, y, w, h in faces:
        x0, y0 = max(0, int(x)), max(0, int(y))
        bo, bx = before[y0:int(y + h), x0:int(x + w)], after[y0:int(y + h), x0:int(x + w)]
        if bo.size:
            exposed = (np.abs(bo - bx).max(axis=2) <= 20) & (bo.max(axis=2) > 40)
            shares.append((size_bin(w, h), float(exposed.mean())))
    return shares


def process(engine: Engine, data: bytes, name: str, settings: Settings):
    """One image end to end, as the command line does it; returns the photo, the faces and the
    encoded output."""
    photo = decode_photo(data, name, engine.max_pixels)
    faces = engine.detect(photo)
    pixels = anonymize(photo.pixels, faces, settings)
    return photo, faces, encode_photo(pixels, output_format(photo), settings.jpeg_quality)


def evaluate(engine: Engine, items: list[tuple[str, bytes, dict]], settings: Settings, repeat: int,
             check: bool = True) -> dict:
    """Both measures, false regions, residual flags and median ms over (name, bytes, annotation)."""
    region = {b: [0, 0] for b in BINS}
    pixel: list[tuple[str, float]] = []
    false_regions, per_image_ms, flagged = 0, [], []
    solid = replace(settings, mode="solid")
    for name, data, entry in items:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            photo, faces, output = process(engine, data, name, settings)
            times.append((time.perf_counter() - start) * 1000)
        per_image_ms.append(statistics.median(times))
        if check and check_output(engine.detector, photo, output, selected(faces, settings.threshold), settings):
            flagged.append(name)
        counts, false = score_image(settings.regions(faces, photo.width, photo.height), entry["faces"],
                                    entry.get("ignore", []), photo.width, photo.height)
        false_regions += false
        for b in BINS:
            region[b][0] += counts[b][0]
            region[b][1] += counts[b][1]
        written = decode_photo(encode_photo(anonymize(photo.pixels, faces, solid), "JPEG", 92), name).pixels
        pixel += exposure(photo.pixels, written, entry["faces"])
    photos = sum(len(entry.get("sources", [name])) for name, _, entry in items)
    return {"region": region, "pixel": pixel, "false_per_photo": false_regions / photos,
            "flagged": flagged, "ms": per_image_ms, "images": len(items)}


def report(title: str, stats: dict) -> None:
    pixel, region = stats["pixel"], stats["region"]

    def protected(bins) -> str:
        chosen = [share for b, share in pixel if b in bins]
        return f"{np.mean([s <= 0.10 for s in chosen]):.3f} ({len(chosen)})" if chosen else "-"

    over_quarter = sum(share > 0.25 for b, share in pixel if b != "<16")
    big = [region[b] for b in BINS[1:]]
    print(f"\n{title}")
    print("  on pixels (solid output as written; protected = at most 10 % of the box exposed):")
    print(f"    faces >= 16 px {protected(BINS[1:])}, < 16 px {protected(('<16',))}, "
          + ", ".join(f"{b} {protected((b,))}" for b in BINS[1:]))
    print(f"    faces >= 16 px more than a quarter exposed: {over_quarter}")
    print("  on regions (at least half the box inside the anonymised regions):")
    print(f"    faces >= 16 px {sum(h for h, _ in big) / max(sum(t for _, t in big), 1):.3f}, "
          + ", ".join(f"{b} {region[b][0] / max(region[b][1], 1):.3f}" for b in BINS))
    print(f"  false regions per photo: {stats['false_per_photo']:.2f}")
    print(f"  images held back by the residual check: {len(stats['flagged'])} of {stats['images']}")
    print(f"  median ms per image end to end: {statistics.median(stats['ms']):.0f} "
          f"(total {sum(stats['ms']) / 1000:.1f} s)")


def mosaics(folder: Path, entries: list[dict], grid: int) -> list[tuple[str, bytes, dict]]:
    """GRID x GRID photos tiled without scaling, annotations shifted (make_mosaics.py's layout)."""
    out = []
    per = grid * grid
    for m in range(len(entries) // per):
        group = entries[m * per:(m + 1) * per]
        images = [Image.open(folder / e["image"]).convert("RGB") for e in group]
        cell_w = max(im.width for im in images)
        row_h = [max(im.height for im in images[r * grid:(r + 1) * grid]) for r in range(grid)]
        canvas = Image.new("RGB", (cell_w * grid, sum(row_h)), CANVAS_GREY)
        faces, ignore = [], []
        for i, (entry, im) in enumerate(zip(group, images)):
            r, c = divmod(i, grid)
            ox, oy = c * cell_w, sum(row_h[:r])
            canvas.paste(im, (ox, oy))
            faces += [[x + ox, y + oy, w, h] for x, y, w, h in entry["faces"]]
            ignore += [[x + ox, y + oy, w, h] for x, y, w, h in entry.get("ignore", [])]
        out.append((f"mosaic_{m:02d}.jpg", _jpeg(canvas, 93),
                    {"faces": faces, "ignore": ignore, "sources": [e["image"] for e in group]}))
    return out


def closeups(folder: Path, entries: list[dict]) -> list[tuple[str, bytes, dict]]:
    """Each face of 64 px or more, cut out so it fills about 45 % of a 1024 px crop's side, with
    the other faces wholly inside the crop as faces and those it cuts as ignore boxes."""
    out = []
    for entry in entries:
        image = Image.open(folder / entry["image"]).convert("RGB")
        for x, y, w, h in entry["faces"]:
            if size_bin(w, h) != ">=64":
                continue
            half = max(w, h) / 0.45 / 2
            x0, y0 = max(0, int(x + w / 2 - half)), max(0, int(y + h / 2 - half))
            x1, y1 = min(image.width, int(x + w / 2 + half)), min(image.height, int(y + h / 2 + half))
            k = 1024 / max(x1 - x0, y1 - y0)
            crop = image.crop((x0, y0, x1, y1)).resize((round((x1 - x0) * k), round((y1 - y0) * k)), Image.BICUBIC)
            faces, ignore = [], []
            for box in entry["faces"] + entry.get("ignore", []):
                a, b, c, d = box
                shifted = [(a - x0) * k, (b - y0) * k, c * k, d * k]
                if box in entry["faces"] and a >= x0 and b >= y0 and a + c <= x1 and b + d <= y1:
                    faces.append(shifted)
                elif a < x1 and b < y1 and a + c > x0 and b + d > y0:
                    ignore.append(shifted)
            out.append((f"closeup_{len(out):03d}.jpg", _jpeg(crop, 93), {"faces": faces, "ignore": ignore}))
    return out


# (title, scale, JPEG quality, shift) of each --variants set.
VARIANTS = (("saved again as JPEG, quality 85", 1.0, 85, 0), ("resized to 0.9 x", 0.9, 93, 0),
            ("resized to 1.1 x", 1.1, 93, 0), ("moved 2 px right and down on a grey border", 1.0, 93, 2),
            ("moved 4 px right and down on a grey border", 1.0, 93, 4))


def variant(folder: Path, entries: list[dict], scale: float, quality: int,
            shift: int = 0) -> list[tuple[str, bytes, dict]]:
    """Every photo resized by `scale`, moved `shift` px right and down onto a grey border (as a
    mosaic places it among others; its annotations too) and saved as JPEG at `quality`."""
    out = []
    for entry in entries:
        image = Image.open(folder / entry["image"]).convert("RGB")
        if scale != 1.0:
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
        if shift:
            canvas = Image.new("RGB", (image.width + shift, image.height + shift), CANVAS_GREY)
            canvas.paste(image, (shift, shift))
            image = canvas
        moved = {key: [[x * scale + shift, y * scale + shift, w * scale, h * scale]
                       for x, y, w, h in entry.get(key, [])] for key in ("faces", "ignore")}
        out.append((entry["image"], _jpeg(image, quality), moved))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "eval")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per image (median taken)")
    parser.add_argument("--batch", type=int, default=100, help="images in the memory run")
    parser.add_argument("--mosaic", type=int, default=0, metavar="GRID",
                        help="also measure GRID x GRID mosaics against the same photos one by one")
    parser.add_argument("--closeups", action="store_true", help="also measure close-ups cut from the photos")
    parser.add_argument("--variants", action="store_true",
                        help="also measure the photos saved again and resized to 0.9 x and 1.1 x")
    args = parser.parse_args()

    entries = json.loads((args.folder / "annotations.json").read_text())
    items = [(e["image"], (args.folder / e["image"]).read_bytes(), e) for e in entries]
    settings = Settings()
    print(f"images {len(entries)}, faces {sum(len(e['faces']) for e in entries)}, settings {settings.to_dict()}")
    engine = Engine()
    report(f"{args.folder}, one by one", evaluate(engine, items, settings, args.repeat))
    if args.closeups:
        crops = closeups(args.folder, entries)
        report(f"{len(crops)} close-ups of its faces of 64 px or more", evaluate(engine, crops, settings, 1))
    tiles = mosaics(args.folder, entries, args.mosaic) if args.mosaic else []
    used = [e for e in entries if any(e["image"] in t[2]["sources"] for t in tiles)] or entries
    if args.variants:
        for title, scale, quality, shift in VARIANTS:
            report(f"the same {len(used)} photos {title}",
                   evaluate(engine, variant(args.folder, used, scale, quality, shift), settings, 1))
    if tiles:
        sizes = ", ".join(f"{Image.open(io.BytesIO(t[1])).size}" for t in tiles)
        report(f"{len(tiles)} mosaics of {args.mosaic} x {args.mosaic} ({sizes})",
               evaluate(engine, tiles, settings, args.repeat))
        if len(used) != len(items):
            report(f"the same {len(used)} photos one by one",
                   evaluate(engine, [item for item in items if item[2] in used], settings, 1))
        return
    for i in range(args.batch):
        name, data, _ = items[i % len(items)]
        process(engine, data, name, settings)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    crowd = max(entries, key=lambda e: len(e["faces"]))
    big12mp = _twelve_megapixel_jpeg((args.folder / crowd["image"]).read_bytes())
    twelve = [_timed(lambda: process(engine, big12mp, "12mp.jpg", settings)) for _ in range(args.repeat)]
    peak_12mp_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory after a {args.batch}-image batch: {peak_mb:.0f} MB")
    print(f"12 MP crowd photo ({len(crowd['faces'])} faces) end to end, median of {args.repeat}: "
          f"{statistics.median(twelve):.0f} ms; peak memory then {peak_12mp_mb:.0f} MB")
    panorama = _hundred_megapixel_jpeg(args.folder, entries)
    hundred = _timed(lambda: process(engine, panorama, "100mp.jpg", settings))
    peak_100mp_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"100 MP photo (the photos side by side without scaling, the engine's limit) end to end, one run: "
          f"{hundred / 1000:.1f} s; peak memory then {peak_100mp_mb:.0f} MB")


def _timed(work) -> float:
    start = time.perf_counter()
    work()
    return (time.perf_counter() - start) * 1000


def _twelve_megapixel_jpeg(data: bytes) -> bytes:
    """A 4000 x 3000 JPEG made by enlarging an evaluation photo, kept in memory only."""
    image = Image.open(io.BytesIO(data)).convert("RGB").resize((4000, 3000), Image.BICUBIC)
    return _jpeg(image, 90)


def _hundred_megapixel_jpeg(folder: Path, entries: list[dict]) -> bytes:
    """A 10000 x 10000 JPEG of the photos side by side in rows, again and again, without
    scaling (a crowd as a stitched panorama holds it: thousands of small faces), in memory only."""
    canvas = Image.new("RGB", (10_000, 10_000), CANVAS_GREY)
    x = y = row = 0
    for entry in entries * 20:
        image = Image.open(folder / entry["image"]).convert("RGB")
        if x + image.width > canvas.width:
            x, y, row = 0, y + row, 0
        if y + image.height > canvas.height:
            break
        canvas.paste(image, (x, y))
        x, row = x + image.width, max(row, image.height)
    return _jpeg(canvas, 90)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    """A made-up test photo as the JPEG file a camera or an editor would give."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


if __name__ == "__main__":
    main()
