"""Where a store's bytes live: a local directory, or a bucket prefix in an object store.

The store needs few things of its storage: read, write, list, copy and delete objects, and one
create-exclusive step, the claim of `versions/<N>.json` that makes publishing atomic and gives
concurrent writers distinct versions. `LocalFileSystem` does that claim with a hard link of a
fully written file; `ObjectStore` does it with the object store's own conditional create:

- S3 (`s3://`, through fsspec/s3fs and botocore): `PutObject` with `If-None-Match: *`,
  answered `412 Precondition Failed` when the key exists;
- GCS (`gs://`, through fsspec/gcsfs): an upload with `ifGenerationMatch=0` (generation 0 means
  "no live object"), answered `412` likewise.

Object stores have no rename, no hard links and no `flock`, so a remote store stages work on the
writer's own disk or in its staging area of the bucket, and holds a lease
(`rlstore.remote_store`). Every read is retried with exponential backoff; what still fails is
one `RemoteError` naming the object's URL.

Endpoints and credentials come from each client's usual sources. S3: `AWS_ENDPOINT_URL` (an
S3-compatible server such as MinIO, or moto in the tests), `AWS_ACCESS_KEY_ID` /
`AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, instance roles. GCS: Google's application default
credentials (`GOOGLE_APPLICATION_CREDENTIALS`, `gcloud auth application-default login`, the
metadata server); `STORAGE_EMULATOR_HOST` names a GCS emulator (fake-gcs-server in the tests),
which is then spoken to without credentials.
"""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Callable, TypeVar

from rlstore.errors import StoreError

SCHEMES = ("s3", "gs")
GCS_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
READ_ATTEMPTS_ENV = "RLSTORE_READ_ATTEMPTS"
_DEFAULT_READ_ATTEMPTS = 5
_FIRST_BACKOFF_SECONDS = 0.1
T = TypeVar("T")


