"""A real browser for the report tests: Debian's headless Chromium driven by playwright (its own browser download
cannot work here). ``make test`` installs chromium when it is missing and it runs as root; elsewhere the tests
that need it skip, saying why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio"]


def chromium_or_skip() -> str:
    """The Chromium binary, or skip the test with the reason."""
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
    path = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    if not path:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; `make test` does it as root)")
    return path


def _value(folder: Path, key: str):
    """``"results.json#paper.vocals.SDR.median"`` -> that number of ``folder/results.json``."""
    doc, _, where = key.partition("#")
    value = json.loads((folder / doc).read_text())
    for part in where.split("."):
        value = value[part]
    return value


def _open(browser, html: Path, requests: list, errors: list):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(html.resolve().as_uri(), wait_until="load")
    return page


MEDIA = """() => Promise.all([...document.querySelectorAll("audio")].map(a => new Promise(done => {
  const report = () => done({src: a.getAttribute("src"), duration: a.duration, error: a.error && a.error.code});
  if (a.readyState >= 1 || a.error) return report();
  // the page loads nothing before play (preload="none"): ask for the metadata as a play would
  a.addEventListener("loadedmetadata", report); a.addEventListener("error", report);
  a.preload = "metadata"; a.load();
})))"""
IMAGES = """() => [...document.images].map(i => ({complete: i.complete, width: i.naturalWidth}))
  .concat([...document.querySelectorAll("svg")].map(s => { const r = s.getBoundingClientRect();
    return {complete: true, width: Math.min(r.width, r.height)}; }))"""
COLUMN = """th => [...th.closest("table").tBodies[0].rows].map(r => r.cells[th.cellIndex].dataset.v)"""
NUMBERS = """() => [...document.querySelectorAll("[data-key]")].map(c => ({key: c.dataset.key, v: c.dataset.v,
  text: c.textContent}))"""


def check_page(html: Path, screenshot: Path, sort: str | None = None) -> dict:
    """Load ``html`` from disk in headless Chromium and assert: no request leaves its folder, no console error,
    every ``<audio>`` loads with a duration, every image renders, every number with a ``data-key`` equals its
    results file (exactly in ``data-v``, to two decimals in the text). Saves a full-page ``screenshot``; then
    clicks the column head ``sort`` (of the first sortable table having it) twice.
    Returns ``{"durations": {src: s}, "numbers": count, "images": count, "sorted": [[data-v after each click]]}``."""
    from playwright.sync_api import sync_playwright
    folder = html.resolve().parent
    requests, errors, clicks = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_or_skip(), args=ARGS)
        try:
            page = _open(browser, html, requests, errors)
            media = page.evaluate(MEDIA)
            images = page.evaluate(IMAGES)
            numbers = page.evaluate(NUMBERS)
            page.screenshot(path=str(screenshot), full_page=True)
            if sort:
                th = page.locator(f"table.sortable th:text-is('{sort}')").first
                for _ in range(2):
                    th.click()
                    clicks.append(th.evaluate(COLUMN))
        finally:
            browser.close()
    outside = [u for u in requests if not (u.startswith(folder.as_uri() + "/") or u.startswith("data:"))]
    assert outside == [], f"requests outside {folder}: {outside[:3]}"
    assert errors == [], f"console errors: {errors[:3]}"
    bad = [m for m in media if m["error"] or not m["duration"] or not m["duration"] > 0]
    assert bad == [], f"audio that did not load: {bad[:3]}"
    assert all(i["complete"] and i["width"] > 0 for i in images), images
    for n in numbers:
        value = _value(folder, n["key"])
        assert (n["v"] == "" and value is None) or float(n["v"]) == value, n
        assert n["text"] == ("-" if value is None else f"{value:.2f}"), n
    return {"durations": {m["src"]: m["duration"] for m in media}, "numbers": len(numbers), "images": len(images),
            "sorted": clicks}
