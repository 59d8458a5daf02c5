"""Check in a real browser that the built site's math is typeset: headless Chromium, started once.

For every page that loads MathJax (the notebook pages, and Markdown pages with math), the page is
served from a local HTTP server on 127.0.0.1, opened in headless Chromium (the system's package,
driven over the DevTools protocol on a pipe, so nothing but the standard library is needed), and,
once MathJax is idle, read back: how many formulas were typeset, how many are TeX errors, and
whether any raw TeX delimiter (``$...$``, ``$$``, ``\\(``, ``\\[``) is left in the visible text
outside code. A page fails when it typesets nothing, shows an error, or keeps a raw delimiter.

Usage: ``python tools/check_site_math.py SITE_DIR [--screenshots DIR] [--browser PATH] [--timeout S]``.
Prints one line per page and exits 1 if one fails, 2 if the site or the browser is missing.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PAGE_TIMEOUT_S = 60.0

# Runs in the page: is MathJax done, and what does the page show?
PROBE = r"""
(() => {
  document.querySelectorAll("details").forEach((d) => { d.open = true; });  // solutions are read too
  const mj = window.MathJax;
  const idle = !!(mj && mj.isReady && mj.Hub && mj.Hub.queue && mj.Hub.queue.pending === 0 && !mj.Hub.queue.running);
  const skip = "PRE, CODE, SCRIPT, STYLE, TEXTAREA, .MathJax, .MathJax_Display, .MathJax_Preview, .MathJax_SVG, "
    + ".MathJax_CHTML, .MJX_Assistive_MathML";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const parts = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest(skip) || !el.checkVisibility()) continue;  // code, math, and hidden copies of code
    parts.push(n.nodeValue);
  }
  const text = parts.join(" ");
  const raw = [];
  for (const re of [/\$\$/g, /\\\(/g, /\\\[/g, /\$[^$\s][^$]*?\$/g]) {
    for (const m of text.matchAll(re)) raw.push(text.slice(Math.max(0, m.index - 30), m.index + 40));
  }
  return JSON.stringify({
    ready: document.readyState === "complete" && idle,
    typeset: document.querySelectorAll(".MathJax, .MathJax_SVG, .MathJax_CHTML").length,
    sources: document.querySelectorAll('script[type^="math/tex"]').length,
    errors: document.querySelectorAll(".MathJax_Error, .noError, .merror, .mjx-merror").length
      + (document.body.innerText.match(/Math Processing Error/g) || []).length,
    raw: raw.slice(0, 5),
  });
})()
"""


@dataclass(frozen=True)
class PageMath:
    """What one page shows once MathJax is idle."""

    page: str
    typeset: int  # formulas rendered
    errors: int  # formulas MathJax could not parse
    raw: tuple[str, ...]  # text around raw TeX delimiters left in the visible text
    ready: bool  # MathJax went idle before the timeout

    def problems(self) -> list[str]:
        out = []
        if not self.ready:
            out.append("MathJax did not finish (not loaded, or still busy at the timeout)")
        if self.typeset == 0:
            out.append("no formula was typeset")
        if self.errors:
            out.append(f"{self.errors} formulas are TeX errors")
        out += [f"raw TeX left in the text: ...{r}..." for r in self.raw]
        return out


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4 of the browser)."""

    def __init__(self, executable: str, profile: str):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire():  # in the child: the protocol's two pipes at fds 3 (commands) and 4 (replies)
            hi_r, hi_w = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        args = [
            executable,
            "--headless=new",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
            "--disable-gpu",
            "--no-first-run",
            "--window-size=1280,900",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=wire, pass_fds=(3, 4)
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable", session=True)

    def send(self, method: str, session: bool = False, **params):
        """Send one command and return its result (events that arrive meanwhile are dropped)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _read(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("the browser closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_browser)
        os.close(self._from_browser)


def find_browser(explicit: str | None = None) -> str | None:
    if explicit:
        return explicit if shutil.which(explicit) or Path(explicit).is_file() else None
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def math_pages(site: Path) -> list[Path]:
    """The pages that load MathJax (tools/docs_hooks.py adds it where a page has math)."""
    return sorted(p for p in site.rglob("*.html") if "MathJax.js" in p.read_text(encoding="utf-8", errors="replace"))


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """The site on an ephemeral port of 127.0.0.1, in a daemon thread; returns the server and its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # no access log on stderr
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def check_pages(
    site: Path, pages: list[Path], browser: str, timeout: float = PAGE_TIMEOUT_S, screenshots: Path | None = None
) -> list[PageMath]:
    """Open each page in one headless Chromium and read back what its math looks like."""
    server, base = serve(site)
    out = []
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        chrome = Browser(browser, profile)
        try:
            for page in pages:
                rel = page.relative_to(site).as_posix()
                chrome.send("Page.navigate", session=True, url=base + rel)
                deadline, state = time.monotonic() + timeout, {}
                while time.monotonic() < deadline:
                    time.sleep(0.25)
                    state = json.loads(chrome.evaluate(PROBE) or "{}")
                    if state.get("ready"):
                        break
                if screenshots is not None:
                    shot = chrome.send("Page.captureScreenshot", session=True, format="png")["data"]
                    (screenshots / (rel.replace("/", "_") + ".png")).write_bytes(base64.b64decode(shot))
                out.append(
                    PageMath(
                        rel,
                        int(state.get("typeset", 0)),
                        int(state.get("errors", 0)),
                        tuple(state.get("raw", ())),
                        bool(state.get("ready")),
                    )
                )
        finally:
            chrome.close()
            server.shutdown()
            server.server_close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("site", type=Path, help="the built site (mkdocs build --site-dir SITE)")
    ap.add_argument("--browser", help=f"the Chromium executable (default: the first of {', '.join(BROWSERS)} on PATH)")
    ap.add_argument("--timeout", type=float, default=PAGE_TIMEOUT_S, help="seconds to wait for MathJax per page")
    ap.add_argument("--screenshots", type=Path, help="also save a screenshot of each page's top into this folder")
    args = ap.parse_args(argv)
    if not (args.site / "index.html").is_file():
        print(f"{args.site} is not a built site (no index.html): run mkdocs build --site-dir {args.site} first")
        return 2
    browser = find_browser(args.browser)
    if browser is None:
        print(f"no Chromium found ({args.browser or ', '.join(BROWSERS)}): apt-get install -y chromium")
        return 2
    pages = math_pages(args.site)
    if not pages:
        print(f"no page of {args.site} loads MathJax: the site has no math, or tools/docs_hooks.py did not run")
        return 1
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    results = check_pages(args.site, pages, browser, args.timeout, args.screenshots)
    failed = 0
    for r in results:
        problems = r.problems()
        failed += bool(problems)
        print(f"{'FAILED' if problems else 'ok    '} {r.page}: {r.typeset} formulas typeset, {r.errors} errors")
        for p in problems:
            print(f"         {p}")
    print(f"{len(results) - failed} of {len(results)} pages with math render it")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
