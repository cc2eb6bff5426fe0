"""Offline face anonymisation engine: find every face in a photo and cover it for good.

Nothing here imports Streamlit; the dashboard and the command line both call this package.
"""

import os

__version__ = "0.1.0"

# ONNX Runtime's PyPI builds (1.32) carry Microsoft's telemetry on Linux and macOS too: importing
# it writes a device id and an event cache to ~/.cache/Microsoft/DeveloperTools/.onnxruntime, and
# a process that runs about 10 s sends the events to mobile.events.data.microsoft.com. Nothing may
# leave the machine: its full opt-out, read once, as ONNX Runtime is imported. Every import of it
# is inside this package, so this comes first (in a Ray worker too); set whatever the environment
# says, since the guarantee is ours.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"
