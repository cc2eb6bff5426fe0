"""What a file is by its name: a photo, a video, or a kind this tool names and refuses (a
camera's raw file), said with what to do. Folders, zips, uploads and the
command line all go by these rules; what a file holds is checked when it is decoded."""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".avif",
                  ".heic", ".heif", ".hif"}  # a browser's download of a JPEG (.jfif); an iPhone's HEIC, a camera's HEIF
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi",
                  ".mts", ".m2ts", ".mpg", ".mpeg", ".3gp", ".mxf",  # camcorders (AVCHD), broadcast, old phones
                  ".ts", ".vob", ".dv", ".wmv", ".asf", ".flv", ".3g2", ".ogv",  # recorders, DVDs, DV tapes, old web video
                  ".dav", ".h264", ".264", ".h265", ".265", ".hevc"}  # CCTV recorders' exports
# A camera's raw files: developed in the camera maker's or a photo editor's software, not here.
RAW_SUFFIXES = {".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2", ".raf",
                ".pef", ".srw", ".raw", ".3fr", ".iiq", ".x3f", ".erf", ".mef", ".mos", ".kdc", ".dcr"}


# Files that only go with photos and videos and are never published themselves: metadata
# sidecars (a photo editor's, an iPhone's edits, a Google Photos export's), a camera's
# thumbnails and low-resolution copies of its clips, a camcorder card's index files, and the
# system's own. A camera card's folder holds many: they are passed over and counted, not
# refused one by one as files that could not be read.
COMPANION_SUFFIXES = {".xmp", ".aae", ".json", ".xml", ".thm", ".lrv", ".lrf", ".cpi", ".mpl", ".bdm", ".ctg",
                      ".pp3", ".dop", ".on1"}
COMPANION_NAMES = {"thumbs.db", "desktop.ini"}


def readable_name(name: str) -> str:
    """A name from the file system as text to show and store: bytes that are not UTF-8 (a file
    named on an old Windows machine or USB stick: "caf\\xe9.jpg") become U+FFFD. Python keeps
    them as lone surrogates, which SQLite and the page cannot take."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def companion(path: Path | str) -> bool:
    """Whether a file met in a folder or zip only goes with photos and videos (see above)."""
    path = Path(path)
    return path.suffix.lower() in COMPANION_SUFFIXES or path.name.lower() in COMPANION_NAMES


def not_regular(path: Path) -> str | None:
    """Why a path on this machine is refused whatever its name: a named pipe, device or socket
    (reading one waits for ever, or never ends)."""
    return "not a regular file (a device, pipe or socket)" if path.exists() and not path.is_file() else None


def is_video(path: Path | str) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def unreadable_kind(path: Path | str) -> str | None:
    """Why a file is refused by its name, whatever it holds: a camera's raw file (a DNG opens
    as a TIFF of its small preview), or a zip, said with what to do."""
    suffix = Path(path).suffix.lower()
    if suffix in RAW_SUFFIXES:
        return "a camera's raw file: develop it as JPEG first (raw files are not read)"
    if suffix == ".zip":  # the dashboard unpacks one uploaded or in a folder (`intake.unpack_zip`)
        return "a zip archive: unpack it first (the dashboard unpacks a zip uploaded or in a folder added there)"
    return None


def not_media(path: Path | str) -> str | None:
    """Why a file met in a folder or zip is refused by its name, if it is: `unreadable_kind`,
    or neither a photo nor a video by its extension."""
    if problem := unreadable_kind(path):
        return problem
    if Path(path).suffix.lower() not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
        return f"not an image or video file (extension {Path(path).suffix or 'none'})"
    return None
