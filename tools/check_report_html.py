#!/usr/bin/env python3
"""Check that a report's index.html renders with every image loaded.

Opens the page in headless Chromium (Debian package ``chromium``), takes a
screenshot, and checks that every ``<img>`` has a non-zero natural width and
height, i.e. that the browser found and decoded it. Standard library only.

How: the report folder is copied to a temporary folder and a small script is
added to the copy of the page; after loading, the script writes each image's
``naturalWidth``/``naturalHeight`` into the DOM, which ``chromium --dump-dom``
prints. The screenshot is taken of the original page.

Usage::

    python tools/check_report_html.py REPORT_DIR_OR_INDEX_HTML [--screenshot PNG]
        [--min-images N] [--expect TEXT ...] [--chromium PATH]

For an ai4cellfate report::

    python tools/check_report_html.py demo/ --min-images 5 \
        --expect "What was predicted" --expect "How good it is" \
        --expect "What each latent feature means"

Exit status: 0 when the page has at least ``--min-images`` images, all of
them loaded and every ``--expect`` text is on the rendered page, 1 when not
(each failure is listed), 2 on bad usage or when no Chromium can be run.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

MARKER = "__ai4cellfate_image_check__"
PROBE = f"""
<script>
window.addEventListener("load", function () {{
  var out = [];
  for (var i = 0; i < document.images.length; i++) {{
    var img = document.images[i];
    out.push({{src: img.getAttribute("src"), complete: img.complete,
               width: img.naturalWidth, height: img.naturalHeight}});
  }}
  var pre = document.createElement("pre");
  pre.id = "{MARKER}";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}});
</script>
"""
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable",
              "chrome", "/usr/bin/chromium", "/usr/lib/chromium/chromium")


def find_chromium(given=None):
    """Path of a Chromium executable, or None."""
    for name in ([given] if given else []) + [os.environ.get("CHROMIUM")] + list(CANDIDATES):
        if not name:
            continue
        path = shutil.which(name) or (name if os.path.isfile(name) and os.access(name, os.X_OK)
                                      else None)
        if path:
            return path
    return None


def _chromium(exe, args, profile, timeout):
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--no-default-browser-check", "--disable-extensions",
           "--hide-scrollbars", "--mute-audio", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def image_sizes(exe, page, timeout=120):
    """Natural sizes of every image of ``page`` as rendered by Chromium.

    See :func:`render`, which also returns the rendered page's text.
    """
    return render(exe, page, timeout)[0]


def render(exe, page, timeout=120):
    """Render ``page`` in Chromium: the natural size of every image, and the page text.

    Parameters
    ----------
    exe : str
        Chromium executable.
    page : pathlib.Path
        An HTML file; its folder is copied so relative image paths resolve.
    timeout : float
        Seconds to wait for Chromium.

    Returns
    -------
    images : list of dict
        ``src``, ``complete``, ``width``, ``height`` per ``<img>``, in order.
    text : str
        The rendered DOM without tags (entities decoded, blanks collapsed).
    """
    with tempfile.TemporaryDirectory(prefix="check-report-") as tmp:
        copy = Path(tmp) / "page"
        shutil.copytree(page.parent, copy, symlinks=False)
        probe_page = copy / f".{page.stem}-probe.html"
        text = page.read_text(encoding="utf-8", errors="replace")
        if re.search(r"</body\s*>", text, flags=re.I):
            text = re.sub(r"</body\s*>", lambda m: PROBE + m.group(0), text, count=1,
                          flags=re.I)
        else:
            text += PROBE
        probe_page.write_text(text, encoding="utf-8")
        res = _chromium(exe, ["--virtual-time-budget=10000", "--dump-dom",
                              probe_page.as_uri()], Path(tmp) / "profile", timeout)
    m = re.search(rf'<pre id="{MARKER}">(.*?)</pre>', res.stdout, flags=re.S)
    if not m:
        tail = (res.stderr or "").strip().splitlines()[-5:]
        raise RuntimeError(
            f"Chromium did not report the images (exit {res.returncode}); "
            + " | ".join(tail)
        )
    dom = res.stdout[:m.start()] + res.stdout[m.end():]
    dom = re.sub(r"<(script|style)\b.*?</\1\s*>", " ", dom, flags=re.S | re.I)
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())
    return json.loads(html.unescape(m.group(1))), text


def png_size(path):
    """(width, height) of a PNG file, or None when it is not one."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", head[16:24])


