"""Exports are downloaded straight from disk, in chunks (a zip may be larger than memory), by a
route of the dashboard's server. It stands behind the access gate like every other address, and
gives a publication zip only while it is current (an audit package always: it is a record)."""

from __future__ import annotations

from functools import lru_cache

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse

from core.workspace import Workspace, default_root


@lru_cache(maxsize=4)
def _workspace(root: str) -> Workspace:
    return Workspace(root)


async def download(request: Request):
    """GET /download/{export_id}/{zip|audit}: a complete export's publication zip or audit package."""
    kind = request.path_params["kind"]
    try:
        row = _workspace(str(default_root())).exports.get(int(request.path_params["export_id"]))
    except (KeyError, ValueError):
        return PlainTextResponse("No such export.", status_code=404)
    name = row["file"] if kind == "zip" else row["audit_file"] if kind == "audit" else None
    if row["status"] != "complete" or not name:
        return PlainTextResponse("This export is not available.", status_code=404)
    if kind == "zip" and not row["current"]:
        # A tab still showing the link, or a link copied earlier: the zip no longer matches the
        # reviewers' decisions. Its audit package stays available: it records that export.
        return PlainTextResponse("This zip is out of date: a decision, face edit or setting changed after it was "
                                 "built. Build the zip again on the Export page.", status_code=409)
    path = _workspace(str(default_root())).files.export_path(name)
    if not path.exists():
        return PlainTextResponse("This export's file is gone (the session was purged?).", status_code=404)
    return FileResponse(path, media_type="application/zip", filename=name,
                        headers={"cache-control": "no-store"})
