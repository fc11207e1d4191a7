"""One storage layer for local paths and ``s3://`` URIs, on pyarrow filesystems.

Every stage takes and returns URIs (``results/run1`` or ``s3://bucket/prefix``); this module is
the only place that knows the difference. S3 credentials come from the standard boto3 chain
(environment, shared config/credentials files, SSO, instance/container roles) and are handed to
pyarrow's S3 filesystem; they are never logged. ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``
point it at an S3-compatible server (MinIO, moto, ...).

Writes are atomic: a local file is written next to its target and renamed over it; an S3 object
appears only when its upload (single or multipart) completes.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import posixpath
import uuid
from pathlib import Path
from typing import Any, Iterator

import pyarrow.fs as pafs

from emojiray.errors import EmojirayError


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def join(uri: str, *parts: str) -> str:
    uri = str(uri)
    if is_s3(uri):
        return "s3://" + posixpath.join(uri[len("s3://"):].rstrip("/"), *parts)
    return os.path.join(uri, *parts)


def absolute(uri: str) -> str:
    """A local path made absolute (processes that change directory, like Tune trials, still find
    it); an ``s3://`` URI unchanged, once checked (one line for ``s3://`` with no bucket, or a
    mistyped scheme like ``s3:/bucket`` or ``S3://bucket``, which would be a local folder)."""
    uri = str(uri)
    if uri[:3].lower() == "s3:" and not is_s3(uri):
        raise EmojirayError(f"bad S3 URI {uri!r}: expected s3://bucket/prefix")
    if is_s3(uri):
        _s3_path(uri)
        return uri
    return os.path.abspath(uri)


def _s3_path(uri: str) -> str:
    """``bucket/prefix`` of an ``s3://`` URI, or one line saying it is malformed."""
    path = uri[len("s3://"):].rstrip("/")
    if not path or path.startswith("/") or "//" in path:
        raise EmojirayError(f"bad S3 URI {uri!r}: expected s3://bucket/prefix")
    return path


def cache_dir(name: str):
    """``$EMOJIRAY_CACHE/<name>`` (default ``~/.cache/emojiray/<name>``): this machine's caches."""
    from pathlib import Path

    root = os.environ.get("EMOJIRAY_CACHE") or os.path.join(Path.home(), ".cache", "emojiray")
    return Path(root) / name


def parent(uri: str) -> str:
    uri = str(uri).rstrip("/")
    if is_s3(uri):
        return "s3://" + posixpath.dirname(uri[len("s3://"):])
    return os.path.dirname(uri) or "."


def basename(uri: str) -> str:
    return posixpath.basename(str(uri).rstrip("/"))


@functools.lru_cache(maxsize=1)
def _boto3_session():
    try:
        import boto3
    except ImportError:  # pragma: no cover - boto3 is a dependency
        raise EmojirayError("s3:// URIs need boto3: pip install boto3") from None
    return boto3.Session()


@functools.lru_cache(maxsize=16)
def _s3_for(endpoint: str, region: str, access_key: str, secret_key: str, token: str) -> pafs.S3FileSystem:
    kwargs: dict[str, Any] = {"region": region}
    if access_key:
        kwargs.update(access_key=access_key, secret_key=secret_key)
        if token:
            kwargs["session_token"] = token
    else:
        kwargs["anonymous"] = True
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        kwargs.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
    return pafs.S3FileSystem(**kwargs)


def _s3_filesystem(endpoint: str, region: str) -> pafs.S3FileSystem:
    """An S3 filesystem with the boto3 chain's current credentials.

    Refreshable credentials (SSO, instance and container roles) are re-read on every call, so
    a long job never holds expired keys; the filesystem is reused while they stay the same.
    """
    session = _boto3_session()
    creds = session.get_credentials()
    frozen = creds.get_frozen_credentials() if creds is not None else None
    return _s3_for(endpoint, region or session.region_name or "us-east-1",
                   frozen.access_key if frozen else "", frozen.secret_key if frozen else "",
                   (frozen.token or "") if frozen else "")


def _clear_s3_cache() -> None:
    """Forget the boto3 session and filesystems (after the environment's credentials changed)."""
    _boto3_session.cache_clear()
    _s3_for.cache_clear()