class RemoteError(StoreError):
    """An object store refused or failed a request; `path` is the URL it concerned."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def is_remote(root: str | os.PathLike) -> bool:
    """Whether a store root names an object store (`s3://bucket/prefix`) rather than a directory."""
    return "://" in str(root)


def split_url(url: str) -> tuple[str, str, str]:
    """`s3://bucket/some/prefix` -> ("s3", "bucket", "some/prefix"); refuses other schemes."""
    scheme, _, rest = str(url).partition("://")
    bucket, _, prefix = rest.partition("/")
    if scheme not in SCHEMES:
        hint = " (Google Cloud Storage is gs://)" if scheme == "gcs" else ""
        raise StoreError(f"{url}: unsupported store scheme {scheme + '://'!r}; supported: "
                         f"{', '.join(s + '://' for s in SCHEMES)} or a local directory{hint}")
    if not bucket:
        raise StoreError(f"{url}: no bucket named (expected {scheme}://BUCKET/PREFIX)")
    return scheme, bucket, prefix.strip("/")


class LocalFileSystem:
    """The create-exclusive step on a POSIX file system."""

    @staticmethod
    def create(path: Path, data: bytes, scratch: Path) -> bool:
        """Creates `path` holding `data` unless it exists: the data is written and fsynced under
        `scratch` (same file system) and hard-linked into place, so no reader ever sees a
        partial file and exactly one of several racing writers succeeds."""
        temporary = scratch / f".{path.name}.{uuid.uuid4().hex}"
        with open(temporary, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        finally:
            temporary.unlink()
        return True


class ObjectStore:
    """One bucket prefix of S3 (or an S3-compatible store) or GCS; keys are relative to the prefix."""

    def __init__(self, url: str):
        self.scheme, self.bucket, self.prefix = split_url(url)
        self.url = f"{self.scheme}://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self._fs = None

    # ---- addressing ---------------------------------------------------------------------------

    def url_of(self, key: str) -> str:
        return f"{self.url}/{key}" if key else self.url

    def _path(self, key: str) -> str:
        """The bucket/key path s3fs takes."""
        return "/".join(part for part in (self.bucket, self.prefix, key) if part)

    def _key(self, key: str) -> str:
        """The object key inside the bucket."""
        return "/".join(part for part in (self.prefix, key) if part)

    @property
    def fs(self):
        """The fsspec file system (s3fs or gcsfs), made on first use after checking that the
        bucket answers, so a wrong endpoint, missing credentials or a missing bucket is one
        clear error."""
        if self._fs is None:
            fs = _connect_s3() if self.scheme == "s3" else _connect_gcs()
            try:
                if self.scheme == "s3":
                    fs.call_s3("head_bucket", Bucket=self.bucket)
                else:
                    fs.call("GET", "b/{}", self.bucket, json_out=True)
            except Exception as error:  # noqa: BLE001 - every failure becomes one line naming the bucket
                raise RemoteError(f"{self.scheme}://{self.bucket}", _explain(error, bucket=True)) from None
            self._fs = fs
        return self._fs

    # ---- reading ------------------------------------------------------------------------------

    def read(self, key: str) -> bytes:
        """The object's bytes (retried with backoff); FileNotFoundError if there is none."""
        return self._retried(key, lambda: self.fs.cat_file(self._path(key)))

    def read_if_exists(self, key: str) -> bytes | None:
        try:
            return self.read(key)
        except FileNotFoundError:
            return None

    def download(self, key: str, local: Path) -> None:
        """Copies the object to `local` (retried with backoff; a failed attempt leaves no file)."""
        def attempt() -> None:
            try:
                self.fs.get_file(self._path(key), str(local))
            except BaseException:
                local.unlink(missing_ok=True)
                raise
        self._retried(key, attempt)

    def exists(self, key: str) -> bool:
        return self._call(key, lambda: self.fs.exists(self._path(key)))

    def list(self, key: str) -> list[str]:
        """Names of the direct children of `key/` (objects and common prefixes); [] if none."""
        def listing() -> list[str]:
            try:
                entries = self.fs.ls(self._path(key), detail=False, refresh=True)
            except FileNotFoundError:
                return []
            return sorted({entry.rstrip("/").rsplit("/", 1)[-1] for entry in entries} - {""})
        return self._retried(key, listing)

    def modified(self, key: str) -> float | None:
        """The object's last-modified time by the server's clock (seconds since the epoch)."""
        try:
            info = self._call(key, lambda: self.fs.info(self._path(key), refresh=True))
        except FileNotFoundError:
            return None
        stamp = info.get("LastModified") or info.get("mtime")  # s3fs, gcsfs
        return stamp.timestamp() if stamp is not None else None

    # ---- writing ------------------------------------------------------------------------------

    def write(self, key: str, data: bytes) -> None:
        """Creates or replaces the object (a single PUT: readers see the old or the new bytes)."""
        self._call(key, lambda: self.fs.pipe_file(self._path(key), data))

    def upload(self, local: Path, key: str) -> None:
        self._call(key, lambda: self.fs.put_file(str(local), self._path(key)))

    def copy(self, source: str, target: str) -> None:
        """Copies an object inside the bucket, server-side: its bytes do not pass through here."""
        self._call(target, lambda: self.fs.cp_file(self._path(source), self._path(target)))

    def create(self, key: str, data: bytes) -> bool:
        """Creates the object unless it exists (S3 `If-None-Match: *`, GCS `ifGenerationMatch=0`);
        False if another writer created it first. The one create-exclusive step of a remote store."""
        def put() -> bool:
            try:
                if self.scheme == "s3":
                    self.fs.call_s3("put_object", Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
                else:
                    self.fs.pipe_file(self._path(key), data, mode="create")  # gcsfs: ifGenerationMatch=0
            except FileExistsError:  # gcsfs's 412
                return False
            except Exception as error:  # noqa: BLE001 - s3fs wraps the 412 in an OSError
                if _status(error) in (409, 412):  # 409: a concurrent conditional PUT is in flight
                    return False
                raise
            return True
        return self._call(key, put)

    def remove(self, key: str) -> None:
        """Deletes one object or everything under `key/`; gone already is fine."""
        def delete() -> None:
            try:
                self.fs.rm(self._path(key), recursive=True)
            except FileNotFoundError:
                pass
        self._call(key, delete)

    # ---- errors and retries -------------------------------------------------------------------

    def _call(self, key: str, operation: Callable[[], T]) -> T:
        """Runs one request; a failure other than a missing object is a RemoteError naming it."""
        try:
            return operation()
        except (FileNotFoundError, RemoteError):
            raise
        except Exception as error:  # noqa: BLE001
            raise RemoteError(self.url_of(key), _explain(error)) from None

    def _retried(self, key: str, operation: Callable[[], T]) -> T:
        """Runs a read, retrying transient failures with exponential backoff (0.1 s, 0.2 s, ...)."""
        attempts = max(1, int(os.environ.get(READ_ATTEMPTS_ENV, _DEFAULT_READ_ATTEMPTS)))
        for attempt in range(attempts):
            try:
                return operation()
            except (FileNotFoundError, RemoteError):
                raise
            except Exception as error:  # noqa: BLE001
                if not _transient(error) or attempt == attempts - 1:
                    tries = f" after {attempt + 1} attempts" if attempt else ""
                    raise RemoteError(self.url_of(key), f"cannot read{tries}: {_explain(error)}") from None
                time.sleep(_FIRST_BACKOFF_SECONDS * 2 ** attempt)
        raise AssertionError("unreachable")


def _connect_s3():
    import s3fs

    # No listing cache: other writers change the bucket; a stale listing would hide versions.
    fs = s3fs.S3FileSystem(use_listings_cache=False, skip_instance_cache=True,
                           config_kwargs={"retries": {"max_attempts": 2, "mode": "standard"},
                                          "connect_timeout": 5, "read_timeout": 30})
    fs.retries = 2  # s3fs's own retries kept few: `_retried` is the read retry with backoff that counts
    return fs


def _connect_gcs():
    # gcsfs's core class: `gcsfs.GCSFileSystem` is, by default, an experimental subclass that
    # first asks over gRPC whether a bucket is zonal, which an emulator never answers (60 s each).
    from gcsfs.core import GCSFileSystem

    token = "anon" if os.environ.get(GCS_EMULATOR_ENV) else None  # emulators take no credentials
    return GCSFileSystem(token=token, use_listings_cache=False, skip_instance_cache=True, requests_timeout=30)


def _status(error: BaseException) -> int | None:
    """The HTTP status behind a botocore or gcsfs error, also when s3fs wrapped it in an OSError."""
    for candidate in (error, error.__cause__, error.__context__):
        # gcsfs's HttpError carries the status in `code`; aiohttp's payload errors have a `code`
        # too (400), for what is a connection cut mid-transfer, so only HttpError's counts.
        code = getattr(candidate, "code", None)
        if type(candidate).__name__ == "HttpError" and isinstance(code, int):
            return code
        response = getattr(candidate, "response", None)
        if isinstance(response, dict):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status:
                return int(status)
    text = str(error)
    for status in (409, 412):
        if f"({status})" in text or "PreconditionFailed" in text and status == 412:
            return status
    return None


def _chain(error: BaseException) -> list[BaseException]:
    chain, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def _transient(error: BaseException) -> bool:
    """Network trouble worth another try, as opposed to an answer (denied, missing, bad request)."""
    if isinstance(error, PermissionError):
        return False
    status = _status(error)
    return status is None or status >= 500 or status == 429


def _explain(error: BaseException, bucket: bool = False) -> str:
    """One line for what went wrong, in the words a user can act on."""
    names = {type(e).__name__ for e in _chain(error)}
    if names & {"NoCredentialsError", "PartialCredentialsError"}:
        return ("no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or AWS_PROFILE)")
    if names & {"DefaultCredentialsError", "RefreshError"}:
        return ("no Google credentials found (set GOOGLE_APPLICATION_CREDENTIALS, or run "
                "`gcloud auth application-default login`)")
    if names & {"EndpointConnectionError", "ConnectionRefusedError", "ClientConnectorError",
                "ConnectTimeoutError", "ClientConnectionError", "ServerDisconnectedError"}:
        variable = "AWS_ENDPOINT_URL" if "EndpointConnectionError" in names or not os.environ.get(GCS_EMULATOR_ENV) \
            else GCS_EMULATOR_ENV
        endpoint = os.environ.get(variable) or "the default endpoint"
        return f"cannot connect to {endpoint} (is the endpoint right and the server up? {variable} sets it)"
    status = _status(error)
    if bucket and (status == 404 or isinstance(error, FileNotFoundError)):
        return "the bucket does not exist"
    if status in (401, 403) or isinstance(error, PermissionError) or str(error).startswith("Forbidden"):
        return "access denied (check the credentials and the bucket's policy)"
    message = str(error).strip().splitlines()
    return f"{type(error).__name__}: {message[0] if message else ''}".rstrip(": ")