def screenshot(exe, page, out, *, width=1280, height=4800, timeout=120):
    """Screenshot of ``page`` into ``out`` (PNG); returns its (width, height) or None."""
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="check-report-") as tmp:
        _chromium(exe, ["--virtual-time-budget=10000", f"--window-size={width},{height}",
                        f"--screenshot={out}", page.as_uri()], Path(tmp) / "profile",
                  timeout)
    return png_size(out)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Check that a report's index.html renders in headless Chromium with "
        "every image loaded (non-zero natural size), and take a screenshot.")
    parser.add_argument("report", help="report folder (holding index.html) or an HTML file")
    parser.add_argument("--screenshot", metavar="PNG",
                        help="where to write the screenshot (default: "
                        "REPORT-screenshot.png beside the report folder)")
    parser.add_argument("--min-images", type=int, default=1, metavar="N",
                        help="fail when the page has fewer images (default: 1)")
    parser.add_argument("--expect", action="append", default=[], metavar="TEXT",
                        help="fail unless the rendered page contains TEXT (repeatable), "
                        "e.g. --expect 'What was predicted'")
    parser.add_argument("--chromium", metavar="PATH",
                        help="Chromium executable (default: $CHROMIUM, then chromium, "
                        "chromium-browser, google-chrome on PATH)")
    parser.add_argument("--timeout", type=float, default=120, metavar="S",
                        help="seconds to wait for Chromium per run (default: 120)")
    args = parser.parse_args(argv)

    page = Path(args.report)
    if page.is_dir():
        page = page / "index.html"
    if not page.is_file():
        print(f"check_report_html: error: {page}: no such file", file=sys.stderr)
        return 2
    page = page.absolute()
    exe = find_chromium(args.chromium)
    if exe is None:
        print("check_report_html: error: Chromium not found; install it (Debian: "
              "apt-get install -y chromium) or pass --chromium PATH", file=sys.stderr)
        return 2
    shot = Path(args.screenshot) if args.screenshot else (
        page.parent.parent / f"{page.parent.name}-screenshot.png")

    try:
        images, text = render(exe, page, timeout=args.timeout)
        size = screenshot(exe, page, shot, timeout=args.timeout)
    except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError) as exc:
        print(f"check_report_html: error: {exc}", file=sys.stderr)
        return 1

    failures = []
    for img in images:
        ok = img.get("width", 0) > 0 and img.get("height", 0) > 0
        print(f"{'ok  ' if ok else 'FAIL'} {img.get('src')}: "
              f"{img.get('width')} x {img.get('height')} px")
        if not ok:
            failures.append(f"image {img.get('src')!r} did not load")
    for expected in args.expect:
        found = " ".join(expected.split()) in text
        print(f"{'ok  ' if found else 'FAIL'} text {expected!r}")
        if not found:
            failures.append(f"the rendered page does not contain {expected!r}")
    if len(images) < args.min_images:
        failures.append(f"the page has {len(images)} images, expected at least "
                        f"{args.min_images}")
    if not size or min(size) <= 0:
        failures.append(f"no screenshot was written to {shot}")
    else:
        print(f"screenshot {shot}: {size[0]} x {size[1]} px")
    for f in failures:
        print(f"check_report_html: {f}", file=sys.stderr)
    if not failures:
        print(f"{page}: all {len(images)} images loaded")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
