"""Files behind any Hadoop filesystem URI (hdfs://, s3a://, abfs://, gs://, file://).

Everything goes through the Hadoop FileSystem of the Spark driver's JVM, so a URI works exactly
when Spark itself can read it (same jars, same credentials in the Hadoop configuration). For inputs
only metadata and Parquet footers cross to Python (the executors read the data); for a warehouse
behind a URI (jobs.remote_warehouse) the driver copies its small output tables and run files.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession

from jobs.warehouse import is_data_file

_FOOTER_TAIL = 8  # 4-byte little-endian footer length + b"PAR1"


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


class HadoopFS:
    def __init__(self, spark: SparkSession) -> None:
        self._jvm = spark._jvm
        self._conf = spark._jsc.hadoopConfiguration()

    def _resolve(self, uri: str):
        path = self._jvm.org.apache.hadoop.fs.Path(uri)
        return path.getFileSystem(self._conf), path

    def _status(self, uri: str):
        """The FileStatus of uri, or None where nothing is there (one metadata call, not exists + stat)."""
        fs, path = self._resolve(uri)
        try:
            return fs.getFileStatus(path)
        except Py4JJavaError as exc:
            if _missing(exc):
                return None
            raise

    def exists(self, uri: str) -> bool:
        return self._status(uri) is not None

    def is_dir(self, uri: str) -> bool:
        status = self._status(uri)
        return bool(status is not None and status.isDirectory())

    def is_file(self, uri: str) -> bool:
        status = self._status(uri)
        return bool(status is not None and status.isFile())

    def list_dir(self, uri: str) -> list[tuple[str, bool]]:
        """(name, is_dir) of uri's children, sorted by name; [] where uri does not exist."""
        fs, path = self._resolve(uri)
        try:
            statuses = fs.listStatus(path)
        except Py4JJavaError as exc:
            if _missing(exc):
                return []
            raise
        return sorted((s.getPath().getName(), bool(s.isDirectory())) for s in statuses)

    def mkdirs(self, uri: str) -> None:
        fs, path = self._resolve(uri)
        if not fs.mkdirs(path):
            raise OSError(f"cannot create directory {uri}")

    def rename(self, src: str, dst: str) -> None:
        """Move src to dst, which must not exist (Hadoop would move src *into* an existing directory).
        Atomic on HDFS, ABFS (hierarchical namespace) and local disks; a copy on S3A and GCS."""
        fs, source = self._resolve(src)
        if self.exists(dst):
            raise FileExistsError(f"cannot move {src} to {dst}: the target exists")
        self.mkdirs(dst.rsplit("/", 1)[0])
        if not fs.rename(source, self._resolve(dst)[1]):
            raise OSError(f"cannot move {src} to {dst}")

    def delete(self, uri: str) -> None:
        """Remove uri, recursively; nothing there is fine."""
        fs, path = self._resolve(uri)
        fs.delete(path, True)

    def create_new(self, uri: str, data: bytes) -> bool:
        """Write a new file; False (and nothing written) where uri already exists. Exclusive on HDFS
        and local disks; object stores without conditional writes cannot promise it."""
        if uri.startswith("file:"):
            return _create_new_local(Path(url2pathname(urlparse(uri).path)), data)
        fs, path = self._resolve(uri)
        try:
            stream = fs.create(path, False)
        except Py4JJavaError as exc:
            if _java_class(exc) == "org.apache.hadoop.fs.FileAlreadyExistsException" or self.exists(uri):
                return False
            raise
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()
        return True

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Replace uri's content. Not atomic: create(overwrite) truncates, then writes (and HDFS shows
        a file under construction empty until it is closed), so a reader can see it empty or partial.
        A rename cannot replace a file through this API either (rename refuses an existing target),
        so readers of a rewritten file (the lease's lock) read an unparsable body again."""
        fs, path = self._resolve(uri)
        stream = fs.create(path, True)
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()

    def modified_at(self, uri: str) -> float | None:
        """Modification time in epoch seconds, or None where nothing is there."""
        status = self._status(uri)
        return None if status is None else status.getModificationTime() / 1000

    def read_bytes(self, uri: str) -> bytes | None:
        """The whole (small) file, or None where it does not exist."""
        fs, path = self._resolve(uri)
        try:
            stream = fs.open(path)
        except Py4JJavaError as exc:
            if _missing(exc):
                return None
            raise
        try:
            return bytes(stream.readAllBytes())
        finally:
            stream.close()

    def put(self, local: Path, uri: str) -> None:
        """Copy a local file or directory tree to uri, which must not exist."""
        if self.exists(uri):
            raise FileExistsError(f"cannot copy {local} to {uri}: the target exists")
        fs, path = self._resolve(uri)
        self.mkdirs(uri.rsplit("/", 1)[0])
        fs.copyFromLocalFile(False, False, self._jvm.org.apache.hadoop.fs.Path(str(Path(local).absolute())), path)

    def get(self, uri: str, local: Path) -> None:
        """Copy uri (a file or a directory tree) to the local path, which must not exist."""
        fs, path = self._resolve(uri)
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        # The raw local filesystem: no .crc side files in the local copy.
        fs.copyToLocalFile(False, path, self._jvm.org.apache.hadoop.fs.Path(str(Path(local).absolute())), True)

    def parquet_files(self, uri: str) -> list[str]:
        """The partition's `*.parquet` files, sorted (hidden `_`/`.` files such as _SUCCESS left out)."""
        fs, path = self._resolve(uri)
        names = []
        for status in fs.listStatus(path):
            name = status.getPath().getName()
            if status.isFile() and is_data_file(name):
                names.append(name)
        return [join(uri, n) for n in sorted(names)]

    def parquet_schema(self, uri: str) -> dict[str, pl.DataType]:
        """The file's columns as Polars dtypes, from its footer alone (two small reads)."""
        return dict(pl.from_arrow(self.parquet_footer(uri).schema_arrow.empty_table()).schema)

    def parquet_footer(self, uri: str) -> pq.ParquetFile:
        """The file's footer alone (two small reads), as a ParquetFile without its data."""
        fs, path = self._resolve(uri)
        size = int(fs.getFileStatus(path).getLen())
        stream = fs.open(path)
        try:
            tail = self._read(stream, size - _FOOTER_TAIL, _FOOTER_TAIL) if size >= 12 else b""
            if len(tail) != _FOOTER_TAIL or tail[4:] != b"PAR1":
                raise ValueError("not a Parquet file (no PAR1 footer)")
            footer_len = struct.unpack("<i", tail[:4])[0]
            if not 0 < footer_len <= size - 12:
                raise ValueError(f"corrupt Parquet footer length {footer_len}")
            footer = self._read(stream, size - _FOOTER_TAIL - footer_len, footer_len + _FOOTER_TAIL)
        finally:
            stream.close()
        # pyarrow locates the footer from the end: the magic header plus the tail is a valid view.
        return pq.ParquetFile(pa.BufferReader(b"PAR1" + footer))

    @staticmethod
    def _read(stream, offset: int, length: int) -> bytes:
        stream.seek(offset)
        # InputStream.readNBytes (Java 11+) returns a byte[], which py4j hands over as bytes.
        return bytes(stream.readNBytes(length))


def _create_new_local(path: Path, data: bytes) -> bool:
    # Hadoop's local filesystem checks for the file and then opens it: not exclusive. O_EXCL is.
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _java_class(exc: Py4JJavaError) -> str:
    return str(exc.java_exception.getClass().getName())


def _missing(exc: Py4JJavaError) -> bool:
    """Nothing at the path: an answer, not an error, for the lookups that ask."""
    return _java_class(exc) == "java.io.FileNotFoundException"
