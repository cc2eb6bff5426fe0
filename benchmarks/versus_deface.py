"""This engine against deface, whole process, in the same run: time and protection on pixels.

    python -m benchmarks.versus_deface DEFACE [FOLDER] [--mosaic GRID] [--repeat N]

DEFACE is the `deface` command (installed apart, in its own virtual environment: it needs the
non-headless OpenCV). Both tools write a solid cover over a copy of the photos of FOLDER
(default ../shared/eval), or over GRID x GRID mosaics of them; each run is timed as a whole
process (start-up, models, every photo), the runs alternate, and the medians and their ratio
are printed with both tools' protection judged on the written pixels (see benchmarks.recall).
Nothing is written inside the repository.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from benchmarks.recall import exposure, mosaics


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _protection(inputs: Path, outputs: dict[str, Path], entries: dict[str, dict]) -> str:
    shares = []
    for stem, entry in entries.items():
        original = np.asarray(Image.open(inputs / f"{stem}.jpg").convert("RGB"))
        written = np.asarray(ImageOps.exif_transpose(Image.open(outputs[stem])).convert("RGB"))
        shares += exposure(original, written, entry["faces"])
    big = [s for b, s in shares if b != "<16"]
    small = [s for b, s in shares if b == "<16"]
    return (f"faces >= 16 px {np.mean([s <= 0.1 for s in big]):.3f}, < 16 px {np.mean([s <= 0.1 for s in small]):.3f}, "
            f">= 16 px more than a quarter exposed {sum(s > 0.25 for s in big)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("deface")
    parser.add_argument("folder", nargs="?", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "eval")
    parser.add_argument("--mosaic", type=int, default=0, metavar="GRID")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    annotations = json.loads((args.folder / "annotations.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "in"
        inputs.mkdir()
        if args.mosaic:
            items = mosaics(args.folder, annotations, args.mosaic)
        else:
            items = [(e["image"], (args.folder / e["image"]).read_bytes(), e) for e in annotations]
        entries = {}
        for name, data, entry in items:
            stem = Path(name).stem
            (inputs / f"{stem}.jpg").write_bytes(data)
            entries[stem] = entry
        ours_cmd = [sys.executable, "-m", "core", "anonymize", str(inputs), "--mode", "solid"]
        deface_cmd = [args.deface, "--replacewith", "solid", "--thresh", "0.2"]
        ours, theirs = [], []
        for run in range(args.repeat):
            out = Path(tmp) / f"ours{run}"
            ours.append(_timed(ours_cmd + ["--out", str(out)]))
            copies = Path(tmp) / f"deface{run}"
            copies.mkdir()
            for stem in entries:
                (copies / f"{stem}.jpg").write_bytes((inputs / f"{stem}.jpg").read_bytes())
            theirs.append(_timed(deface_cmd + [str(copies / f"{stem}.jpg") for stem in entries]))
        label = f"{len(items)} mosaics of {args.mosaic} x {args.mosaic}" if args.mosaic else f"{len(items)} photos"
        print(f"{label} of {args.folder}, whole process, median of {args.repeat} alternating runs")
        print(f"  this engine: {statistics.median(ours):.2f} s  (runs {', '.join(f'{t:.2f}' for t in ours)})")
        print(f"  deface:      {statistics.median(theirs):.2f} s  (runs {', '.join(f'{t:.2f}' for t in theirs)})")
        print(f"  ratio: {statistics.median(ours) / statistics.median(theirs):.2f}")
        print("  this engine on pixels: "
              + _protection(inputs, {s: out / f"{s}.jpg" for s in entries}, entries))
        print("  deface on pixels:      "
              + _protection(inputs, {s: copies / f"{s}_anonymized.jpg" for s in entries}, entries))


if __name__ == "__main__":
    main()
