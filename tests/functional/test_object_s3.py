"""The S3 API (cumulo/object/s3) against a real cloud (SQLite, identity + object), with the real
clients: boto3, the aws cli and rclone, keys from `openstack ec2 credentials create`, and the same
data read and written over the Swift API."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.functional.conftest import Cloud, identity_admin, make_people
from tests.functional.object_helpers import object_cloud

boto3 = pytest.importorskip("boto3")
from botocore.client import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

AWS = str(Path(sys.executable).parent / "aws")
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def scloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with object_cloud(tmp_path_factory, "s3") as c:
        yield c


class Person:
    def __init__(self, cloud: Cloud, token: str, project_id: str, access: str, secret: str) -> None:
        self.cloud, self.token, self.project_id, self.access, self.secret = cloud, token, project_id, access, secret

    def client(self, secret: str | None = None, access: str | None = None, **config: Any) -> Any:
        return boto3.client("s3", endpoint_url=self.cloud.s3_url, region_name="us-east-1",
                            aws_access_key_id=access or self.access, aws_secret_access_key=secret or self.secret,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config))

    def swift(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"X-Auth-Token": self.token, **kw.pop("headers", {})}
        return httpx.request(method, f"{self.cloud.object_url}/v1/AUTH_{self.project_id}{path}", headers=headers,
                             timeout=30, **kw)


@pytest.fixture(scope="module")
def people(scloud: Cloud) -> dict[str, Person]:
    """admin (keys from the openstack CLI), and a project P's member and reader, Q's member (keys over /v3)."""
    token, body = scloud.token()
    created = json.loads(scloud.cli("ec2", "credentials", "create", "-f", "json").stdout)
    out = {"admin": Person(scloud, token, body["project"]["id"], created["access"], created["secret"])}

    v3 = identity_admin(scloud)
    for name, p in make_people(scloud, "s3").items():
        cred = v3("POST", f"/users/{p.user_id}/credentials/OS-EC2", {"tenant_id": p.project_id})["credential"]
        out[name] = Person(scloud, p.token, p.project_id, cred["access"], cred["secret"])
    return out


@pytest.fixture(scope="module")
def s3(people: dict[str, Person]) -> Any:
    return people["admin"].client()


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_buckets_are_created_listed_headed_located_and_deleted(s3: Any) -> None:
    s3.create_bucket(Bucket="b-life")
    assert "b-life" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket="b-life")
    assert s3.get_bucket_location(Bucket="b-life").get("LocationConstraint") in (None, "")
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket="b-life")
    assert code(exc) == "BucketAlreadyOwnedByYou"
    s3.put_object(Bucket="b-life", Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket="b-life")
    assert code(exc) == "BucketNotEmpty"
    s3.delete_object(Bucket="b-life", Key="k")
    s3.delete_bucket(Bucket="b-life")
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket="b-life")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket="b-life")
    assert code(exc) == "NoSuchBucket"
    assert exc.value.response["ResponseMetadata"]["RequestId"]


def test_objects_are_put_got_by_range_and_condition_copied_and_deleted(s3: Any) -> None:
    s3.create_bucket(Bucket="b-obj")
    data = os.urandom(300_000)
    put = s3.put_object(Bucket="b-obj", Key="dir/a.bin", Body=data, ContentType="application/x-test",
                        Metadata={"color": "blue"})
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = s3.get_object(Bucket="b-obj", Key="dir/a.bin")
    assert got["Body"].read() == data and got["ContentType"] == "application/x-test"
    assert got["Metadata"] == {"color": "blue"}
    head = s3.head_object(Bucket="b-obj", Key="dir/a.bin")
    assert head["ContentLength"] == len(data)
    part = s3.get_object(Bucket="b-obj", Key="dir/a.bin", Range="bytes=100-199")
    assert part["Body"].read() == data[100:200] and part["ContentRange"] == f"bytes 100-199/{len(data)}"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="b-obj", Key="dir/a.bin", Range=f"bytes={len(data) + 5}-")
    assert code(exc) == "InvalidRange"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="b-obj", Key="dir/a.bin", IfMatch='"0000"')
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="b-obj", Key="dir/a.bin", IfNoneMatch=put["ETag"])
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    s3.copy_object(Bucket="b-obj", Key="copy.bin", CopySource={"Bucket": "b-obj", "Key": "dir/a.bin"})
    copied = s3.get_object(Bucket="b-obj", Key="copy.bin")
    assert copied["Body"].read() == data and copied["Metadata"] == {"color": "blue"}
    s3.copy_object(Bucket="b-obj", Key="copy2.bin", CopySource="b-obj/dir/a.bin", MetadataDirective="REPLACE",
                   Metadata={"shape": "round"}, ContentType="text/plain")
    replaced = s3.head_object(Bucket="b-obj", Key="copy2.bin")
    assert replaced["Metadata"] == {"shape": "round"} and replaced["ContentType"] == "text/plain"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="b-obj", Key="copy2.bin", Body=b"no", IfNoneMatch="*")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    s3.delete_object(Bucket="b-obj", Key="copy2.bin")
    s3.delete_object(Bucket="b-obj", Key="never-there")  # S3 answers 204 for a missing key
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="b-obj", Key="copy2.bin")
    assert code(exc) == "NoSuchKey"


def test_a_wrong_content_md5_is_bad_digest_and_nothing_is_kept(s3: Any) -> None:
    import base64
    s3.create_bucket(Bucket="b-md5")
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="b-md5", Key="k", Body=b"payload", ContentMD5=wrong)
    assert code(exc) == "BadDigest"
    assert s3.list_objects_v2(Bucket="b-md5")["KeyCount"] == 0
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="b-md5", Key="k", Body=b"payload", ChecksumCRC32="AAAAAA==")
    assert code(exc) == "BadDigest"
    s3.put_object(Bucket="b-md5", Key="k", Body=b"payload",
                  ContentMD5=base64.b64encode(hashlib.md5(b"payload").digest()).decode())
    assert s3.get_object(Bucket="b-md5", Key="k")["Body"].read() == b"payload"


def test_listings_page_with_prefix_delimiter_tokens_and_url_encoding(s3: Any) -> None:
    s3.create_bucket(Bucket="b-list")
    keys = ["a/1", "a/2", "b/1", "c", "d e", "f"]
    for k in keys:
        s3.put_object(Bucket="b-list", Key=k, Body=b"-")
    top = s3.list_objects_v2(Bucket="b-list", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "b/"]
    assert [o["Key"] for o in top["Contents"]] == ["c", "d e", "f"]
    assert top["KeyCount"] == 5
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="b-list", Prefix="a/")["Contents"]] == ["a/1", "a/2"]
    seen, token = [], None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket="b-list", MaxKeys=2, **kw)
        seen += [o["Key"] for o in page["Contents"]]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == keys
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="b-list", StartAfter="c")["Contents"]] == ["d e", "f"]
    v1 = s3.list_objects(Bucket="b-list", Marker="b/1", MaxKeys=2)
    assert [o["Key"] for o in v1["Contents"]] == ["c", "d e"] and v1["IsTruncated"]
    paginator = s3.get_paginator("list_objects_v2")
    folded = [p["Prefix"] for page in paginator.paginate(Bucket="b-list", Delimiter="/", PaginationConfig={
        "PageSize": 1}) for p in page.get("CommonPrefixes", [])]
    assert folded == ["a/", "b/"]
    raw = httpx.get(s3.generate_presigned_url("list_objects_v2", Params={
        "Bucket": "b-list", "Prefix": "d", "EncodingType": "url"}))
    assert raw.status_code == 200 and "<Key>d%20e</Key>" in raw.text, (raw.url, raw.text)
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket="b-list", ContinuationToken="%%%")
    assert code(exc) == "InvalidArgument"
    assert s3.list_objects_v2(Bucket="b-list", MaxKeys=5000)["MaxKeys"] == 1000


def test_delete_objects_removes_many_and_reports_them(s3: Any) -> None:
    s3.create_bucket(Bucket="b-multi")
    for i in range(5):
        s3.put_object(Bucket="b-multi", Key=f"k{i}", Body=b"x")
    r = s3.delete_objects(Bucket="b-multi", Delete={"Objects": [{"Key": f"k{i}"} for i in range(3)] + [
        {"Key": "absent"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["absent", "k0", "k1", "k2"]
    quiet = s3.delete_objects(Bucket="b-multi", Delete={"Objects": [{"Key": "k3"}], "Quiet": True})
    assert not quiet.get("Deleted")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="b-multi")["Contents"]] == ["k4"]
    with pytest.raises(ClientError) as exc:
        s3.delete_objects(Bucket="b-multi", Delete={"Objects": [{"Key": f"x{i}"} for i in range(1001)]})
    assert code(exc) == "MalformedXML"


def test_a_three_part_upload_completes_with_the_aws_etag(s3: Any) -> None:
    s3.create_bucket(Bucket="b-mpu")
    up = s3.create_multipart_upload(Bucket="b-mpu", Key="big", ContentType="video/x-test", Metadata={"m": "1"})
    uid = up["UploadId"]
    chunks = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(1234)]
    etags = []
    for n, chunk in enumerate(chunks, 1):
        etags.append(s3.upload_part(Bucket="b-mpu", Key="big", UploadId=uid, PartNumber=n, Body=chunk)["ETag"])
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="b-mpu")["Uploads"]] == [uid]
    listed = s3.list_parts(Bucket="b-mpu", Key="big", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed] == [(1, 5 * MIB), (2, 5 * MIB), (3, 1234)]
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket="b-mpu", Key="big", UploadId=uid, PartNumber=10001, Body=b"x")
    assert code(exc) == "InvalidArgument"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket="b-mpu", Key="big", UploadId=uid, MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": etags[0]}, {"PartNumber": 2, "ETag": '"00000000000000000000000000000000"'}]})
    assert code(exc) == "InvalidPart", exc.value.response
    done = s3.complete_multipart_upload(Bucket="b-mpu", Key="big", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
    expected = hashlib.md5(b"".join(hashlib.md5(c).digest() for c in chunks)).hexdigest() + "-3"
    assert done["ETag"] == f'"{expected}"'
    got = s3.get_object(Bucket="b-mpu", Key="big")
    assert got["ETag"] == f'"{expected}"' and got["ContentType"] == "video/x-test" and got["Metadata"] == {"m": "1"}
    assert got["Body"].read() == b"".join(chunks)
    assert s3.get_object(Bucket="b-mpu", Key="big", Range=f"bytes={5 * MIB - 2}-{5 * MIB + 1}")["Body"].read() == \
        chunks[0][-2:] + chunks[1][:2]
    assert not s3.list_multipart_uploads(Bucket="b-mpu").get("Uploads")
    aborted = s3.create_multipart_upload(Bucket="b-mpu", Key="gone")["UploadId"]
    s3.upload_part(Bucket="b-mpu", Key="gone", UploadId=aborted, PartNumber=1, Body=b"abc")
    s3.abort_multipart_upload(Bucket="b-mpu", Key="gone", UploadId=aborted)
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket="b-mpu", Key="gone", UploadId=aborted)
    assert code(exc) == "NoSuchUpload"
    assert "b-mpu+segments" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_upload_part_copy_and_a_too_small_part(s3: Any) -> None:
    s3.create_bucket(Bucket="b-upc")
    src = os.urandom(6 * MIB)
    s3.put_object(Bucket="b-upc", Key="src", Body=src)
    uid = s3.create_multipart_upload(Bucket="b-upc", Key="dst")["UploadId"]
    e1 = s3.upload_part_copy(Bucket="b-upc", Key="dst", UploadId=uid, PartNumber=1, CopySource="b-upc/src",
                             CopySourceRange=f"bytes=0-{5 * MIB - 1}")["CopyPartResult"]["ETag"]
    e2 = s3.upload_part(Bucket="b-upc", Key="dst", UploadId=uid, PartNumber=2, Body=b"tail")["ETag"]
    small = s3.create_multipart_upload(Bucket="b-upc", Key="small")["UploadId"]
    s1 = s3.upload_part(Bucket="b-upc", Key="small", UploadId=small, PartNumber=1, Body=b"a")["ETag"]
    s2 = s3.upload_part(Bucket="b-upc", Key="small", UploadId=small, PartNumber=2, Body=b"b")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket="b-upc", Key="small", UploadId=small, MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": s1}, {"PartNumber": 2, "ETag": s2}]})
    assert code(exc) == "EntityTooSmall"
    s3.complete_multipart_upload(Bucket="b-upc", Key="dst", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert s3.get_object(Bucket="b-upc", Key="dst")["Body"].read() == src[:5 * MIB] + b"tail"


def test_presigned_urls_work_and_expire_within_bounds(s3: Any, people: dict[str, Person]) -> None:
    s3.create_bucket(Bucket="b-pre")
    s3.put_object(Bucket="b-pre", Key="shared.txt", Body=b"hello presigned")
    v4 = people["admin"].client(signature_version="s3v4")
    url = v4.generate_presigned_url("get_object", Params={"Bucket": "b-pre", "Key": "shared.txt"}, ExpiresIn=300)
    assert "X-Amz-Signature=" in url
    r = httpx.get(url)
    assert r.status_code == 200 and r.content == b"hello presigned"
    tampered = httpx.get(url.replace("shared.txt", "other.txt"))
    assert tampered.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in tampered.text
    put_url = v4.generate_presigned_url("put_object", Params={"Bucket": "b-pre", "Key": "up.txt"}, ExpiresIn=60)
    assert httpx.put(put_url, content=b"via url").status_code == 200
    assert s3.get_object(Bucket="b-pre", Key="up.txt")["Body"].read() == b"via url"
    too_long = v4.generate_presigned_url("get_object", Params={"Bucket": "b-pre", "Key": "shared.txt"},
                                         ExpiresIn=8 * 24 * 3600)
    r = httpx.get(too_long)
    assert r.status_code == 400 and "AuthorizationQueryParametersError" in r.text


def test_sigv2_headers_and_query_strings_are_accepted(people: dict[str, Person]) -> None:
    v2 = people["admin"].client(signature_version="s3")
    v2.create_bucket(Bucket="b-v2")
    v2.put_object(Bucket="b-v2", Key="k two", Body=b"v2 data", Metadata={"a": "b"})
    assert v2.get_object(Bucket="b-v2", Key="k two")["Body"].read() == b"v2 data"
    assert [o["Key"] for o in v2.list_objects(Bucket="b-v2")["Contents"]] == ["k two"]
    url = v2.generate_presigned_url("get_object", Params={"Bucket": "b-v2", "Key": "k two"}, ExpiresIn=60)
    assert "Signature=" in url and httpx.get(url).content == b"v2 data"
    bad = people["admin"].client(secret="0" * 32, signature_version="s3")
    with pytest.raises(ClientError) as exc:
        bad.get_object(Bucket="b-v2", Key="k two")
    assert code(exc) == "SignatureDoesNotMatch"


def test_tagging_is_kept_bounded_and_removed(s3: Any) -> None:
    s3.create_bucket(Bucket="b-tag")
    s3.put_object(Bucket="b-tag", Key="k", Body=b"x", Tagging="a=1&b=two")
    assert {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket="b-tag", Key="k")["TagSet"]} == {
        "a": "1", "b": "two"}
    s3.put_object_tagging(Bucket="b-tag", Key="k", Tagging={"TagSet": [{"Key": "only", "Value": "one"}]})
    assert s3.get_object_tagging(Bucket="b-tag", Key="k")["TagSet"] == [{"Key": "only", "Value": "one"}]
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket="b-tag", Key="k", Tagging={"TagSet": [
            {"Key": f"t{i}", "Value": "v"} for i in range(11)]})
    assert code(exc) == "InvalidTag"
    s3.delete_object_tagging(Bucket="b-tag", Key="k")
    assert s3.get_object_tagging(Bucket="b-tag", Key="k")["TagSet"] == []
    assert s3.get_object(Bucket="b-tag", Key="k")["Body"].read() == b"x"


def test_bucket_versioning_is_stored_and_reported(s3: Any) -> None:
    s3.create_bucket(Bucket="b-ver")
    assert "Status" not in s3.get_bucket_versioning(Bucket="b-ver")
    s3.put_bucket_versioning(Bucket="b-ver", VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket="b-ver")["Status"] == "Enabled"
    v1 = s3.put_object(Bucket="b-ver", Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket="b-ver", Key="k", Body=b"two")["VersionId"]
    assert v1 != v2
    assert s3.get_object(Bucket="b-ver", Key="k")["Body"].read() == b"two"
    assert s3.get_object(Bucket="b-ver", Key="k", VersionId=v1)["Body"].read() == b"one"
    assert s3.head_object(Bucket="b-ver", Key="k")["VersionId"] == v2
    gone = s3.delete_object(Bucket="b-ver", Key="k")
    assert gone["DeleteMarker"] is True
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="b-ver", Key="k")
    assert code(exc) == "NoSuchKey"
    listed = s3.list_object_versions(Bucket="b-ver", Prefix="k")
    assert [v["VersionId"] for v in listed["Versions"]] == [v2, v1]
    assert [(m["VersionId"], m["IsLatest"]) for m in listed["DeleteMarkers"]] == [(gone["VersionId"], True)]
    s3.delete_object(Bucket="b-ver", Key="k", VersionId=gone["VersionId"])  # the marker goes: v2 is back
    assert s3.get_object(Bucket="b-ver", Key="k")["Body"].read() == b"two"
    s3.delete_object(Bucket="b-ver", Key="k", VersionId=v2)  # v2 goes for good: v1 is current
    assert s3.get_object(Bucket="b-ver", Key="k")["Body"].read() == b"one"
    assert [v["VersionId"] for v in s3.list_object_versions(Bucket="b-ver")["Versions"]] == [v1]
    s3.put_object(Bucket="b-ver", Key="k", Body=b"three")
    s3.copy_object(Bucket="b-ver", Key="restored", CopySource={"Bucket": "b-ver", "Key": "k", "VersionId": v1})
    assert s3.get_object(Bucket="b-ver", Key="restored")["Body"].read() == b"one"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="b-ver", Key="k", VersionId="not-an-id")
    assert code(exc) == "InvalidArgument"
    s3.put_bucket_versioning(Bucket="b-ver", VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket="b-ver")["Status"] == "Suspended"
    assert "VersionId" not in s3.put_object(Bucket="b-ver", Key="plain", Body=b"p")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket="b-ver")
    assert code(exc) == "BucketNotEmpty"
    assert "b-ver+versions" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_bad_keys_secrets_and_foreign_requests_are_refused(people: dict[str, Person]) -> None:
    admin = people["admin"].client()
    admin.create_bucket(Bucket="b-admin")
    with pytest.raises(ClientError) as exc:
        people["admin"].client(secret="f" * 32).list_buckets()
    assert code(exc) == "SignatureDoesNotMatch"
    with pytest.raises(ClientError) as exc:
        people["admin"].client(access="nobody-" + uuid.uuid4().hex).list_buckets()
    assert code(exc) == "InvalidAccessKeyId"
    member, reader, other = (people[n].client() for n in ("member", "reader", "other"))
    member.create_bucket(Bucket="b-p")
    member.put_object(Bucket="b-p", Key="k", Body=b"p's")
    assert reader.get_object(Bucket="b-p", Key="k")["Body"].read() == b"p's"
    with pytest.raises(ClientError) as exc:
        reader.put_object(Bucket="b-p", Key="k2", Body=b"no")
    assert code(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        reader.create_bucket(Bucket="b-reader")
    assert code(exc) == "AccessDenied"
    for call in (lambda: other.get_object(Bucket="b-p", Key="k"), lambda: other.list_objects_v2(Bucket="b-p"),
                 lambda: other.put_object(Bucket="b-p", Key="x", Body=b"x")):
        with pytest.raises(ClientError) as exc:
            call()
        assert code(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        other.create_bucket(Bucket="b-p")
    assert code(exc) == "BucketAlreadyExists"
    anonymous = httpx.get(f"{people['admin'].cloud.s3_url}/b-p/k")
    assert anonymous.status_code == 403 and "<Code>AccessDenied</Code>" in anonymous.text
    # Swift's ACLs hold over S3 too: a read ACL naming Q lets Q's member read P's bucket, .r:* anyone
    assert people["member"].swift("POST", "/b-p", headers={
        "X-Container-Read": f"{people['other'].project_id}:*"}).status_code == 204
    assert other.get_object(Bucket="b-p", Key="k")["Body"].read() == b"p's"
    with pytest.raises(ClientError) as exc:
        other.put_object(Bucket="b-p", Key="x", Body=b"x")
    assert code(exc) == "AccessDenied"
    assert people["member"].swift("POST", "/b-p", headers={"X-Container-Read": ".r:*"}).status_code == 204
    assert httpx.get(f"{people['admin'].cloud.s3_url}/b-p/k").content == b"p's"
    garbage = httpx.get(f"{people['admin'].cloud.s3_url}/b-p", headers={"Authorization": "AWS4-HMAC-SHA256 x"})
    assert garbage.status_code == 400 and "<RequestId>" in garbage.text


def test_bad_xml_is_malformed_never_a_500(s3: Any, people: dict[str, Person]) -> None:
    s3.create_bucket(Bucket="b-xml")
    url = s3.generate_presigned_url("put_bucket_versioning", Params={
        "Bucket": "b-xml", "VersioningConfiguration": {"Status": "Enabled"}})
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><VersioningConfiguration>' \
        b'<Status>&a;</Status></VersioningConfiguration>'
    for body in (bomb, b"<not xml", b"<VersioningConfiguration><Status>Maybe</Status></VersioningConfiguration>"):
        r = httpx.put(url, content=body)
        assert r.status_code == 400 and "<Code>MalformedXML</Code>" in r.text, r.text


def test_data_crosses_between_the_s3_and_swift_apis(s3: Any, people: dict[str, Person]) -> None:
    admin = people["admin"]
    s3.create_bucket(Bucket="b-cross")
    s3.put_object(Bucket="b-cross", Key="from-s3", Body=b"written by s3", Metadata={"k": "v"})
    r = admin.swift("GET", "/b-cross/from-s3")
    assert r.status_code == 200 and r.content == b"written by s3" and r.headers["x-object-meta-k"] == "v"
    assert admin.swift("PUT", "/b-cross/from-swift", content=b"written by swift",
                       headers={"X-Object-Meta-Origin": "swift"}).status_code == 201
    got = s3.get_object(Bucket="b-cross", Key="from-swift")
    assert got["Body"].read() == b"written by swift" and got["Metadata"] == {"origin": "swift"}
    assert admin.swift("PUT", "/from-swift-container").status_code in (201, 202)
    assert "from-swift-container" in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def _aws_env(tmp_path: Path, person: Person) -> dict[str, str]:
    (tmp_path / "credentials").write_text(f"[default]\naws_access_key_id = {person.access}\n"
                                          f"aws_secret_access_key = {person.secret}\n")
    (tmp_path / "config").write_text("[default]\nregion = us-east-1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"))
    return env


def test_the_aws_cli_copies_lists_and_removes(people: dict[str, Person], tmp_path: Path) -> None:
    person = people["member"]
    env = _aws_env(tmp_path, person)

    def aws(*args: str, ok: tuple[int, ...] = (0,)) -> str:
        r = subprocess.run([AWS, "--endpoint-url", person.cloud.s3_url, *args], env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode in ok, r.stderr
        return r.stdout
    aws("s3", "mb", "s3://cli-bucket")
    src = tmp_path / "file.bin"
    data = os.urandom(9 * MIB)  # over the cli's 8 MiB threshold: a multipart upload
    src.write_bytes(data)
    aws("s3", "cp", str(src), "s3://cli-bucket/dir/file.bin")
    assert "file.bin" in aws("s3", "ls", "s3://cli-bucket/dir/")
    back = tmp_path / "back.bin"
    aws("s3", "cp", "s3://cli-bucket/dir/file.bin", str(back))
    assert back.read_bytes() == data
    head = json.loads(aws("s3api", "head-object", "--bucket", "cli-bucket", "--key", "dir/file.bin"))
    assert head["ContentLength"] == len(data) and head["ETag"].endswith('-2"')
    aws("s3", "rm", "s3://cli-bucket/dir/file.bin")
    assert "file.bin" not in aws("s3", "ls", "s3://cli-bucket/dir/", ok=(0, 1))  # 1: nothing listed


def test_rclone_copies_lists_and_cats(people: dict[str, Person], tmp_path: Path) -> None:
    person = people["member"]
    conf = tmp_path / "rclone.conf"
    conf.write_text(f"[cumulo]\ntype = s3\nprovider = Other\nendpoint = {person.cloud.s3_url}\n"
                    f"access_key_id = {person.access}\nsecret_access_key = {person.secret}\nregion = us-east-1\n")

    def rclone(*args: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # e.g. AWS_CA_BUNDLE
        r = subprocess.run(["rclone", "--config", str(conf), *args], env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout
    src = tmp_path / "src"
    src.mkdir()
    (src / "one.txt").write_text("first file")
    (src / "two.bin").write_bytes(os.urandom(70_000))
    rclone("mkdir", "cumulo:rclone-bucket")
    rclone("copy", str(src), "cumulo:rclone-bucket/up")
    listed = rclone("ls", "cumulo:rclone-bucket")
    assert "up/one.txt" in listed and "70000 up/two.bin" in listed
    assert rclone("cat", "cumulo:rclone-bucket/up/one.txt") == "first file"
    rclone("check", str(src), "cumulo:rclone-bucket/up")


def _signed(person: Person, method: str, path: str, payload_hash: str, headers: dict[str, str]) -> tuple[
        dict[str, str], bytes, str, str]:
    """A SigV4 Authorization header made here (not by botocore): the headers, the signing key,
    the date and the credential scope, for the aws-chunked bodies below."""
    import datetime as dt
    import hmac
    from urllib.parse import urlsplit
    now = dt.datetime.now(dt.UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    host = urlsplit(person.cloud.s3_url).netloc
    headers = {**headers, "host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash}
    names = sorted(headers)
    canonical = "\n".join([method, path, "", "".join(f"{n}:{headers[n]}\n" for n in names), ";".join(names),
                           payload_hash])
    scope = f"{day}/us-east-1/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + person.secret).encode()
    for part in (day, "us-east-1", "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={person.access}/{scope}, "
                                f"SignedHeaders={';'.join(names)}, Signature={signature}")
    del headers["host"]
    return headers, key, amz_date, scope


def _signed_chunks(data: list[bytes], key: bytes, amz_date: str, scope: str, seed: str, corrupt: bool = False) -> bytes:
    import hmac
    out, previous = b"", seed
    for chunk in [*data, b""]:
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, hashlib.sha256(b"").hexdigest(),
                         hashlib.sha256(chunk).hexdigest()])
        previous = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        sig = "0" * 64 if corrupt and chunk else previous
        out += f"{len(chunk):x};chunk-signature={sig}\r\n".encode() + chunk + b"\r\n"
    return out


def test_aws_chunked_bodies_with_chunk_signatures_and_trailing_checksums(s3: Any, people: dict[str, Person]) -> None:
    import base64
    import zlib
    admin = people["admin"]
    s3.create_bucket(Bucket="b-chunk")
    data = [os.urandom(65536), os.urandom(65536), os.urandom(1000)]
    whole = b"".join(data)
    streaming = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    for corrupt in (False, True):
        base = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(whole))}
        headers, key, amz_date, scope = _signed(admin, "PUT", "/b-chunk/signed", streaming, base)
        seed = headers["authorization"].rsplit("Signature=", 1)[1]
        r = httpx.put(f"{admin.cloud.s3_url}/b-chunk/signed", headers=headers,
                      content=_signed_chunks(data, key, amz_date, scope, seed, corrupt))
        if corrupt:
            assert r.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in r.text, r.text
        else:
            assert r.status_code == 200, r.text
    got = s3.get_object(Bucket="b-chunk", Key="signed")
    assert got["Body"].read() == whole and got["ContentLength"] == len(whole)
    assert "aws-chunked" not in got.get("ContentEncoding", "")
    # what boto3 sends over https: unsigned chunks, a CRC32 in the trailer
    crc = base64.b64encode(zlib.crc32(whole).to_bytes(4, "big")).decode()
    for value, status in ((crc, 200), ("AAAAAA==", 400)):
        body = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in data) + \
            f"0\r\nx-amz-checksum-crc32:{value}\r\n\r\n".encode()
        headers, *_ = _signed(admin, "PUT", "/b-chunk/trailer", "STREAMING-UNSIGNED-PAYLOAD-TRAILER", {
            "content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(whole)),
            "x-amz-trailer": "x-amz-checksum-crc32", "x-amz-sdk-checksum-algorithm": "CRC32"})
        r = httpx.put(f"{admin.cloud.s3_url}/b-chunk/trailer-{status}", headers=headers, content=body)
        assert r.status_code == 403 and "SignatureDoesNotMatch" in r.text  # the path is signed
        headers, *_ = _signed(admin, "PUT", f"/b-chunk/trailer-{status}", "STREAMING-UNSIGNED-PAYLOAD-TRAILER", {
            "content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(whole)),
            "x-amz-trailer": "x-amz-checksum-crc32", "x-amz-sdk-checksum-algorithm": "CRC32"})
        r = httpx.put(f"{admin.cloud.s3_url}/b-chunk/trailer-{status}", headers=headers, content=body)
        assert r.status_code == status, r.text
        if status == 400:
            assert "<Code>BadDigest</Code>" in r.text
    assert s3.get_object(Bucket="b-chunk", Key="trailer-200")["Body"].read() == whole
    # signed chunks and a signed trailer (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER)
    import hmac
    for trailer_ok in (True, False):
        headers, key, amz_date, scope = _signed(admin, "PUT", "/b-chunk/signed-trailer",
                                                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", {
                                                    "content-encoding": "aws-chunked",
                                                    "x-amz-decoded-content-length": str(len(whole)),
                                                    "x-amz-trailer": "x-amz-checksum-crc32"})
        seed = headers["authorization"].rsplit("Signature=", 1)[1]
        chunks = _signed_chunks(data, key, amz_date, scope, seed)
        last = chunks.rsplit(b"chunk-signature=", 1)[1][:64].decode()
        trailer = f"x-amz-checksum-crc32:{crc}\n".encode()
        sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, last, hashlib.sha256(trailer).hexdigest()])
        tsig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest() if trailer_ok else "0" * 64
        body = chunks[:-2] + trailer.replace(b"\n", b"\r\n") + f"x-amz-trailer-signature:{tsig}\r\n\r\n".encode()
        r = httpx.put(f"{admin.cloud.s3_url}/b-chunk/signed-trailer", headers=headers, content=body)
        assert r.status_code == (200 if trailer_ok else 403), r.text
    assert s3.get_object(Bucket="b-chunk", Key="signed-trailer")["Body"].read() == whole
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="b-chunk")["Contents"]] == [
        "signed", "signed-trailer", "trailer-200"]
    # a hex x-amz-content-sha256 that is not the body's
    headers, *_ = _signed(admin, "PUT", "/b-chunk/liar", hashlib.sha256(b"other").hexdigest(), {})
    r = httpx.put(f"{admin.cloud.s3_url}/b-chunk/liar", headers=headers, content=b"this body")
    assert r.status_code == 400 and "XAmzContentSHA256Mismatch" in r.text


def test_keys_with_awkward_characters_sign_and_round_trip(s3: Any, people: dict[str, Person]) -> None:
    s3.create_bucket(Bucket="b-names")
    v2 = people["admin"].client(signature_version="s3")
    keys = ["a+b", "sp ace/x", "ünï/ßé", "q?x=y&z", "~tilde*()!'", "dir//double", "percent%20literal"]
    for key in keys:
        s3.put_object(Bucket="b-names", Key=key, Body=key.encode())
        assert s3.get_object(Bucket="b-names", Key=key)["Body"].read() == key.encode()
        assert v2.get_object(Bucket="b-names", Key=key)["Body"].read() == key.encode()
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "b-names", "Key": key})
        assert httpx.get(url).content == key.encode(), key
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="b-names")["Contents"]]
    assert sorted(listed) == sorted(keys)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="b-names", Prefix="ünï/")["Contents"]] == ["ünï/ßé"]


def test_bad_requests_get_s3_errors_never_a_500(s3: Any, people: dict[str, Person]) -> None:
    url = people["admin"].cloud.s3_url
    s3.create_bucket(Bucket="b-bad")
    s3.put_object(Bucket="b-bad", Key="k", Body=b"x")
    cases: list[tuple[str, str, dict[str, str]]] = [
        ("GET", "/b-bad", {"Authorization": "AWS4-HMAC-SHA256 Credential=x/y, SignedHeaders=host, Signature=0"}),
        ("GET", "/b-bad", {"Authorization": "AWS nocolon"}),
        ("GET", "/b-bad", {"Authorization": "Bearer abc"}),
        ("GET", "/b-bad?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=zz", {}),
        ("GET", "/b-bad?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2Fb&X-Amz-Date=bad&X-Amz-Expires=5"
         "&X-Amz-SignedHeaders=host&X-Amz-Signature=00", {}),
        ("GET", "/b-bad?AWSAccessKeyId=x&Expires=notanumber&Signature=y", {}),
        ("GET", "/b-bad/k?" + "&".join(f"p{i}=1" for i in range(100)), {}),
        ("GET", "/" + "b" * 300, {}),
        ("PATCH", "/b-bad/k", {}),
    ]
    for method, path, headers in cases:
        r = httpx.request(method, url + path, headers=headers)
        assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text)
        assert "<Error>" in r.text and "<RequestId>" in r.text, r.text
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket="b-bad", Key="k", UploadId="f" * 32, PartNumber=1, Body=b"x")
    assert code(exc) == "NoSuchUpload"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="b-bad", Key="k" * 1025, Body=b"x")
    assert code(exc) == "KeyTooLongError"
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_acl(Bucket="b-bad")
    assert code(exc) == "NotImplemented"
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket="Bad_Name")
    assert code(exc) == "InvalidBucketName"


def test_a_deleted_ec2_credential_stops_signing_at_once(scloud: Cloud, people: dict[str, Person]) -> None:
    token, body = scloud.token()
    user_id, headers = body["user"]["id"], {"X-Auth-Token": token}
    r = httpx.post(f"{scloud.url}/users/{user_id}/credentials/OS-EC2", headers=headers,
                   json={"tenant_id": people["admin"].project_id})
    assert r.status_code == 201, r.text
    cred = r.json()["credential"]
    client = people["admin"].client(access=cred["access"], secret=cred["secret"])
    assert isinstance(client.list_buckets()["Buckets"], list)
    r = httpx.delete(f"{scloud.url}/users/{user_id}/credentials/OS-EC2/{cred['access']}", headers=headers)
    assert r.status_code == 204
    with pytest.raises(ClientError) as exc:
        client.list_buckets()
    assert code(exc) == "InvalidAccessKeyId"


def test_s3_requests_are_counted_in_the_metrics_by_shape(scloud: Cloud, s3: Any) -> None:
    bucket = f"met-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="secret-name", Body=b"x")
    s3.get_bucket_versioning(Bucket=bucket)
    metrics = httpx.get(f"http://127.0.0.1:{scloud.metrics_port}/metrics").text
    for route, method, status in (("/{bucket}", "PUT", 200), ("/{bucket}/{key}", "PUT", 200),
                                  ("/{bucket}?versioning", "GET", 200)):
        assert (f'cumulo_http_requests_total{{method="{method}",route="{route}",service="s3",status="{status}"}}'
                in metrics), route
    assert bucket not in metrics and "secret-name" not in metrics  # shapes, not names
