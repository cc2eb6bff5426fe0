"""Nothing leaves the machine: no outbound connection from the engine or the running
dashboard, the server listens on loopback only, with XSRF protection on."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from core.cli import main as cli_main
from tests.conftest import ROOT, jpeg_bytes

STRACE = shutil.which("strace")


def outbound(strace_log: str) -> list[str]:
    """The connect() and sendto()/sendmsg() calls in an strace log that leave the machine: any
    IPv4 or IPv6 peer other than loopback. Local sockets (AF_UNIX, netlink) are not out."""
    found = []
    for line in strace_log.splitlines():
        if not re.search(r"\b(connect|sendto|sendmsg)\(", line):
            continue
        match = re.search(r'inet_addr\("([^"]+)"\)', line) or re.search(r'inet_pton\(AF_INET6, "([^"]+)"', line)
        if match and not ipaddress.ip_address(match.group(1)).is_loopback:
            mapped = ipaddress.ip_address(match.group(1))
            if not (mapped.version == 6 and mapped.ipv4_mapped and mapped.ipv4_mapped.is_loopback):
                found.append(line.strip())
    return found


def test_outbound_parser_flags_only_non_loopback():
    log = "\n".join([
        '12 connect(5, {sa_family=AF_INET, sin_port=htons(8501), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
        '12 connect(6, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), '
        'inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 0',
        '12 connect(7, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT',
        '12 connect(8, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("203.0.113.9")}, 16) = -1',
        '12 connect(9, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), '
        'inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), sin6_scope_id=0}, 28) = -1',
    ])
    assert [line.split("(")[1].split(",")[0] for line in outbound(log)] == ["8", "9"]


@pytest.fixture
def guarded_sockets(monkeypatch):
    """Refuse, and record, every attempt to reach a non-loopback address from this process."""
    attempts = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None:
            try:
                local = ipaddress.ip_address(host).is_loopback
            except ValueError:
                local = host == "localhost"
            if not local:
                attempts.append(address)
                raise ConnectionRefusedError(f"test guard: outbound connection to {address}")

    monkeypatch.setattr(socket.socket, "connect", lambda self, a: (check(a), real_connect(self, a))[1])
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, a: (check(a), real_connect_ex(self, a))[1])
    return attempts


def test_onnx_runtime_keeps_no_device_id_and_no_event_cache(tmp_path, astronaut_rgb):
    """ONNX Runtime's PyPI build carries Microsoft's telemetry on Linux: importing it wrote a
    device id and an event cache to ~/.cache/Microsoft/DeveloperTools/.onnxruntime, and a process
    running about 10 s looked up mobile.events.data.microsoft.com to send them (seen with strace:
    the dashboard's server test below now runs that long). The engine turns it off before ONNX
    Runtime starts, whatever the environment says."""
    home = tmp_path / "home"
    home.mkdir()
    photo = tmp_path / "portrait.jpg"
    photo.write_bytes(jpeg_bytes(astronaut_rgb))
    env = {k: v for k, v in os.environ.items() if k != "XDG_CACHE_HOME"} | {
        "HOME": str(home), "ORT_DISABLE_TELEMETRY": "0"}  # this process's own imports set it: not inherited
    result = subprocess.run([sys.executable, "-m", "core", "detect", str(photo)], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and json.loads(result.stdout)[0]["faces"], result.stderr
    assert [str(p.relative_to(home)) for p in home.rglob("*")] == []


def test_engine_makes_no_connection(guarded_sockets, tmp_path, astronaut_rgb):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "portrait.jpg").write_bytes(jpeg_bytes(astronaut_rgb))
    assert cli_main(["anonymize", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 0
    assert cli_main(["detect", str(tmp_path / "in")]) == 0
    assert guarded_sockets == []


def test_config_keeps_the_server_local():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["enableXsrfProtection"] is True
    assert config["browser"]["gatherUsageStats"] is False
    assert config["client"]["toolbarMode"] == "viewer"
    assert config["client"]["showErrorDetails"] == "type"


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as the kernel shows them) of sockets listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.mark.skipif(not STRACE, reason="needs strace to watch the server's system calls")
def test_dashboard_server_makes_no_outbound_connection(tmp_path, astronaut_rgb):
    from tests.browser import (StreamlitServer, add_uploads, chromium_page, export_zip, require_chromium, settle,
                               start_session, upload, wait_for)

    require_chromium()
    from playwright.sync_api import expect

    trace = tmp_path / "strace.log"
    photo = tmp_path / "portrait.jpg"
    photo.write_bytes(jpeg_bytes(astronaut_rgb))
    home = tmp_path / "home"
    home.mkdir()
    requested: list[str] = []
    server = StreamlitServer(tmp_path / "ws", tmp_path / "server.log", home=home,
                             prefix=(STRACE, "-f", "-qq", "-e", "trace=bind,connect,sendto,sendmsg",
                                     "-o", str(trace))).start()
    try:
        assert listening_addresses(server.port) == {"0100007F"}, "loopback (127.0.0.1) only"
        with chromium_page() as page:
            page.context.on("request", lambda request: requested.append(request.url))
            start_session(page, server.url, "Offline", "Officer")
            upload(page, [photo], "portrait.jpg")
            add_uploads(page)
            loaded = time.monotonic()  # the models load now
            expect(page.get_by_text("1 photo ready for review")).to_be_visible(timeout=120_000)
            page.get_by_role("link", name="Overview").click()
            settle(page)
            page.get_by_role("link", name="Review one image").click()
            page.get_by_role("button", name="Approve").click()
            settle(page)
            page.get_by_text("Zoom: inspect, select and draw at full resolution").click()  # its chart library
            expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)
            assert export_zip(page)[:2] == b"PK"
        wait_for(lambda: trace.exists() and trace.stat().st_size > 0)
        # ONNX Runtime's telemetry sent its events about 10 s after the models loaded: wait past it.
        time.sleep(max(0.0, loaded + 25 - time.monotonic()))
    finally:
        server.stop()
    log = trace.read_text()
    assert re.search(r'bind\(\d+, \{sa_family=AF_INET, sin_port=htons\(%d\)' % server.port, log), \
        "strace watched the server's sockets"
    assert outbound(log) == []
    assert not (home / ".cache" / "Microsoft").exists(), "no device id, no event cache"
    # The reviewer's browser asked nothing of any other address either (the tab's icon came from
    # fonts.gstatic.com on every page: Google saw each use of the dashboard).
    assert requested and [url for url in requested if not url.startswith((server.base, "data:", "blob:"))] == []