_s3_filesystem.cache_clear = _clear_s3_cache  # type: ignore[attr-defined]


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem for a URI and the path inside it."""
    uri = str(uri)
    if is_s3(uri):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
        return _s3_filesystem(endpoint, region), _s3_path(uri)
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def _os_error(action: str, uri: str, exc: OSError) -> EmojirayError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return EmojirayError(f"cannot {action} {uri}: {reason}")


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    try:
        return fs.get_file_info(path).type != pafs.FileType.NotFound
    except OSError as exc:
        raise _os_error("reach", uri, exc) from None


def is_dir(uri: str) -> bool:
    fs, path = filesystem(uri)
    try:
        return fs.get_file_info(path).type == pafs.FileType.Directory
    except OSError as exc:
        raise _os_error("reach", uri, exc) from None


def makedirs(uri: str) -> None:
    fs, path = filesystem(uri)
    try:
        fs.create_dir(path, recursive=True)
    except OSError as exc:
        raise _os_error("create", uri, exc) from None


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:
        raise EmojirayError(f"not found: {uri}") from None
    except OSError as exc:
        raise _os_error("read", uri, exc) from None


def read_text(uri: str) -> str:
    try:
        return read_bytes(uri).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EmojirayError(f"{uri} is not UTF-8 text: {exc.reason}") from None


def read_json(uri: str) -> Any:
    try:
        return json.loads(read_text(uri))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EmojirayError(f"{uri} is not valid JSON: {exc}") from None


def write_bytes(uri: str, data: bytes) -> str:
    """Write ``data`` to ``uri`` atomically (readers see the old file or the whole new one)."""
    fs, path = filesystem(uri)
    try:
        if is_s3(uri):
            with fs.open_output_stream(path) as f:  # the object appears only when the upload completes
                f.write(data)
            return uri
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        raise _os_error("write", uri, exc) from None
    return uri


def write_text(uri: str, text: str) -> str:
    return write_bytes(uri, text.encode("utf-8"))


def finite_json(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None: JSON has no NaN, and a bare ``NaN``
    in a metrics file breaks strict readers (jq, browsers, other languages)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def claim_output(out: str, record: str, inputs: dict[str, str], force: bool = False) -> None:
    """Refuse, in one line, to write a result into ``out`` over the result of other inputs.
    ``out/record`` is the JSON summary a command writes there last, naming its inputs (URIs); a
    summary that names another one of ``inputs`` (compared as absolute paths) is replaced only
    with ``force``. The same inputs again (a re-measurement) replace it."""
    path = join(out, record)
    if force or not exists(path):
        return
    try:
        old = read_json(path)
    except EmojirayError:
        old = None
    if not isinstance(old, dict):
        raise EmojirayError(f"{path} is not an emojiray result: choose another --out or pass --force to replace it")
    for key, uri in inputs.items():
        before = old.get(key)
        if isinstance(before, str) and absolute(before) != absolute(uri):
            raise EmojirayError(f"{out} holds the {record} of another {key} ({before}): choose another --out or "
                                f"pass --force to replace it")


def write_json(uri: str, obj: Any) -> str:
    """Write ``obj`` as indented JSON (atomically); NaN and infinities become null."""
    return write_text(uri, json.dumps(finite_json(obj), indent=2, sort_keys=False, allow_nan=False) + "\n")


def list_files(uri: str, recursive: bool = True) -> list[str]:
    """URIs of the files under a directory/prefix (empty if it does not exist)."""
    fs, path = filesystem(uri)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=recursive, allow_not_found=True))
    except OSError as exc:
        raise _os_error("list", uri, exc) from None
    base = str(uri).rstrip("/")
    out = []
    for info in infos:
        if info.type == pafs.FileType.File:
            rel = posixpath.relpath(info.path, path) if not is_s3(uri) else info.path[len(path) + 1:]
            out.append(join(base, *rel.split("/")))
    return sorted(out)


def delete(uri: str) -> None:
    fs, path = filesystem(uri)
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            fs.delete_dir(path)
        elif info.type == pafs.FileType.File:
            fs.delete_file(path)
    except OSError as exc:
        raise _os_error("delete", uri, exc) from None


def open_input(uri: str) -> io.RawIOBase:
    fs, path = filesystem(uri)
    try:
        return fs.open_input_file(path)
    except FileNotFoundError:
        raise EmojirayError(f"not found: {uri}") from None
    except OSError as exc:
        raise _os_error("read", uri, exc) from None


def iter_chunks(uri: str, chunk: int = 1 << 20) -> Iterator[bytes]:
    with open_input(uri) as f:
        while True:
            block = f.read(chunk)
            if not block:
                return
            yield block
