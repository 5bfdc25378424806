"""`alpr-provision aim`: set zoom and focus at the gate.

Takes a frame from the unit's camera, finds the plates, and writes an annotated JPEG: each plate's box,
its width in pixels against the minimum the reader needs (the width of the reader's input, 128 px: a
narrower plate is stretched and its characters blur), a sharpness figure for focusing, and the lanes'
regions of interest. It then serves a small page on the local network that shows the newest frame and
refreshes itself, so the technician can turn the lens and watch from a phone or laptop:

    alpr-provision aim                 # http://<unit>:8080/  (Ctrl-C to stop)
    alpr-provision aim --once --json   # one frame, the figures, the JPEG path; exit 0 if a plate is wide enough

Plate text is not shown (reads are sensitive data) unless `--show-plates` is given. Stop the service
first: the camera can be held by one process only.
"""
from __future__ import annotations

import argparse
import html
import io
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from provisioning.common import Refused, Usage, emit, layout
from unit.config import ConfigError, UnitConfig, load
from unit.layout import write_file


def sharpness(crop: np.ndarray) -> float:
    """Variance of a Laplacian on the grey crop scaled to 128 px wide: higher is sharper. Compare turns of
    the focus ring against each other, not against a fixed number."""
    g = np.asarray(Image.fromarray(crop).convert("L").resize((128, max(8, round(128 * crop.shape[0] / max(1, crop.shape[1]))))),
                   dtype=np.float32)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(lap.var())


