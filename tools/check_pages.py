"""Open every page of the built documentation in headless Chromium and fail on
a page that logs a console error, throws, fails to load a resource, or shows
an image that did not render.  Gallery example pages must show at least one
figure.

    python tools/check_pages.py docs/_build/html [--chromium PATH]

Chromium (Debian's ``chromium`` package) is driven over the DevTools protocol
through a pipe (``--remote-debugging-pipe``: JSON messages separated by NUL
bytes on file descriptors 3 and 4), so nothing beyond the standard library is
needed.  The site is served over HTTP on 127.0.0.1, as a user's browser would
get it (the theme's search and some scripts do not work from file:// URLs).
A request that leaves 127.0.0.1 is a failure: the built site must not
depend on the network.
"""
import argparse
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
from pathlib import Path

# waits for every <img> (lazy ones made eager) and reports each one's state
_IMAGES_JS = """
(async () => {
  const imgs = [...document.images];
  for (const i of imgs) { if (i.loading === 'lazy') i.loading = 'eager'; }
  await Promise.all(imgs.map(i => i.complete ? null :
      new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r);
                         setTimeout(r, 10000); })));
  return imgs.map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0,
      figure: i.classList.contains('sphx-glr-single-img') ||
              i.classList.contains('sphx-glr-multi-img')}));
})()
"""


class Browser:
    """A headless Chromium driven over --remote-debugging-pipe."""

    def __init__(self, executable):
        self._to_r, self._to_w = os.pipe()      # we write commands -> its fd 3
        self._from_r, self._from_w = os.pipe()  # it writes replies  -> its fd 4
        self._profile = tempfile.mkdtemp(prefix="crnn-pages-")
        args = [executable, "--headless=new", "--remote-debugging-pipe",
                "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--mute-audio", "--window-size=1280,900",
                f"--user-data-dir={self._profile}", "about:blank"]

        def child_fds(to_r=self._to_r, from_w=self._from_w):
            # via fresh descriptors, so that neither dup2 clobbers the other's source
            r, w = os.dup(to_r), os.dup(from_w)
            os.dup2(r, 3)
            os.dup2(w, 4)

        # subprocess closes every descriptor not in pass_fds after preexec_fn
        self._proc = subprocess.Popen(
            args, pass_fds=(3, 4), preexec_fn=child_fds,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(self._to_r)
        os.close(self._from_w)
        self._wfile = os.fdopen(self._to_w, "wb", buffering=0)
        self._rfile = os.fdopen(self._from_r, "rb", buffering=0)
        self._buf = b""
        self._next_id = 0
        self.events = []

    def _read_message(self, deadline):
        while b"\0" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer")
            chunk = self._rfile.read(65536)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method, params=None, session=None, timeout=60):
        self._next_id += 1
        mid = self._next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._wfile.write(json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == mid:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method, session, timeout=60):
        deadline = time.monotonic() + timeout
        for i, ev in enumerate(self.events):
            if ev.get("method") == method and ev.get("sessionId") == session:
                return self.events.pop(i)
        while True:
            ev = self._read_message(deadline)
            if ev.get("method") == method and ev.get("sessionId") == session:
                return ev
            self.events.append(ev)

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        shutil.rmtree(self._profile, ignore_errors=True)


def _serve(root):
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _problems(events, session, origin):
    """The console errors, exceptions and failed loads among the events."""
    out = []
    for ev in events:
        if ev.get("sessionId") != session:
            continue
        m, p = ev.get("method"), ev.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", "")))
                            for a in p.get("args", []))
            out.append(f"console.{p['type']}: {text}")
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append("exception: " + d.get("exception", {}).get(
                "description", d.get("text", "")))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            out.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}")
        elif m == "Network.responseReceived":
            r = p.get("response", {})
            if r.get("status", 200) >= 400:
                out.append(f"HTTP {r['status']}: {r.get('url')}")
        elif m == "Network.requestWillBeSent":
            url = p.get("request", {}).get("url", "")
            if url.startswith(("http:", "https:")) and not url.startswith(origin):
                out.append(f"request leaves the site: {url}")
    return out


def check(site, executable, pattern="**/*.html"):
    site = Path(site)
    pages = sorted(p for p in site.glob(pattern)
                   if not p.relative_to(site).parts[0].startswith(("_", ".")))
    if not pages:
        raise SystemExit(f"no pages under {site}")
    server = _serve(site)
    origin = f"http://127.0.0.1:{server.server_address[1]}/"
    browser = Browser(executable)
    failures, n_images, n_figures = {}, 0, 0
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget",
                               {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        for page in pages:
            rel = page.relative_to(site).as_posix()
            browser.events.clear()
            browser.send("Page.navigate", {"url": origin + rel}, session=session)
            browser.wait_event("Page.loadEventFired", session)
            res = browser.send("Runtime.evaluate", {
                "expression": _IMAGES_JS, "awaitPromise": True, "returnByValue": True},
                session=session)
            images = res.get("result", {}).get("value", [])
            time.sleep(0.05)  # let late console messages arrive
            browser.send("Runtime.evaluate", {"expression": "1"}, session=session)
            bad = _problems(browser.events, session, origin)
            bad += [f"image not rendered: {i['src']}" for i in images if not i["ok"]]
            figures = [i for i in images if i["figure"] and i["ok"]]
            if rel.startswith("auto_examples/") and Path(rel).name.startswith("plot_") \
                    and not figures:
                bad.append("gallery example without a rendered figure")
            n_images += sum(i["ok"] for i in images)
            n_figures += len(figures)
            if bad:
                failures[rel] = bad
    finally:
        browser.close()
        server.shutdown()
    return len(pages), n_images, n_figures, failures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("site", help="the built HTML folder, e.g. docs/_build/html")
    ap.add_argument("--chromium", default=shutil.which("chromium") or
                    shutil.which("chromium-browser") or shutil.which("google-chrome"))
    ap.add_argument("--pattern", default="**/*.html")
    args = ap.parse_args(argv)
    if not args.chromium:
        raise SystemExit("no Chromium found: apt-get install chromium, or pass --chromium")
    n, n_img, n_fig, failures = check(args.site, args.chromium, args.pattern)
    for rel, bad in failures.items():
        print(f"FAIL {rel}")
        for b in bad:
            print(f"    {b}")
    print(f"{n} pages, {n_img} images rendered ({n_fig} gallery figures), "
          f"{len(failures)} pages with problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
