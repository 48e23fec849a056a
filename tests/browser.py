"""Headless Chromium for the tests that look at what a user sees: Debian's /usr/bin/chromium driven by
Playwright (no browser download). Without Chromium the tests skip here, and fail under CI (CI=true), whose
.ci/run installs it."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

# as the machine's probe starts it: no background networking on a machine with no internet
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    path = os.environ.get("INSPECTCNN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        message = "headless Chromium is needed for the browser tests: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@contextlib.contextmanager
def browser_page(width: int = 1280, height: int = 900) -> Iterator:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def mlflow_ui(root: Path, store: str, params: Path | None = None,
              timeout_s: float = 120.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """`make ui`'s command (python -m inspectcnn.ui) of the project copy ``root`` on ``store``, on a free
    loopback port: (the URL it printed, the process). Stopped, with its process group, on the way out."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    process = subprocess.Popen([sys.executable, "-m", "inspectcnn.ui", "--store", store, "--port", str(port),
                                "--params", str(params or root / "params.yaml")], cwd=root, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        first = process.stdout.readline()
        url = next(word for word in first.split() if word.startswith("http://"))
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"mlflow ui did not come up (exit {process.poll()}); it printed {first!r}")
                time.sleep(0.5)
        yield url, process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        process.wait(timeout=30)


# every element must stay inside the page's column; elements inside a scroll container (the wide tables,
# display: block; overflow-x: auto) scroll there and are not counted
LAYOUT_CHECK = """() => {
  const body = document.body.getBoundingClientRect();
  const scrolls = el => { for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const s = getComputedStyle(p); if (s.overflowX === 'auto' || s.overflowX === 'scroll') return true; }
    return false; };
  const overflowing = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (scrolls(el)) continue;
    if (r.right > body.right + 1 || r.left < body.left - 1)
      overflowing.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}: ${Math.round(r.left)}..${Math.round(r.right)} outside ${Math.round(body.left)}..${Math.round(body.right)} (${(el.textContent || el.alt || '').trim().slice(0, 60)})`);
  }
  const images = [...document.images].map(img => ({alt: img.alt, natural: img.naturalWidth * img.naturalHeight,
    shown: img.getBoundingClientRect().width * img.getBoundingClientRect().height}));
  return {overflowing, images};
}"""
