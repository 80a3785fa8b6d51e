"""The browser fixture's first navigation: bounded, tried once more on a fresh Chromium when the renderer
times out, and only the first one (tests/chromium.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.chromium import Browser, Chromium

pytestmark = pytest.mark.browser


class _Pages(ThreadingHTTPServer):
    """``/page`` answers at once; ``/hang`` answers only when the test ends; ``/once-hang`` hangs the
    first time only. Every request is counted."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.release = threading.Event()
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Pages

    def do_GET(self) -> None:
        if self.path == "/favicon.ico":
            self.send_error(404)
            return
        self.server.requests.append(self.path)
        if self.path == "/hang" or (self.path == "/once-hang" and self.server.requests.count(self.path) == 1):
            self.server.release.wait(60)
        body = f"<title>served</title><p id=path>{self.path}</p>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def pages() -> Iterator[_Pages]:
    server = _Pages()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def test_a_first_load_that_times_out_is_tried_once_more_in_a_fresh_chromium_and_later_loads_are_not(
    pages: _Pages, tmp_path
) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By

    chromium = Chromium(tmp_path, first_load_seconds=3, load_seconds=3).start()
    try:
        browser = Browser(chromium)
        first_session = chromium.driver.session_id
        with pytest.warns(UserWarning, match=r"(?s)first page load .*/once-hang failed.*ChromeDriver"):
            browser.get(pages.url + "/once-hang")
        assert browser.find_element(By.ID, "path").text == "/once-hang"
        assert chromium.starts == 2 and chromium.driver.session_id != first_session
        assert pages.requests == ["/once-hang", "/once-hang"]

        # Not the first navigation of the test any more: a timeout is the test's, with no second try.
        with pytest.raises(TimeoutException):
            browser.get(pages.url + "/hang")
        assert chromium.starts == 2 and pages.requests.count("/hang") == 1
    finally:
        chromium.stop()
