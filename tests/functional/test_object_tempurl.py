"""TempURL and FormPost against a real cloud (SQLite, identity + object): links signed in the test
as Swift's clients sign them (hmac over method, expiry and path), used with httpx and `curl`;
forms built by hand as a browser posts them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.functional.conftest import Cloud, start_cloud, stop_cloud, unique

KEY = "account-key-" + uuid.uuid4().hex
KEY2 = "account-key2-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def tcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("tempurl"), "sqlite", {"CUMULO_SERVICES": "identity,object"})
    yield c
    stop_cloud(c)


class Owner:
    def __init__(self, cloud: Cloud) -> None:
        self.token, body = cloud.token()
        self.project_id = body["project"]["id"]
        self.root = cloud.object_url
        self.account = f"/v1/AUTH_{self.project_id}"
        self.http = httpx.Client(timeout=30)

    def __call__(self, method: str, path: str = "", token: str | None = "", **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if token is not None:
            headers["X-Auth-Token"] = token or self.token
        r = self.http.request(method, self.root + self.account + path, headers=headers, **kw)
        assert r.status_code < 500, (method, path, r.status_code, r.text)
        return r

    def anon(self, method: str, url: str, **kw: Any) -> httpx.Response:
        r = self.http.request(method, self.root + url, **kw)
        assert r.status_code < 500, (method, url, r.status_code, r.text)
        return r


@pytest.fixture(scope="module")
def owner(tcloud: Cloud) -> Owner:
    o = Owner(tcloud)
    assert o("POST", headers={"X-Account-Meta-Temp-URL-Key": KEY,
                              "X-Account-Meta-Temp-URL-Key-2": KEY2}).status_code == 204
    return o


def sig(key: str, method: str, expires: int, path: str, digest: str = "sha256", ip: str | None = None,
        b64: bool = False) -> str:
    body = (f"ip={ip}\n" if ip else "") + f"{method}\n{expires}\n{path}"
    mac = hmac.new(key.encode(), body.encode(), digest)
    return f"{digest}:" + base64.urlsafe_b64encode(mac.digest()).decode() if b64 else mac.hexdigest()


def link(path: str, s: str, expires: int | str, **extra: str) -> str:
    from urllib.parse import urlencode

    return path + "?" + urlencode({"temp_url_sig": s, "temp_url_expires": str(expires), **extra})


def put_object(owner: Owner, data: bytes = b"hello tempurl", **headers: str) -> str:
    c = unique("/tu")
    assert owner("PUT", c).status_code == 201
    assert owner("PUT", c + "/dir/obj.txt", content=data, headers=headers).status_code == 201
    return owner.account + c + "/dir/obj.txt"


def test_info_lists_tempurl_and_formpost(owner: Owner) -> None:
    info = owner.anon("GET", "/info").json()
    assert info["tempurl"]["methods"] == ["GET", "HEAD", "PUT", "POST", "DELETE"]
    assert info["tempurl"]["allowed_digests"] == ["sha1", "sha256", "sha512"]
    assert info["tempurl"]["deprecated_digests"] == ["sha1"]
    assert info["tempurl"]["incoming_remove_headers"] == ["x-timestamp", "x-open-expired"]
    assert info["tempurl"]["outgoing_allow_headers"] == ["x-object-meta-public-*"]
    assert info["formpost"]["allowed_digests"] == ["sha1", "sha256", "sha512"]


def test_a_get_link_works_with_curl_and_httpx_and_allows_head(owner: Owner, tmp_path: Path) -> None:
    path = put_object(owner, b"shared by curl")
    exp = int(time.time()) + 300
    url = link(path, sig(KEY, "GET", exp, path), exp)
    out = tmp_path / "got"
    code = subprocess.run(["curl", "-s", "-o", str(out), "-w", "%{http_code}", owner.root + url],
                          capture_output=True, text=True, timeout=60, check=True).stdout
    assert code == "200" and out.read_bytes() == b"shared by curl"
    r = owner.anon("GET", url)
    assert r.status_code == 200 and r.content == b"shared by curl"
    assert r.headers["content-disposition"] == "attachment; filename=\"obj.txt\"; filename*=UTF-8''obj.txt"
    assert r.headers["expires"] == time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(exp))
    assert owner.anon("HEAD", url).status_code == 200  # HEAD with a GET signature
    assert owner.anon("GET", path).status_code == 401  # without the link: no access
    assert owner.anon("PUT", url, content=b"x").status_code == 401  # a GET link does not write
    assert owner.anon("DELETE", url).status_code == 401


def test_put_and_delete_links(owner: Owner) -> None:
    path = put_object(owner)
    new = path.rsplit("/", 1)[0] + "/uploaded.bin"
    exp = int(time.time()) + 300
    r = owner.anon("PUT", link(new, sig(KEY, "PUT", exp, new), exp), content=b"via tempurl")
    assert r.status_code == 201
    assert owner("GET", new[len(owner.account):]).content == b"via tempurl"
    assert owner.anon("HEAD", link(new, sig(KEY, "PUT", exp, new), exp)).status_code == 200  # HEAD with a PUT sig
    # a tempurl PUT cannot store a pointer to other data
    r = owner.anon("PUT", link(new, sig(KEY, "PUT", exp, new), exp), content=b"",
                   headers={"X-Object-Manifest": "other/seg"})
    assert r.status_code == 400 and "not allowed in this tempurl" in r.text
    assert owner.anon("DELETE", link(new, sig(KEY, "DELETE", exp, new), exp)).status_code == 204
    assert owner("GET", new[len(owner.account):]).status_code == 404


def test_expired_tampered_and_wrong_method_links_are_401(owner: Owner) -> None:
    path = put_object(owner)
    past = int(time.time()) - 10
    r = owner.anon("GET", link(path, sig(KEY, "GET", past, path), past))
    assert r.status_code == 401 and r.text == "401 Unauthorized: Temp URL invalid\n"
    exp = int(time.time()) + 300
    good = sig(KEY, "GET", exp, path)
    bad = ("0" if good[0] != "0" else "1") + good[1:]
    assert owner.anon("GET", link(path, bad, exp)).status_code == 401
    assert owner.anon("GET", link(path, good, exp + 1)).status_code == 401  # expiry changed
    assert owner.anon("GET", link(path + "x", good, exp)).status_code == 401  # path changed
    assert owner.anon("POST", link(path, good, exp)).status_code == 401
    assert owner.anon("GET", link(path, "nothex", exp)).status_code == 401
    assert owner.anon("GET", link(path, good, "tomorrow")).status_code == 401
    far = 10**20
    assert owner.anon("GET", link(path, sig(KEY, "GET", far, path), far)).status_code == 401  # no 500
    assert owner.anon("GET", link(path, sig("wrong-key", "GET", exp, path), exp)).status_code == 401
    r = owner.anon("HEAD", link(path, bad, exp))
    assert r.status_code == 401 and r.content == b""
    # only objects: an account or container path is refused even when signed
    container = path.rsplit("/", 2)[0]
    assert owner.anon("GET", link(container, sig(KEY, "GET", exp, container), exp)).status_code == 401
    assert owner.anon("GET", link(owner.account, sig(KEY, "GET", exp, owner.account), exp)).status_code == 401


def test_a_prefix_link_serves_only_its_prefix(owner: Owner) -> None:
    path = put_object(owner)
    container = path.rsplit("/", 2)[0]
    assert owner("PUT", container[len(owner.account):] + "/other.txt", content=b"other").status_code == 201
    exp = int(time.time()) + 300
    s = sig(KEY, "GET", exp, f"prefix:{container}/dir/")
    assert owner.anon("GET", link(path, s, exp, temp_url_prefix="dir/")).content == b"hello tempurl"
    assert owner.anon("GET", link(container + "/other.txt", s, exp, temp_url_prefix="dir/")).status_code == 401
    assert owner.anon("GET", link(container + "/other.txt", s, exp, temp_url_prefix="")).status_code == 401


def test_an_ip_range_link_is_served_only_in_its_range(owner: Owner) -> None:
    path = put_object(owner)
    exp = int(time.time()) + 300
    for ip in ("127.0.0.1", "127.0.0.0/8"):
        r = owner.anon("GET", link(path, sig(KEY, "GET", exp, path, ip=ip), exp, temp_url_ip_range=ip))
        assert r.status_code == 200, ip
    far = "10.1.2.0/24"
    r = owner.anon("GET", link(path, sig(KEY, "GET", exp, path, ip=far), exp, temp_url_ip_range=far))
    assert r.status_code == 401
    # the range is signed: changing it breaks the signature
    s = sig(KEY, "GET", exp, path, ip="10.1.2.0/24")
    assert owner.anon("GET", link(path, s, exp, temp_url_ip_range="127.0.0.1")).status_code == 401
    assert owner.anon("GET", link(path, s, exp, temp_url_ip_range="not-an-ip")).status_code == 401


def test_container_keys_and_the_second_account_key(owner: Owner) -> None:
    path = put_object(owner)
    container = path.rsplit("/", 2)[0]
    ckey, ckey2 = "ck-" + uuid.uuid4().hex, "ck2-" + uuid.uuid4().hex
    assert owner("POST", container[len(owner.account):], headers={
        "X-Container-Meta-Temp-URL-Key": ckey, "X-Container-Meta-Temp-URL-Key-2": ckey2}).status_code == 204
    exp = int(time.time()) + 300
    for key in (ckey, ckey2, KEY2):
        assert owner.anon("GET", link(path, sig(key, "GET", exp, path), exp)).status_code == 200
    # a container key reaches that container only
    other = put_object(owner)
    assert owner.anon("GET", link(other, sig(ckey, "GET", exp, other), exp)).status_code == 401
    # and a PUT link with a container key cannot copy from another container
    dest = container + "/copied"
    r = owner.anon("PUT", link(dest, sig(ckey, "PUT", exp, dest), exp), content=b"",
                   headers={"X-Copy-From": other[len(owner.account) + 1:]})
    assert r.status_code == 401


def test_every_digest_hex_and_base64_and_iso_expiry(owner: Owner) -> None:
    path = put_object(owner)
    exp = int(time.time()) + 300
    for digest in ("sha1", "sha256", "sha512"):
        for b64 in (False, True):
            r = owner.anon("GET", link(path, sig(KEY, "GET", exp, path, digest, b64=b64), exp))
            assert r.status_code == 200, (digest, b64)
    s = sig(KEY, "GET", exp, path, "sha512", b64=True)
    assert owner.anon("GET", link(path, s.replace("sha512:", "md5:"), exp)).status_code == 401
    std = "sha256:" + base64.b64encode(hmac.new(KEY.encode(), f"GET\n{exp}\n{path}".encode(),
                                                hashlib.sha256).digest()).decode()
    assert owner.anon("GET", link(path, std, exp)).status_code == 200  # standard base64 too
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))
    assert owner.anon("GET", link(path, sig(KEY, "GET", exp, path), iso)).status_code == 200


def test_filename_and_inline_disposition_and_private_metadata_hidden(owner: Owner) -> None:
    path = put_object(owner, **{"X-Object-Meta-Secret": "s", "X-Object-Meta-Public-Color": "blue"})
    exp = int(time.time()) + 300
    s = sig(KEY, "GET", exp, path)
    r = owner.anon("GET", link(path, s, exp, filename="My Report.pdf"))
    assert r.headers["content-disposition"] == (
        "attachment; filename=\"My Report.pdf\"; filename*=UTF-8''My%20Report.pdf")
    assert "x-object-meta-secret" not in r.headers and r.headers["x-object-meta-public-color"] == "blue"
    r = owner.anon("GET", link(path, s, exp, inline=""))
    assert r.headers["content-disposition"] == "inline"
    r = owner.anon("GET", link(path, s, exp, inline="", filename="a.txt"))
    assert r.headers["content-disposition"].startswith('inline; filename="a.txt"')
    assert owner("GET", path[len(owner.account):]).headers["x-object-meta-secret"] == "s"  # the owner sees it


@pytest.fixture(scope="module")
def outsider(tcloud: Cloud, owner: Owner) -> tuple[str, str]:
    """A member of another project: (its project id, its token)."""
    def v3(method: str, path: str, body: Any = None) -> Any:
        r = httpx.request(method, f"{tcloud.url}{path}", json=body, headers={"X-Auth-Token": owner.token})
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    roles = {x["name"]: x["id"] for x in v3("GET", "/roles")["roles"]}
    project = v3("POST", "/projects", {"project": {"name": unique("tu-q"), "domain_id": "default"}})["project"]
    name, password = unique("tu-user"), uuid.uuid4().hex
    user = v3("POST", "/users", {"user": {"name": name, "password": password, "domain_id": "default"}})["user"]
    v3("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/{roles['member']}")
    token, _ = tcloud.token(name, password, project["name"])
    return project["id"], token


def test_a_write_acl_user_cannot_set_or_see_a_container_key(owner: Owner, outsider: tuple[str, str]) -> None:
    project, token = outsider
    path = put_object(owner)
    container = path.rsplit("/", 2)[0][len(owner.account):]
    assert owner("POST", container, headers={"X-Container-Write": f"{project}:*", "X-Container-Read": f"{project}:*",
                                             "X-Container-Meta-Temp-URL-Key": "owners-key"}).status_code == 204
    assert owner("PUT", container + "/by-acl", token=token, content=b"acl write").status_code == 201  # the ACL works
    r = owner("POST", container, token=token, headers={"X-Container-Meta-Temp-URL-Key": "mine"})
    assert r.status_code == 403
    r = owner("PUT", container, token=token, headers={"X-Container-Meta-Temp-URL-Key": "mine"})
    assert r.status_code == 403
    assert owner("HEAD", container).headers["x-container-meta-temp-url-key"] == "owners-key"
    assert "x-container-meta-temp-url-key" not in owner("HEAD", container, token=token).headers
    exp = int(time.time()) + 300
    assert owner.anon("GET", link(path, sig("mine", "GET", exp, path), exp)).status_code == 401


def form(fields: list[tuple[str, str]], files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "----cumulo" + uuid.uuid4().hex
    out = b""
    for name, value in fields:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for i, (filename, data) in enumerate(files):
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="file{i}"; filename="{filename}"\r\n'
                f"Content-Type: text/plain\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def signed_form(path: str, redirect: str, size: int, count: int, expires: int, key: str = KEY,
                digest: str = "sha256") -> list[tuple[str, str]]:
    body = f"{path}\n{redirect}\n{size}\n{count}\n{expires}"
    signature = hmac.new(key.encode(), body.encode(), digest).hexdigest()
    fields = [("max_file_size", str(size)), ("max_file_count", str(count)), ("expires", str(expires)),
              ("signature", signature)]
    return ([("redirect", redirect)] if redirect else []) + fields


def test_formpost_uploads_two_files_and_redirects(owner: Owner) -> None:
    c = unique("/fp")
    assert owner("PUT", c).status_code == 201
    path = owner.account + c + "/up/"
    exp = int(time.time()) + 300
    body, ctype = form(signed_form(path, "https://example.com/done?x=1", 1024, 2, exp),
                       [("a.txt", b"first file"), ("b.txt", b"second\r\n--not a boundary")])
    r = owner.anon("POST", path, content=body, headers={"Content-Type": ctype})
    assert r.status_code == 303, r.text
    loc = urlsplit(r.headers["location"])
    assert loc.netloc == "example.com" and parse_qs(loc.query, keep_blank_values=True) == {
        "x": ["1"], "status": ["201"], "message": [""]}
    assert owner("GET", c + "/up/a.txt").content == b"first file"
    assert owner("GET", c + "/up/b.txt").content == b"second\r\n--not a boundary"
    assert owner("GET", c + "/up/a.txt").headers["content-type"] == "text/plain"
    # without a redirect: the status line as text; a sha512 signature as base64, sha1 hex
    for digest in ("sha512", "sha1"):
        fields = signed_form(path, "", 1024, 1, exp, digest=digest)
        if digest == "sha512":
            raw = bytes.fromhex(fields[-1][1])
            fields[-1] = ("signature", "sha512:" + base64.b64encode(raw).decode())
        body, ctype = form(fields, [(f"{digest}.txt", b"z")])
        r = owner.anon("POST", path, content=body, headers={"Content-Type": ctype})
        assert r.status_code == 201 and r.text == "201 Created", r.text


def test_formpost_refuses_big_files_expired_forms_bad_signatures_and_extra_files(owner: Owner) -> None:
    c = unique("/fp")
    assert owner("PUT", c).status_code == 201
    path = owner.account + c + "/"
    exp = int(time.time()) + 300
    body, ctype = form(signed_form(path, "https://example.com/r", 10, 1, exp), [("big.bin", b"x" * 11)])
    r = owner.anon("POST", path, content=body, headers={"Content-Type": ctype})
    assert r.status_code == 400 and r.text == "FormPost: max_file_size exceeded"
    assert owner("GET", c + "/big.bin").status_code == 404
    past = int(time.time()) - 5
    body, ctype = form(signed_form(path, "", 10, 1, past), [("late.txt", b"x")])
    r = owner.anon("POST", path, content=body, headers={"Content-Type": ctype})
    assert r.status_code == 401 and r.text == "FormPost: Form Expired"
    body, ctype = form(signed_form(path, "", 10, 1, exp, key="not-the-key"), [("bad.txt", b"x")])
    r = owner.anon("POST", path, content=body, headers={"Content-Type": ctype})
    assert r.status_code == 401 and r.text == "FormPost: Invalid Signature"
    fields = signed_form(path, "", 10, 1, exp)
    fields[1] = ("max_file_count", "5")  # not what was signed
    body, ctype = form(fields, [("forged.txt", b"x")])
    assert owner.anon("POST", path, content=body, headers={"Content-Type": ctype}).status_code == 401
    body, ctype = form(signed_form(path, "", 10, 1, exp), [("one.txt", b"1"), ("two.txt", b"2")])
    r = owner.anon("POST", path, content=body, headers={"Content-Type": ctype})
    assert r.status_code == 400 and "Max File Count Exceeded" in r.text
    assert owner("GET", c + "/one.txt").content == b"1" and owner("GET", c + "/two.txt").status_code == 404
    body, ctype = form(signed_form(path, "", 10, 1, exp), [])
    r = owner.anon("POST", path, content=body, headers={"Content-Type": ctype})
    assert r.status_code == 400 and "No Files To Process" in r.text
    r = owner.anon("POST", path, content=b"garbage", headers={"Content-Type": "multipart/form-data; boundary=zz"})
    assert r.status_code == 400 and r.text.startswith("FormPost: ")
    fields = signed_form(path, "", -5, 1, exp)
    body, ctype = form(fields, [("neg.txt", b"x")])
    assert owner.anon("POST", path, content=body, headers={"Content-Type": ctype}).status_code == 400
    for name in ("big.bin", "late.txt", "bad.txt", "forged.txt"):
        assert owner("GET", f"{c}/{name}").status_code == 404


def test_a_link_reaches_no_further_than_its_key(owner: Owner, outsider: tuple[str, str]) -> None:
    """A TempURL to a symlink (or a large object) does not lend the signer's key to the target:
    an account key stays in its account, a container key in its container."""
    project, token = outsider
    other = f"/v1/AUTH_{project}"
    secret = unique("/secret")
    assert owner.anon("PUT", other + secret, headers={"X-Auth-Token": token}).status_code == 201
    assert owner.anon("PUT", other + secret + "/s", content=b"not yours",
                      headers={"X-Auth-Token": token}).status_code == 201
    c = unique("/links")
    assert owner("PUT", c).status_code == 201
    assert owner("PUT", c + "/far", content=b"", headers={
        "X-Symlink-Target": f"{secret[1:]}/s", "X-Symlink-Target-Account": f"AUTH_{project}"}).status_code == 201
    expires = int(time.time()) + 300
    url = owner.account + c + "/far"
    r = owner.anon("GET", link(url, sig(KEY, "GET", expires, url), expires))
    assert r.status_code in (401, 403) and b"not yours" not in r.content, r.status_code

    # a container key: another container of the same account is out of its reach
    private = unique("/private")
    assert owner("PUT", private).status_code == 201
    assert owner("PUT", private + "/p", content=b"private data").status_code == 201
    keyed, ckey = unique("/keyed"), "container-key-" + uuid.uuid4().hex
    assert owner("PUT", keyed, headers={"X-Container-Meta-Temp-URL-Key": ckey}).status_code == 201
    assert owner("PUT", keyed + "/near", content=b"", headers={
        "X-Symlink-Target": f"{private[1:]}/p"}).status_code == 201
    assert owner("PUT", keyed + "/own", content=b"mine").status_code == 201
    assert owner("PUT", keyed + "/mine", content=b"",
                 headers={"X-Symlink-Target": f"{keyed[1:]}/own"}).status_code == 201
    url = owner.account + keyed + "/near"
    r = owner.anon("GET", link(url, sig(ckey, "GET", expires, url), expires))
    assert r.status_code in (401, 403) and b"private data" not in r.content, r.status_code
    url = owner.account + keyed + "/mine"  # within its container a link is followed
    r = owner.anon("GET", link(url, sig(ckey, "GET", expires, url), expires))
    assert r.status_code == 200 and r.content == b"mine"
    # the account key reaches the other container of its own account
    url = owner.account + keyed + "/near"
    r = owner.anon("GET", link(url, sig(KEY, "GET", expires, url), expires))
    assert r.status_code == 200 and r.content == b"private data"
