"""Open an HTML file in headless Chromium and report what a reader would see.

Test helper (not a test file). The browser is driven over the Chrome DevTools Protocol through
``--remote-debugging-pipe``: Chromium reads NUL-terminated JSON commands on fd 3 and writes
NUL-terminated JSON replies and events on fd 4. Talking to that pipe takes a few lines of the
standard library, so the check needs no selenium/chromedriver (a second binary that must match
the browser's version) and no websocket package (the pipe replaces the DevTools websocket).
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import select
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Flags that run on a headless CI machine as root: no sandbox (root cannot use it), no GPU, and
# nothing that phones home (the report must render offline; a network request is a failure).
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # wider than the report's 1100 px max-width, so the screenshot shows its real layout
    "--window-size=1280,900",
)

# Screenshots taller than this are clipped (Chromium's own limit for one capture is 16384 px).
_MAX_SCREENSHOT_HEIGHT = 16000


class BrowserError(RuntimeError):
    """Chromium could not be started, exited early, or refused a DevTools command."""


class BrowserTimeout(BrowserError, TimeoutError):
    """The page did not finish loading (or a command did not answer) within the time allowed."""


@dataclass
class ConsoleMessage:
    """One console or log entry of level ``error`` or ``warning``."""

    level: str
    text: str
    source: str


@dataclass
class FailedRequest:
    """A network load that failed (Network.loadingFailed)."""

    url: str
    error: str


@dataclass
class Dialog:
    """A JavaScript dialog the page opened (alert, confirm, prompt, beforeunload)."""

    type: str
    message: str


@dataclass
class PageReport:
    """What the browser saw when it opened one page.

    Attributes
    ----------
    url : str
        The ``file://`` address that was opened.
    title : str
        ``document.title``.
    console : list of ConsoleMessage
        Console and log entries of level error or warning.
    exceptions : list of str
        Uncaught JavaScript exceptions.
    failed_requests : list of FailedRequest
        Network loads that failed.
    dialogs : list of Dialog
        JavaScript dialogs opened (each was dismissed).
    images_total, images_loaded : int
        ``<img>`` elements, and how many are complete with ``naturalWidth > 0``.
    text : str
        ``document.body.innerText``.
    screenshot_png : bytes
        Full-page PNG screenshot.
    screenshot_shape : tuple of int
        (height, width) of the screenshot in pixels.
    nonwhite_fraction : float
        Fraction of screenshot pixels with any channel below 250/255.
    pixel_std : float
        Standard deviation of the screenshot's grey levels on a 0-255 scale.
    seconds : float
        Wall time from browser start to the finished report.
    """

    url: str
    title: str = ""
    console: list[ConsoleMessage] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    failed_requests: list[FailedRequest] = field(default_factory=list)
    dialogs: list[Dialog] = field(default_factory=list)
    images_total: int = 0
    images_loaded: int = 0
    text: str = ""
    screenshot_png: bytes = b""
    screenshot_shape: tuple[int, int] = (0, 0)
    nonwhite_fraction: float = 0.0
    pixel_std: float = 0.0
    seconds: float = 0.0

    @property
    def text_length(self) -> int:
        """Length of ``document.body.innerText``."""
        return len(self.text)

    @property
    def console_errors(self) -> list[ConsoleMessage]:
        """Console entries of level error only."""
        return [m for m in self.console if m.level == "error"]

    @property
    def blank(self) -> bool:
        """True when the screenshot is (nearly) uniform: under 0.1 % non-white or std < 1 grey level."""
        return self.nonwhite_fraction < 1e-3 or self.pixel_std < 1.0


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable, or None.

    ``DOPTRACE_CHROMIUM`` (a path or a command name) overrides the search; when it is set but
    names nothing executable, None is returned rather than silently using another browser.
    """
    override = os.environ.get("DOPTRACE_CHROMIUM")
    if override:
        return shutil.which(override)
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _high_fd(fd: int) -> int:
    """A close-on-exec copy of ``fd`` numbered >= 10, and ``fd`` closed.

    Pipe ends may come back as 3 or 4; moving them out of the way first means the dup2 onto
    3 and 4 in the child can never overwrite the other pipe end.
    """
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class _Chromium:
    """One headless Chromium process and its DevTools pipe."""

    def __init__(self, executable: str, workdir: Path, deadline: float):
        self.deadline = deadline
        self.log_path = workdir / "chromium.log"
        self._next_id = 0
        self._buffer = b""
        self.responses: dict[int, dict] = {}
        to_child_r, self._to_child = (_high_fd(fd) for fd in os.pipe())
        self._from_child, from_child_w = (_high_fd(fd) for fd in os.pipe())
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        argv = [executable, *_FLAGS, f"--user-data-dir={workdir / 'profile'}",
                "--remote-debugging-pipe", "about:blank"]
        # posix_spawn places the pipe ends on exactly fds 3 and 4; subprocess.Popen cannot do that
        # safely (its own error pipe may sit on 3 or 4 in the child). setsid gives the browser its
        # own process group, so its renderer and GPU helpers are killed together with it.
        actions = [
            (os.POSIX_SPAWN_DUP2, null_fd, 0),
            (os.POSIX_SPAWN_DUP2, log_fd, 1),
            (os.POSIX_SPAWN_DUP2, log_fd, 2),
            (os.POSIX_SPAWN_DUP2, to_child_r, 3),
            (os.POSIX_SPAWN_DUP2, from_child_w, 4),
        ]
        try:
            self.pid = os.posix_spawn(executable, argv, dict(os.environ), file_actions=actions,
                                      setsid=True)
        except OSError as error:
            os.close(self._to_child)
            os.close(self._from_child)
            raise BrowserError(f"could not start {executable}: {error}") from error
        finally:
            for fd in (to_child_r, from_child_w, log_fd, null_fd):
                os.close(fd)
        # non-blocking writes: select() only promises room for some bytes, not a whole message
        os.set_blocking(self._to_child, False)

    # -- transport -------------------------------------------------------------------------------

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        """Send one command; returns its id without waiting for the answer."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            _, writable, _ = select.select([], [self._to_child], [], self._remaining(method))
            if not writable:
                self._timeout(f"sending {method}")
            try:
                data = data[os.write(self._to_child, data):]
            except BlockingIOError:
                continue
            except BrokenPipeError as error:
                raise BrowserError(f"chromium exited before {method}{self.log_tail()}") from error
        return self._next_id

    def receive(self, waiting_for: str) -> dict:
        """The next message from the browser; raises on timeout or when the browser exits."""
        while b"\0" not in self._buffer:
            readable, _, _ = select.select([self._from_child], [], [], self._remaining(waiting_for))
            if not readable:
                self._timeout(waiting_for)
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise BrowserError(f"chromium closed the DevTools pipe while {waiting_for}"
                                   f"{self.log_tail()}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def _remaining(self, waiting_for: str) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self._timeout(waiting_for)
        return remaining

    def _timeout(self, waiting_for: str):
        raise BrowserTimeout(f"chromium timed out while {waiting_for}{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        """The last lines chromium wrote to stderr, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        # a CI machine has no D-Bus; those complaints are harmless and would hide the real cause
        text = [line for line in text if line.strip() and "dbus" not in line][-lines:]
        return ("\nchromium stderr (tail):\n" + "\n".join(text)) if text else ""

    # -- shutdown --------------------------------------------------------------------------------

    def close(self, grace: float):
        """End the browser: ask it to quit, wait up to ``grace`` s, then kill what is left.

        A clean Browser.close lets Chromium reap its own helper processes; the SIGKILL to its
        process group afterwards catches any helper still alive (or a browser that hangs).
        """
        exited = False
        if grace > 0:
            try:
                self.deadline = time.monotonic() + grace
                self.send("Browser.close")
                while not exited and time.monotonic() < self.deadline:
                    exited = os.waitpid(self.pid, os.WNOHANG)[0] != 0
                    if not exited:
                        time.sleep(0.02)
            except (BrowserError, OSError):
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if not exited:
            os.waitpid(self.pid, 0)
        for fd in (self._to_child, self._from_child):
            os.close(fd)


