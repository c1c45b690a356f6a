"""The official models archive (f90/Wave-U-Net's models.zip) rebuilt for tests, and a local HTTP server for it.

The archive holds one folder per model, named after the official configuration it was trained with, each with a
checkpoint as the official trainer's ``tf.compat.v1.train.Saver`` writes it (see official_checkpoint.py):
``baseline_stereo`` (M4; its real step is not published, so a name of the form the trainer writes,
``<experiment id>-<step>``), ``full_multi_instrument/full_multi_instrument-134067`` (M6) and
``full_44KHz/full_44KHz-236118`` (M5-HighSR), the names the official README and Predict.py give.
"""

from __future__ import annotations

import http.server
import re
import threading
import time
import zipfile
from pathlib import Path

from official_checkpoint import official_variables, write_official_checkpoint

# model name -> (official folder, checkpoint name without the step, step)
LAYOUT = {"M4": ("baseline_stereo", "812340", 90000),
          "M6": ("full_multi_instrument", "full_multi_instrument", 134067),
          "M5-HighSR": ("full_44KHz", "full_44KHz", 236118)}


def write_checkpoints(root: Path, names=tuple(LAYOUT), variants=None, seed=0) -> dict:
    """Full-size official checkpoints under ``root/<folder>/`` -> {name: checkpoint prefix}. ``variants``
    ({name: config}) builds a checkpoint of another architecture under a model's folder."""
    from waveunet_tf.config import variant_config
    prefixes = {}
    for i, name in enumerate(names):
        folder, stem, step = LAYOUT[name]
        cfg = (variants or {}).get(name) or variant_config(name)
        (root / folder).mkdir(parents=True, exist_ok=True)
        prefixes[name] = Path(write_official_checkpoint(official_variables(cfg, seed=seed + i),
                                                        root / folder / stem, global_step=step))
    return prefixes


def zip_folder(folder: Path, archive: Path, under: str = "") -> Path:
    """Zip every file below ``folder`` with paths relative to it, below ``under``/ in the archive. Deflated
    (the Adam slots are zeros and ones); level 1 keeps it quick."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, (Path(under) / p.relative_to(folder)).as_posix())
    return archive


class ArchiveServer:
    """Serves one file at ``/models.zip`` on 127.0.0.1 in a thread. ``ranges``: answer Range requests with 206
    (else ignore them, as some servers do); ``cut_after``: on each of the first ``cuts`` requests announce the
    full length but send only that many bytes, then close the connection; ``status``: answer every request with
    this HTTP error instead; ``pace``: seconds to wait after each MiB sent (a slow link); ``gate``: a
    ``threading.Event`` the body waits for (the test decides when the download goes on). ``requests`` records
    (Range header or None, status sent) per request."""

    def __init__(self, path: Path, ranges=True, cut_after=None, cuts=1, status=None, pace=0.0, gate=None):
        self.path, self.ranges, self.cut_after, self.cuts, self.status = Path(path), ranges, cut_after, cuts, status
        self.pace, self.gate = pace, gate
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server._answer(self)

            def log_message(self, *args):
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/models.zip"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def _answer(self, h):
        if self.status:
            self.requests.append((h.headers.get("Range"), self.status))
            h.send_error(self.status)
            return
        size = self.path.stat().st_size
        m = re.match(r"bytes=(\d+)-$", h.headers.get("Range") or "")
        start = int(m.group(1)) if (m and self.ranges) else 0
        code = 206 if (m and self.ranges) else 200
        self.requests.append((h.headers.get("Range"), code))
        h.send_response(code)
        h.send_header("Content-Length", str(size - start))
        if code == 206:
            h.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        h.end_headers()
        if self.gate is not None:
            self.gate.wait()
        send = size - start
        if self.cut_after is not None and len(self.requests) <= self.cuts:
            send = self.cut_after
        with open(self.path, "rb") as f:
            f.seek(start)
            while send > 0:
                chunk = f.read(min(send, 1 << 20))
                try:
                    h.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    break  # the client gave up (e.g. its disk is full): not the server's failure
                send -= len(chunk)
                time.sleep(self.pace)
        h.close_connection = True

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
