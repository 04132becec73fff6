"""Headless Chromium through the DevTools protocol (tornado's websocket
client, installed with TensorFlow's dependencies): open a page, give its
file input a file, read what it shows, take a screenshot."""

import base64
import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """One headless Chromium and its first page; `call(method, **params)`
    sends a DevTools command and returns its result."""

    def __init__(self, width=900, height=900):
        from tornado.ioloop import IOLoop
        from tornado.websocket import websocket_connect

        self.profile = tempfile.mkdtemp(prefix="keras_tl_chromium_")
        port = _free_port()
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--no-first-run", f"--remote-debugging-port={port}",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pages = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
                    pages = [t for t in json.load(response) if t["type"] == "page"]
                if pages:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert pages, "Chromium did not start"
        self.loop = IOLoop()
        self.socket = self.loop.run_sync(
            lambda: websocket_connect(pages[0]["webSocketDebuggerUrl"], max_message_size=1 << 28))
        self.ids = itertools.count(1)

    def call(self, method, **params):
        number = next(self.ids)

        async def exchange():
            await self.socket.write_message(json.dumps(
                {"id": number, "method": method, "params": params}))
            while True:
                message = json.loads(await self.socket.read_message())
                if message.get("id") == number:
                    return message

        message = self.loop.run_sync(exchange, timeout=120)
        assert "error" not in message, message
        return message["result"]

    def evaluate(self, expression):
        return self.call("Runtime.evaluate", expression=expression,
                         returnByValue=True)["result"].get("value")

    def wait_for(self, expression, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            if self.evaluate(expression):
                return True
            time.sleep(0.2)
        return False

    def close(self):
        self.socket.close()
        self.loop.close()
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.profile, ignore_errors=True)


def try_page(url, file=None, text=None, screenshot=None):
    """Opens the `keras-tl serve` page at `url`, gives it `file` (dropped
    on its file input) or `text` (typed, then Predict), waits for the
    predictions and returns what they show (`text`, the class `rows` as
    `[name, score]`, whether a `canvas` is drawn); writes a PNG screenshot of
    the page to `screenshot` when given."""
    browser = Browser()
    try:
        browser.call("Page.enable")
        browser.call("Page.navigate", url=url)
        assert browser.wait_for("document.readyState === 'complete' && !!document.getElementById('input').firstChild")
        if file is not None:
            document = browser.call("DOM.getDocument")
            node = browser.call("DOM.querySelector", nodeId=document["root"]["nodeId"],
                                selector="#file")["nodeId"]
            browser.call("DOM.setFileInputFiles", nodeId=node, files=[os.path.abspath(file)])
        else:
            browser.evaluate(f"document.getElementById('text').value = {json.dumps(text)}; "
                             "document.getElementById('go').click()")
        assert browser.wait_for("!!document.querySelector('#result details, #result .error')")
        time.sleep(0.3)  # the image or canvas paints
        shown = {"text": browser.evaluate("document.getElementById('result').innerText"),
                 "rows": browser.evaluate(
                     "[...document.querySelectorAll('#result .row')].map(row => "
                     "[row.children[0].textContent, row.children[2].textContent])"),
                 "canvas": browser.evaluate("!!document.querySelector('#result canvas')")}
        if screenshot:
            height = browser.evaluate("document.documentElement.scrollHeight")
            browser.call("Emulation.setDeviceMetricsOverride", width=900,
                         height=int(min(max(height, 400), 2000)), deviceScaleFactor=1,
                         mobile=False)
            png = browser.call("Page.captureScreenshot", format="png")["data"]
            with open(screenshot, "wb") as f:
                f.write(base64.b64decode(png))
        return shown
    finally:
        browser.close()
