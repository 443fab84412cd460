"""web-download's allow-list (cumulo.image.importing.allowed): scheme, host and port compared as
parsed, the path as a prefix, so look-alike hosts and other ports are refused."""

from __future__ import annotations

import pytest

from cumulo.image.importing import allowed

PREFIXES = ["http://127.0.0.1:8000/images/", "https://mirror.example.org/"]


@pytest.mark.parametrize("uri", ["http://127.0.0.1:8000/images/a.qcow2", "https://mirror.example.org/x/y.raw",
                                 "https://mirror.example.org:443/z", "HTTP://127.0.0.1:8000/images/b"])
def test_allowed(uri: str) -> None:
    assert allowed(uri, PREFIXES)


@pytest.mark.parametrize("uri", [
    "http://127.0.0.1:8000/other/a.qcow2",  # another path
    "http://127.0.0.1:8001/images/a.qcow2",  # another port
    "http://127.0.0.1/images/a.qcow2",  # the default port is another port
    "http://mirror.example.org/x",  # http is not https
    "https://mirror.example.org.evil.test/x",  # a look-alike host
    "https://user:pw@mirror.example.org/x",  # credentials in the URL
    "file:///etc/passwd", "ftp://127.0.0.1:8000/images/a", "gopher://mirror.example.org/",
    "http://127.0.0.1:99999/images/a", "not a url", "", None, 42,
    "https://mirror.example.org/" + "a" * 3000,  # too long
])
def test_refused(uri: object) -> None:
    assert not allowed(uri, PREFIXES)


def test_nothing_is_allowed_without_prefixes() -> None:
    assert not allowed("http://127.0.0.1:8000/images/a", [])
