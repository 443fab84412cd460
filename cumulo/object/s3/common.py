"""S3's wire forms: the XML error document, XML answers built and parsed safely, and the request
context the handlers share."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from cumulo.object.service import ContainerInfo, ObjectService

if TYPE_CHECKING:
    from cumulo.object.api import Call

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_XML_BODY = 1024 * 1024  # a DeleteObjects of 1,000 long keys fits; CompleteMultipartUpload of 10,000 parts too
MAX_KEYS = 1000
MAX_KEY_BYTES = 1024
MAX_TAGS = 10
MAX_PART_NUMBER = 10000
MIN_PART_SIZE = 5 * 1024 * 1024  # every part but the last, as AWS requires

_STATUS = {
    "AccessDenied": 403, "BadDigest": 400, "BucketAlreadyExists": 409, "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409, "EntityTooLarge": 400, "EntityTooSmall": 400, "IncompleteBody": 400,
    "InternalError": 500, "InvalidAccessKeyId": 403, "InvalidArgument": 400, "InvalidBucketName": 400,
    "InvalidDigest": 400, "InvalidPart": 400, "InvalidPartOrder": 400, "InvalidRange": 416, "InvalidRequest": 400,
    "InvalidTag": 400, "KeyTooLongError": 400, "MalformedXML": 400, "MethodNotAllowed": 405,
    "MissingContentLength": 411, "NoSuchBucket": 404, "NoSuchKey": 404, "NoSuchUpload": 404,
    "NotImplemented": 501, "PreconditionFailed": 412, "RequestTimeTooSkewed": 403, "ServiceUnavailable": 503,
    "SignatureDoesNotMatch": 403, "XAmzContentSHA256Mismatch": 400, "AuthorizationHeaderMalformed": 400,
    "AuthorizationQueryParametersError": 400, "ExpiredToken": 400, "NotModified": 304,
    "InvalidObjectState": 403, "UnexpectedContent": 400, "MalformedPOSTRequest": 400,
}


class S3Error(Exception):
    """An S3 error answer: its code names the status."""

    def __init__(self, code: str, message: str = "", status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message or code
        self.status = status or _STATUS.get(code, 400)
        self.headers = headers or {}

    def response(self, method: str, resource: str, request_id: str) -> Response:
        if method == "HEAD" or self.status == 304:
            return Response(status_code=self.status, headers=self.headers)
        root = ET.Element("Error")
        for tag, text in (("Code", self.code), ("Message", self.message), ("Resource", resource),
                          ("RequestId", request_id)):
            ET.SubElement(root, tag).text = text
        return Response(ET.tostring(root, encoding="utf-8", xml_declaration=True), status_code=self.status,
                        headers=self.headers, media_type="application/xml")


def request_id() -> str:
    return uuid.uuid4().hex[:16].upper()


def element(tag: str, *children: Any, text: str | None = None) -> ET.Element:
    el = ET.Element(tag)
    if text is not None:
        el.text = text
    for child in children:
        if child is not None:
            el.append(child)
    return el


def sub(parent: ET.Element, tag: str, text: Any) -> ET.Element:
    el = ET.SubElement(parent, tag)
    el.text = str(text)
    return el


def xml_response(root: ET.Element, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    root.set("xmlns", NS)
    return Response(ET.tostring(root, encoding="utf-8", xml_declaration=True), status_code=status,
                    headers=headers, media_type="application/xml")


def parse_xml(body: bytes) -> ET.Element:
    """A request's XML, refused (MalformedXML) when too large, not XML, or carrying a DOCTYPE or
    entity declaration (no entity is ever expanded)."""
    if len(body) > MAX_XML_BODY:
        raise S3Error("MalformedXML", "The XML you provided is too large.")
    head = body[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in body.upper():
        raise S3Error("MalformedXML", "The XML you provided may not carry a DOCTYPE.")
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate "
                      "against our published schema.") from None
    for el in root.iter():  # drop the namespace: clients send it or not
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root


def iso8601(timestamp: str | float) -> str:
    import datetime as dt
    when = dt.datetime.fromtimestamp(float(timestamp), dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def http_date(timestamp: str | float) -> str:
    import math
    return formatdate(math.ceil(float(timestamp)), usegmt=True)


def encode_key(key: str, encoding: str) -> str:
    return quote(key, safe="/") if encoding == "url" else key


@dataclass
class S3Request:
    """One S3 request: the parsed path, the caller, and the Swift-side call used to authorize it."""

    request: Request
    svc: ObjectService
    call: Call  # the Swift API's call for the account: its authorize() applies the same rules and ACLs
    bucket: str
    key: str
    query: dict[str, str]
    body: Any  # cumulo.object.s3.auth.Body: the payload, checked as the signature requires
    request_id: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def account(self) -> str:
        return self.call.account

    def authorize(self, rule: str, container: ContainerInfo | None = None, listing: bool = False) -> None:
        from cumulo.object.api.common import SwiftError
        try:
            self.call.authorize(rule, container, listing)
        except SwiftError:
            raise S3Error("AccessDenied", "Access Denied") from None
