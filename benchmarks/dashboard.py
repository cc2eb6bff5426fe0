"""The dashboard with a large session: overview render time, slider-to-preview time, memory,
and the export of every photo approved.

    python -m benchmarks.dashboard [--photos 200] [--megapixels 12]
    python -m benchmarks.dashboard --photos 10000 --megapixels 0.1 --distinct 200 --no-export

Builds a throwaway workspace of N photos (the evaluation photos of ../shared/eval resized to
the given size, or the scikit-image astronaut where that folder is absent), detects them with
the real engine, then drives the real pages with Streamlit's AppTest in this process. With
`--distinct K`, only K photos are detected; every other photo is one of them with one pixel
changed (a different file to the session) and gets that photo's detection, so that a session of
10,000 is built in minutes and the page figures are about the pages, not the detector.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image


def detect_pending_subset(ws, session_id: int, chosen: set[int], source_of: dict[int, int]) -> None:
    """Detect the chosen photos with the engine; give every other photo its source's faces."""
    from core.images import decode_photo
    from core.review import preview_bases
    from dashboard.state import engine

    found = {}
    for record in ws.awaiting_detection(session_id):
        source = source_of[record.id]
        photo = decode_photo(ws.files.read(record.sha256), record.name)
        if source not in found:
            found[source] = engine().detect(photo)
        ws.files.save_previews(record.sha256, preview_bases(photo.pixels))
        ws.save_detection(record.id, photo.width, photo.height, found[source])