class _Page:
    """One attached tab: commands on its session, its events collected into a PageReport."""

    def __init__(self, browser: _Chromium, report: PageReport):
        self.browser = browser
        self.report = report
        self.session: str | None = None
        self.loaded = False
        self._urls: dict[str, str] = {}

    def call(self, method: str, params: dict | None = None, browser_level: bool = False) -> dict:
        """Send a command and pump messages until its answer; returns the result."""
        session = None if browser_level else self.session
        command_id = self.browser.send(method, params, session)
        while command_id not in self.browser.responses:
            self.pump_one(f"waiting for {method}")
        answer = self.browser.responses.pop(command_id)
        if "error" in answer:
            raise BrowserError(f"{method} failed: {answer['error']}")
        return answer.get("result", {})

    def pump_one(self, waiting_for: str):
        """Read one message: store an answer, or handle an event of this page's session."""
        message = self.browser.receive(waiting_for)
        if "id" in message:
            self.browser.responses[message["id"]] = message
        elif self.session is not None and message.get("sessionId") == self.session:
            self.on_event(message["method"], message.get("params", {}))
        # events of the browser itself or of other targets are not about this page

    def on_event(self, method: str, params: dict):
        report = self.report
        if method == "Page.loadEventFired":
            self.loaded = True
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning"):
            text = " ".join(_remote_text(arg) for arg in params.get("args", []))
            report.console.append(ConsoleMessage(params["type"], text, "console-api"))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            if entry.get("level") in ("error", "warning"):
                text = entry.get("text", "")
                if entry.get("url"):
                    text += f" ({entry['url']})"
                report.console.append(ConsoleMessage(entry["level"], text, entry.get("source", "")))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exception = details.get("exception", {})
            report.exceptions.append(exception.get("description") or details.get("text", ""))
        elif method == "Network.requestWillBeSent":
            self._urls[params["requestId"]] = params.get("request", {}).get("url", "")
        elif method == "Network.loadingFailed":
            url = self._urls.get(params["requestId"], "")
            report.failed_requests.append(FailedRequest(url, params.get("errorText", "")))
        elif method == "Page.javascriptDialogOpening":
            report.dialogs.append(Dialog(params.get("type", ""), params.get("message", "")))
            # the page is frozen until the dialog is answered; the answer is read by pump_one
            self.browser.send("Page.handleJavaScriptDialog", {"accept": False}, self.session)


