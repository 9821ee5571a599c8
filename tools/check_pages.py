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
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
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
        # every host name but the local server's fails at once: a request
        # that leaves the site is reported without waiting on the network
        args = [executable, "--headless=new", "--remote-debugging-pipe",
                "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--no-first-run",
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
        # (created before any thread of this process: preexec_fn is not safe
        # once threads run, so check() starts its server afterwards)
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                args, pass_fds=(3, 4), preexec_fn=child_fds,
                stdout=subprocess.DEVNULL, stderr=self._stderr)
        except BaseException:
            for fd in (self._to_r, self._to_w, self._from_r, self._from_w):
                os.close(fd)
            shutil.rmtree(self._profile, ignore_errors=True)
            raise
        os.close(self._to_r)
        os.close(self._from_w)
        self._wfile = os.fdopen(self._to_w, "wb", buffering=0)
        self._rfile = os.fdopen(self._from_r, "rb", buffering=0)
        self._buf = b""
        self._next_id = 0
        self.events = []

    def stderr_tail(self, n=2000):
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-n:]

    def _read_message(self, deadline):
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._rfile], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = self._rfile.read(65536)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe; its last words:\n"
                                   + self.stderr_tail())
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

    def settle(self, quiet=0.3, limit=3.0):
        """Collect events until none has come for ``quiet`` seconds (at most
        ``limit``): console messages logged by timers after the load."""
        end = time.monotonic() + limit
        while True:
            deadline = min(end, time.monotonic() + quiet)
            try:
                self.events.append(self._read_message(deadline))
            except TimeoutError:
                return
            if time.monotonic() >= end:
                return

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
        for f in (self._wfile, self._rfile):
            f.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()
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
        elif m == "Network.loadingFailed" and not p.get("canceled"):
            out.append(f"load failed: {p.get('errorText')} "
                       f"({p.get('type', '')} {p.get('requestId', '')})")
        elif m in ("Inspector.targetCrashed", "Target.targetCrashed"):
            out.append("the page crashed")
        elif m == "Network.requestWillBeSent":
            url = p.get("request", {}).get("url", "")
            if url.startswith(("http:", "https:")) and not url.startswith(origin):
                out.append(f"request leaves the site: {url}")
    return out


def _open_tab(browser):
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget",
                           {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network", "Inspector"):
        browser.send(f"{domain}.enable", session=session)
    return target, session


def _check_page(browser, session, url, rel, origin, timeout):
    """The problems of one page, and its images."""
    browser.events.clear()
    nav = browser.send("Page.navigate", {"url": url}, session=session, timeout=timeout)
    if nav.get("errorText"):
        return [f"navigation failed: {nav['errorText']}"], []
    browser.wait_event("Page.loadEventFired", session, timeout=timeout)
    res = browser.send("Runtime.evaluate", {
        "expression": _IMAGES_JS, "awaitPromise": True, "returnByValue": True},
        session=session, timeout=timeout)
    images = res.get("result", {}).get("value", [])
    browser.settle()
    bad = _problems(browser.events, session, origin)
    bad += [f"image not rendered: {i['src']}" for i in images if not i["ok"]]
    if rel.startswith("auto_examples/") and Path(rel).name.startswith("plot_") \
            and not any(i["figure"] and i["ok"] for i in images):
        bad.append("gallery example without a rendered figure")
    return bad, images


def check(site, executable, pattern="**/*.html", timeout=60):
    """Open every page; returns (pages, images rendered, gallery figures
    rendered, {page: [problems]}).  A page that does not load within
    ``timeout`` seconds is a failure, and the next page gets a fresh tab."""
    site = Path(site)
    pages = sorted(p for p in site.glob(pattern)
                   if not p.relative_to(site).parts[0].startswith(("_", ".")))
    if not pages:
        raise SystemExit(f"no pages under {site}")
    browser = Browser(executable)
    server = None
    failures, n_images, n_figures = {}, 0, 0
    try:
        server = _serve(site)
        origin = f"http://127.0.0.1:{server.server_address[1]}/"
        target, session = _open_tab(browser)
        for page in pages:
            rel = page.relative_to(site).as_posix()
            try:
                bad, images = _check_page(browser, session, origin + urllib.parse.quote(rel),
                                          rel, origin, timeout)
            except TimeoutError:
                bad, images = [f"did not load within {timeout} s"], []
                browser.send("Target.closeTarget", {"targetId": target})
                target, session = _open_tab(browser)
            n_images += sum(i["ok"] for i in images)
            n_figures += sum(i["ok"] and i["figure"] for i in images)
            if bad:
                failures[rel] = bad
    finally:
        browser.close()
        if server is not None:
            server.shutdown()
            server.server_close()
    return len(pages), n_images, n_figures, failures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("site", help="the built HTML folder, e.g. docs/_build/html")
    ap.add_argument("--chromium", default=shutil.which("chromium") or
                    shutil.which("chromium-browser") or shutil.which("google-chrome"))
    ap.add_argument("--pattern", default="**/*.html")
    ap.add_argument("--timeout", type=float, default=60,
                    help="seconds a page may take to load (default 60)")
    args = ap.parse_args(argv)
    if not args.chromium:
        raise SystemExit("no Chromium found: apt-get install chromium, or pass --chromium")
    n, n_img, n_fig, failures = check(args.site, args.chromium, args.pattern,
                                      args.timeout)
    for rel, bad in failures.items():
        print(f"FAIL {rel}")
        for b in bad:
            print(f"    {b}")
    print(f"{n} pages, {n_img} images rendered ({n_fig} gallery figures), "
          f"{len(failures)} pages with problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