def _photos(count: int, megapixels: float, distinct: int = 0):
    """(name, JPEG bytes) one at a time, so the benchmark itself holds no batch in memory."""
    folder = Path(__file__).resolve().parents[2] / "shared" / "eval" / "images"
    sources = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    if sources:
        images = [Image.open(p).convert("RGB") for p in sources]
    else:
        from skimage import data

        images = [Image.fromarray(data.astronaut())]
    for i in range(count):
        image = images[(i % distinct if distinct else i) % len(images)]
        k = (megapixels * 1e6 / (image.width * image.height)) ** 0.5
        big = image.resize((round(image.width * k), round(image.height * k)), Image.BICUBIC)
        if i >= len(images):  # the same picture again, another file: a small patch differs
            for dx in range(4):
                for dy in range(4):
                    big.putpixel(((i + dx) % big.width, dy), (i % 256, (i // 256) % 256, 40 * dx))
        buffer = io.BytesIO()
        big.save(buffer, "JPEG", quality=90)
        yield f"photo-{i:05d}.jpg", buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--distinct", type=int, default=0, help="detect only this many photos (see above)")
    parser.add_argument("--no-export", action="store_true")
    parser.add_argument("--workspace", type=Path, help="reuse a workspace an earlier run built (pages only)")
    args = parser.parse_args()
    os.environ["FACE_PRIVACY_WORKSPACE"] = str(args.workspace or tempfile.mkdtemp(prefix="dashboard-bench-"))

    from streamlit.testing.v1 import AppTest

    from core.export import export_approved
    from core.records import APPROVED, PENDING, REJECTED
    from core.workspace import Workspace
    from dashboard.state import engine

    ws = Workspace(Path(os.environ["FACE_PRIVACY_WORKSPACE"]))
    if args.workspace:
        session_id = ws.sessions()[0]["id"]
        print(f"reusing {len(ws.listing(session_id))} photos of {args.workspace}")
    else:
        session_id = _build(ws, args)

    app = str(Path(__file__).resolve().parents[1] / "navigation.py")
    at = AppTest.from_file(app, default_timeout=600)
    at.session_state["session_id"] = session_id
    at.session_state["reviewer"] = "bench"
    at.run()
    at.switch_page("app_pages/overview.py")
    first = _timed(at.run)
    later = [_timed(at.run) for _ in range(5)]
    print(f"overview, 24 thumbnails a page: first visit {first * 1000:.0f} ms, "
          f"after that median {statistics.median(later) * 1000:.0f} ms (script run, no browser)")
    changed = []
    for image_id, _name, _status in ws.listing(session_id)[-5:]:
        ws.decide(image_id, REJECTED, "bench", "benchmark: a change between two views")
        changed.append(_timed(at.run))
        ws.decide(image_id, PENDING, "bench")
    print(f"overview after a decision on another tab: median {statistics.median(changed) * 1000:.0f} ms")

    at.switch_page("app_pages/review.py").run()
    views = [_timed(at.run) for _ in range(5)]
    print(f"review page view: median {statistics.median(views) * 1000:.0f} ms")
    next(t for t in at.toggle if t.label == "Use its own settings").set_value(True).run()  # this photo's settings
    slider = next(s for s in at.slider if s.label == "Confidence threshold")
    times = []
    for value in (0.3, 0.4, 0.5, 0.35, 0.45):
        slider.set_value(value)
        times.append(_timed(at.run))
        slider = next(s for s in at.slider if s.label == "Confidence threshold")
    print(f"slider to preview: median {statistics.median(times) * 1000:.0f} ms "
          "(page rerun with the new preview, no detection)")
    next(t for t in at.toggle if t.label == "Use its own settings").set_value(False).run()
    zooms = []
    opened = _timed(next(t for t in at.toggle if t.label.startswith("Zoom: inspect")).set_value(True).run)
    for face in range(1, 7):  # zoom to faces 1..6 in turn, each shown at full resolution or closer
        picker = next(s for s in at.selectbox if s.label == "Zoom to")
        if face >= len(picker.options):
            break
        picker.set_value(face)
        zooms.append(_timed(at.run))
    if zooms:
        print(f"zoom view opened: {opened * 1000:.0f} ms (decodes the photo at full resolution); "
              f"zoom to a face: median {statistics.median(zooms) * 1000:.0f} ms")
    next(t for t in at.toggle if t.label.startswith("Zoom: inspect")).set_value(False).run()
    steps = []
    for _ in range(5):
        approve = next(b for b in at.button if b.label == "Approve")
        approve.click()
        steps.append(_timed(at.run))
    print(f"approve -> next photo: median {statistics.median(steps) * 1000:.0f} ms")
    if args.no_export:
        print(f"peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        return

    for record in ws.images(session_id):
        if record.detected:
            ws.decide(record.id, APPROVED, "bench")
    start = time.perf_counter()
    result = export_approved(ws, session_id, "bench", engine().detector)
    exported = time.perf_counter() - start
    print(f"export of {args.photos} approved photos (with the residual check): {exported:.0f} s, "
          f"{len(result.exported)} exported, {len(result.held_back)} held back, "
          f"zip {result.path.stat().st_size / 1e6:.0f} MB")
    print(f"peak memory of this process (engine, pages, export): "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def _build(ws, args) -> int:
    """A session of args.photos photos, detected; returns its id."""
    from core.review import detect_pending
    from dashboard.state import engine

    from core.intake import add_files, intake_folder

    session_id = ws.create_session("benchmark", "bench")
    # The photos wait in a folder, as a user's batch does; intake is timed as the Start page does it.
    folder = Path(tempfile.mkdtemp(prefix="dashboard-bench-photos-"))
    for name, data in _photos(args.photos, args.megapixels, args.distinct):
        (folder / name).write_bytes(data)
    start = time.perf_counter()
    report = add_files(ws, session_id, intake_folder(str(folder), [folder]), "bench")
    made = time.perf_counter() - start
    shutil.rmtree(folder)
    if report.duplicates:  # JPEG may round a small change away: those files are the same photo
        print(f"{len(report.duplicates)} of the files were the same photo as another, added once")
    source_of: dict[int, int] = {}
    firsts: dict[int, int] = {}
    for index, (image_id, _name, _status) in enumerate(
            (r.id, r.name, r.status) for r in ws.awaiting_detection(session_id)):
        if args.distinct:
            source_of[image_id] = firsts.setdefault(index % args.distinct, image_id)
    start = time.perf_counter()
    if args.distinct:
        detect_pending_subset(ws, session_id, set(firsts.values()), source_of)
    else:
        detect_pending(ws, engine(), session_id)
    detected = time.perf_counter() - start
    print(f"{report.added} photos of {args.megapixels:g} MP: added in {made:.0f} s "
          f"({made / args.photos * 1000:.1f} ms a file: a folder read into the session, no detection), "
          f"detected in {detected:.0f} s"
          + (f" ({args.distinct} detected, the others given their source's faces)" if args.distinct else
             f" ({detected / report.added * 1000:.0f} ms each)"))

    return session_id


def _timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
