"""Offline face anonymisation engine: find every face in a photo and cover it for good.

Nothing here imports Streamlit; the dashboard and the command line both call this package.
"""

__version__ = "0.1.0"