class Aimer:
    def __init__(self, cfg: UnitConfig, min_width: int | None = None, show_plates: bool = False):
        from unit.recognise import from_config
        self.cfg = cfg
        self.rec = from_config(cfg.recognition)
        self.min_width = int(min_width or self.rec.reader.input_shape[2])
        self.show_plates = show_plates
        self._src = None

    # -- frames ----------------------------------------------------------------------------------------------
    def grab(self, timeout: float = 10.0) -> np.ndarray:
        from unit.sources import open_source
        from unit.sources.frames import BadFrame, Frame, SourceEnded
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._src is None:
                src = open_source(self.cfg)
                src.open()
                self._src = src
            try:
                item = self._src.read(timeout=0.5)
            except SourceEnded:                 # a replay folder came to its end: start it again
                self.close()
                continue
            except BadFrame:
                continue
            if isinstance(item, Frame):
                return item.image
        raise Refused(f"the camera gave no frame in {timeout:.0f} s (is the service holding it? "
                      "systemctl stop alpr-unit; `alpr-provision selftest --only camera` says more)")

    def close(self) -> None:
        if self._src is not None:
            try:
                self._src.close()
            finally:
                self._src = None

    # -- analysis --------------------------------------------------------------------------------------------
    def analyse(self, image: np.ndarray) -> dict[str, Any]:
        H, W = image.shape[:2]
        plates = []
        for (x0, y0, x1, y1), score in self.rec.detect(image):
            x0, y0, x1, y1 = int(max(0, x0)), int(max(0, y0)), int(min(W, x1)), int(min(H, y1))
            if x1 - x0 < 4 or y1 - y0 < 2:
                continue
            crop = image[y0:y1, x0:x1]
            text, conf, _ = self.rec.read_crop(crop)
            width = x1 - x0
            lane = next((ln.name for ln in self.cfg.lanes
                         if ln.roi[0] * W <= (x0 + x1) / 2 <= ln.roi[2] * W and ln.roi[1] * H <= (y0 + y1) / 2 <= ln.roi[3] * H), None)
            plates.append({"box": [x0, y0, x1, y1], "width_px": width, "min_width_px": self.min_width,
                           "wide_enough": width >= self.min_width, "detector_score": round(float(score), 3),
                           "read_confidence": round(conf, 3), "chars": len(text), "sharpness": round(sharpness(crop), 1),
                           "lane": lane, **({"plate": text} if self.show_plates else {})})
        plates.sort(key=lambda p: -p["width_px"])
        return {"frame": [W, H], "taken_at": time.strftime("%Y-%m-%d %H:%M:%S"), "min_width_px": self.min_width,
                "plates": plates, "ok": any(p["wide_enough"] for p in plates)}

    def annotate(self, image: np.ndarray, result: dict[str, Any]) -> bytes:
        im = Image.fromarray(image)
        d = ImageDraw.Draw(im)
        W, H = im.size
        size = max(14, W // 60)
        try:
            font = ImageFont.load_default(size=size)
        except TypeError:                        # Pillow < 10.1
            font = ImageFont.load_default()
        for ln in self.cfg.lanes:
            x0, y0, x1, y1 = ln.roi
            d.rectangle((x0 * W, y0 * H, x1 * W - 1, y1 * H - 1), outline=(255, 200, 0), width=max(1, W // 640))
            d.text((x0 * W + 6, y0 * H + 4), f"lane {ln.name} ({ln.direction})", fill=(255, 200, 0), font=font)
        for p in result["plates"]:
            x0, y0, x1, y1 = p["box"]
            colour = (40, 220, 60) if p["wide_enough"] else (255, 50, 50)
            d.rectangle((x0, y0, x1, y1), outline=colour, width=max(2, W // 400))
            verdict = "OK" if p["wide_enough"] else "TOO SMALL: zoom in"
            label = f"{p['width_px']} px (min {p['min_width_px']}) {verdict}  sharp {p['sharpness']:.0f}"
            if self.show_plates and p.get("plate"):
                label = f"{p['plate']}  " + label
            ty = max(0, y0 - size - 6)
            d.rectangle((x0, ty, x0 + d.textlength(label, font=font) + 8, ty + size + 4), fill=(0, 0, 0))
            d.text((x0 + 4, ty + 2), label, fill=colour, font=font)
        if not result["plates"]:
            d.text((10, 10), "no plate found: park a vehicle (or hold a plate) in the lane", fill=(255, 50, 50), font=font)
        out = io.BytesIO()
        im.save(out, "JPEG", quality=85)
        return out.getvalue()

    def shot(self, out_dir: Path) -> dict[str, Any]:
        image = self.grab()
        result = self.analyse(image)
        jpeg = self.annotate(image, result)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_file(out_dir / "aim.jpg", jpeg, 0o644)
        result["jpeg"] = str(out_dir / "aim.jpg")
        write_file(out_dir / "aim.json", json.dumps(result, indent=1), 0o644)
        return result


# -- the page ----------------------------------------------------------------------------------------------
def page(result: dict[str, Any] | None, refresh_s: float) -> str:
    rows = ""
    if result:
        for p in result["plates"]:
            rows += (f"<tr class={'ok' if p['wide_enough'] else 'bad'}><td>{html.escape(str(p['lane'] or '-'))}</td>"
                     f"<td>{p['width_px']} px</td><td>{p['min_width_px']} px</td>"
                     f"<td>{'OK' if p['wide_enough'] else 'too small: zoom in'}</td><td>{p['sharpness']:.0f}</td>"
                     f"<td>{p['read_confidence']:.2f}</td>"
                     + (f"<td>{html.escape(p.get('plate', ''))}</td>" if "plate" in p else "") + "</tr>")
        if not result["plates"]:
            rows = "<tr><td colspan=6>no plate in view: park a vehicle (or hold a plate) in the lane</td></tr>"
    taken = html.escape(result["taken_at"]) if result else "waiting for the first frame"
    return f"""<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="{refresh_s:g}">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>ALPR aim</title>
<style>body{{font-family:sans-serif;margin:8px;background:#111;color:#eee}}img{{max-width:100%}}
table{{border-collapse:collapse}}td,th{{padding:2px 8px;border-bottom:1px solid #444}}.ok{{color:#5e5}}.bad{{color:#f66}}</style>
</head><body><h3>Aim: frame of {taken} (refreshes every {refresh_s:g} s)</h3>
<img src="/aim.jpg?t={time.time():.0f}" alt="annotated frame">
<table><tr><th>lane</th><th>plate width</th><th>reader needs</th><th>verdict</th><th>sharpness (higher is sharper)</th>
<th>read confidence</th></tr>{rows}</table>
<p>Zoom until every plate is at least the minimum wide; turn focus for the highest sharpness.</p></body></html>"""


class AimServer:
    """Captures every `interval` s in a thread and serves the newest frame and figures over HTTP."""

    def __init__(self, aimer: Aimer, out_dir: Path, bind: str = "0.0.0.0", port: int = 8080, interval: float = 2.0):
        self.aimer, self.out_dir, self.interval = aimer, out_dir, interval
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with outer._lock:
                    result, error = outer.result, outer.error
                if path == "/":
                    body = page(result, outer.interval)
                    if error:
                        body = body.replace("<h3>", f"<p class=bad>camera: {html.escape(error)}</p><h3>", 1)
                    self._send(200, "text/html; charset=utf-8", body.encode())
                elif path == "/aim.jpg" and (outer.out_dir / "aim.jpg").exists():
                    self._send(200, "image/jpeg", (outer.out_dir / "aim.jpg").read_bytes())
                elif path == "/aim.json":
                    self._send(200, "application/json", json.dumps(result or {"error": error}).encode())
                else:
                    self._send(404, "text/plain", b"not found\n")

        self.httpd = ThreadingHTTPServer((bind, port), Handler)
        self.port = self.httpd.server_address[1]

    def capture_once(self) -> None:
        try:
            res = self.aimer.shot(self.out_dir)
            with self._lock:
                self.result, self.error = res, None
        except Exception as exc:
            with self._lock:
                self.error = f"{type(exc).__name__}: {exc}"

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.capture_once()
            self._stop.wait(self.interval)

    def start(self) -> None:
        threading.Thread(target=self._loop, name="aim-capture", daemon=True).start()
        threading.Thread(target=self.httpd.serve_forever, name="aim-http", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.aimer.close()


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("aim", help="annotated frame with plate widths vs the reader's minimum, on a refreshing local page",
                       description=__doc__.split("\n\n")[0], epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--once", action="store_true", help="one frame: write the JPEG, print the figures, exit")
    p.add_argument("--out", type=Path, help="folder for aim.jpg and aim.json (default ROOT/var/lib/alpr-unit/aim)")
    p.add_argument("--bind", default="0.0.0.0", help="address to serve on (default all)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--interval", type=float, default=2.0, help="seconds between frames (default 2)")
    p.add_argument("--min-width", type=int, help="minimum plate width in px (default: the reader's input width)")
    p.add_argument("--show-plates", action="store_true", help="also show what was read (sensitive: aiming only)")
    p.add_argument("--config", type=Path, help="the unit config (default ROOT/etc/alpr-unit/config.toml)")
    p.add_argument("--json", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    lay = layout(args)
    try:
        cfg = load(args.config or lay.config)
    except ConfigError as exc:
        raise Usage(f"config: {exc} (write one with alpr-provision site)") from None
    out_dir = args.out or (lay.state / "aim")
    aimer = Aimer(cfg, args.min_width, args.show_plates)
    if args.once:
        try:
            res = aimer.shot(out_dir)
        except Refused:
            raise
        except Exception as exc:
            raise Refused(f"camera: {type(exc).__name__}: {exc} (`alpr-provision selftest --only camera` says what to do)") from None
        finally:
            aimer.close()
        lines = [f"{res['jpeg']}: {len(res['plates'])} plate(s); the reader needs {res['min_width_px']} px"]
        for p in res["plates"]:
            lines.append(f"  {p['width_px']:>4} px  {'OK' if p['wide_enough'] else 'TOO SMALL: zoom in'}  "
                         f"sharpness {p['sharpness']:.0f}  lane {p['lane'] or '-'}" + (f"  {p['plate']}" if "plate" in p else ""))
        if not res["plates"]:
            lines.append("  no plate found: park a vehicle (or hold a plate) in the lane and try again")
        emit(args, res, "\n".join(lines))
        return 0 if res["ok"] else 1
    server = AimServer(aimer, out_dir, args.bind, args.port, args.interval)
    server.start()
    print(f"serving the aiming page on http://{args.bind if args.bind != '0.0.0.0' else '<this unit>'}:{server.port}/ "
          f"(new frame every {args.interval:g} s); Ctrl-C to stop", file=sys.stderr)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
