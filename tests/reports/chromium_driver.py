"""A minimal headless-Chromium driver over the DevTools protocol pipe (no websocket, no npm, no downloads).

Chromium started with ``--remote-debugging-pipe`` reads NUL-terminated JSON commands from file
descriptor 3 and writes replies and events to descriptor 4. The driver attaches to the page, records
every console error, uncaught exception, failed resource load and JavaScript dialog as a problem, and
offers navigate / evaluate / wait / screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
)


class BrowserError(RuntimeError):
    """Chromium failed, timed out, or a page script raised."""


class Chromium:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(
        self, executable: Path = CHROMIUM, width: int = 1280, height: int = 900, timeout: float = 30.0
    ) -> None:
        self.executable, self.width, self.height, self.timeout = executable, width, height, timeout
        self.problems: list[str] = []
        self._events: list[dict[str, Any]] = []
        self._buffer = b""
        self._next_id = 0
        self._session: str | None = None

    # -- process ---------------------------------------------------------------------------------

    def __enter__(self) -> Chromium:
        self._profile = tempfile.mkdtemp(prefix="attreval-chromium-")
        low_read, self._commands = os.pipe()
        self._replies, low_write = os.pipe()
        # the child's ends go above 9 first, so that moving them onto 3 and 4 cannot clobber each other
        commands_read, replies_write = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (low_read, low_write))
        os.close(low_read)
        os.close(low_write)

        def onto_3_and_4() -> None:  # in the child, between fork and exec; dup2 makes them inheritable
            os.dup2(commands_read, 3)
            os.dup2(replies_write, 4)

        arguments = [
            str(self.executable),
            *FLAGS,
            f"--user-data-dir={self._profile}",
            f"--window-size={self.width},{self.height}",
            "about:blank",
        ]
        self._log = open(Path(self._profile) / "chromium.log", "wb")
        self.process = subprocess.Popen(
            arguments,
            close_fds=False,  # the parent's other descriptors are close-on-exec (PEP 446)
            preexec_fn=onto_3_and_4,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        os.close(commands_read)
        os.close(replies_write)
        try:
            self._attach()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            if self.process.poll() is None:
                try:
                    self._send("Browser.close", session=False)
                    self.process.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired, BrowserError):
                    self.process.kill()
                    self.process.wait(timeout=5)
        finally:
            for descriptor in (self._commands, self._replies):
                with contextlib.suppress(OSError):
                    os.close(descriptor)
            self._log.close()
            shutil.rmtree(self._profile, ignore_errors=True)

    # -- protocol --------------------------------------------------------------------------------

    def _send(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self._session:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError("timed out waiting for Chromium")
            ready, _, _ = select.select([self._replies], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium exited (see {self._profile}/chromium.log)")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def _handle(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.problems.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            texts = [str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", [])]
            self.problems.append(f"console.{params['type']}: {' '.join(texts)}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.problems.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Page.javascriptDialogOpening":
            self.problems.append(f"dialog: {params.get('message')}")
            self._send("Page.handleJavaScriptDialog", {"accept": False})
        self._events.append(event)

    def command(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True) -> dict[str, Any]:
        """Send one command and return its result, handling the events that arrive meanwhile."""
        number = self._send(method, params, session=session)
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == number:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self._handle(message)

    def _wait_event(self, method: str) -> dict[str, Any]:
        for position, event in enumerate(self._events):
            if event.get("method") == method:
                return self._events.pop(position)
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._receive(deadline)
            if "method" in message:
                self._handle(message)
                if message["method"] == method:
                    self._events.remove(message)
                    return message

    def _attach(self) -> None:
        targets = self.command("Target.getTargets", session=False)["targetInfos"]
        page = next(target for target in targets if target["type"] == "page")
        self._session = self.command(
            "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}, session=False
        )["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.command(f"{domain}.enable")

    # -- page ------------------------------------------------------------------------------------

    def open(self, path: Path) -> None:
        """Load a file and wait for its load event."""
        self._events.clear()
        result = self.command("Page.navigate", {"url": Path(path).resolve().as_uri()})
        if result.get("errorText"):
            raise BrowserError(f"cannot open {path}: {result['errorText']}")
        self._wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises are awaited)."""
        result = self.command(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(f"{expression!r} raised {details.get('exception', {}).get('description') or details}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15.0) -> Any:
        """Poll ``expression`` until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {expression!r}")
            time.sleep(0.05)

    def screenshot(self, path: Path, max_height: int = 6000) -> Path:
        """Save a PNG of the whole page (up to ``max_height`` CSS pixels)."""
        size = self.command("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height), "scale": 1}
        data = self.command("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))
        return path


__all__ = ["CHROMIUM", "BrowserError", "Chromium"]