def _remote_text(arg: dict) -> str:
    """Readable text of one Runtime.RemoteObject console argument."""
    if "value" in arg:
        return str(arg["value"])
    return arg.get("description") or arg.get("unserializableValue") or arg.get("type", "")


# Everything the report needs from the page, in one evaluation.
_PAGE_FACTS = """(() => {
  const imgs = Array.from(document.images);
  return {
    title: document.title,
    imagesTotal: imgs.length,
    imagesLoaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    text: document.body ? document.body.innerText : ""
  };
})()"""


def _decode_png(png: bytes) -> np.ndarray:
    """RGB(A) pixels of a PNG as floats in 0..1 (PIL when installed, else matplotlib)."""
    try:
        from PIL import Image
    except ImportError:
        import matplotlib.image as mpimg

        return np.asarray(mpimg.imread(io.BytesIO(png), format="png"), dtype=float)
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"), dtype=float) / 255.0


def _measure_screenshot(report: PageReport, png: bytes):
    pixels = _decode_png(png)
    rgb = pixels[..., :3]
    report.screenshot_png = png
    report.screenshot_shape = rgb.shape[:2]
    report.nonwhite_fraction = float(np.mean(np.any(rgb < 250 / 255, axis=-1)))
    report.pixel_std = float(np.std(rgb.mean(axis=-1)) * 255)


def render(html_path: str | os.PathLike, timeout: float = 60.0,
           executable: str | None = None) -> PageReport:
    """Open ``html_path`` in headless Chromium and report what it showed.

    Parameters
    ----------
    html_path : path-like
        A local HTML file.
    timeout : float
        Seconds allowed for everything, from browser start to screenshot.
    executable : str, optional
        Browser to run; ``find_chromium()`` by default.

    Returns
    -------
    PageReport

    Raises
    ------
    BrowserTimeout
        The page or a command did not finish within ``timeout``.
    BrowserError
        No browser was found, it exited, or it refused a command.
    """
    executable = executable or find_chromium()
    if executable is None:
        raise BrowserError("no chromium found (set DOPTRACE_CHROMIUM or install chromium)")
    url = Path(html_path).resolve().as_uri()
    report = PageReport(url=url)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="doptrace-chromium-",
                                     ignore_cleanup_errors=True) as workdir:
        browser = _Chromium(executable, Path(workdir), deadline=start + timeout)
        try:
            page = _Page(browser, report)
            target = page.call("Target.createTarget", {"url": "about:blank"}, browser_level=True)
            attached = page.call("Target.attachToTarget",
                                 {"targetId": target["targetId"], "flatten": True},
                                 browser_level=True)
            page.session = attached["sessionId"]
            for domain in ("Runtime", "Log", "Page", "Network"):
                page.call(f"{domain}.enable")
            navigation = page.call("Page.navigate", {"url": url})
            if navigation.get("errorText"):
                raise BrowserError(f"could not open {url}: {navigation['errorText']}")
            while not page.loaded:
                page.pump_one(f"waiting for the load event of {url}")
            facts = page.call("Runtime.evaluate", {"expression": _PAGE_FACTS,
                                                   "returnByValue": True})["result"]["value"]
            report.title = facts["title"]
            report.images_total = facts["imagesTotal"]
            report.images_loaded = facts["imagesLoaded"]
            report.text = facts["text"]
            size = page.call("Page.getLayoutMetrics")["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": max(1, size["width"]),
                    "height": min(max(1, size["height"]), _MAX_SCREENSHOT_HEIGHT), "scale": 1}
            shot = page.call("Page.captureScreenshot", {"format": "png", "clip": clip,
                                                        "captureBeyondViewport": True})
            _measure_screenshot(report, base64.b64decode(shot["data"]))
        except BaseException:
            browser.close(grace=0)  # a failed or hung browser is killed at once
            raise
        browser.close(grace=3.0)
    report.seconds = time.monotonic() - start
    return report
