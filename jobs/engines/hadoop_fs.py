"""Input partitions behind any Hadoop filesystem URI (hdfs://, s3a://, abfs://, gs://, file://).

Everything goes through the Hadoop FileSystem of the Spark driver's JVM, so a URI works exactly
when Spark itself can read it (same jars, same credentials in the Hadoop configuration). Only
metadata and Parquet footers cross to Python; the data is read by the executors.
"""

from __future__ import annotations

import struct

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import SparkSession

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

    def is_dir(self, uri: str) -> bool:
        fs, path = self._resolve(uri)
        return bool(fs.exists(path) and fs.getFileStatus(path).isDirectory())

    def is_file(self, uri: str) -> bool:
        fs, path = self._resolve(uri)
        return bool(fs.exists(path) and fs.getFileStatus(path).isFile())

    def parquet_files(self, uri: str) -> list[str]:
        """The partition's `*.parquet` files, sorted (hidden `_`/`.` files such as _SUCCESS left out)."""
        fs, path = self._resolve(uri)
        names = []
        for status in fs.listStatus(path):
            name = status.getPath().getName()
            if status.isFile() and name.endswith(".parquet") and not name.startswith(("_", ".")):
                names.append(name)
        return [join(uri, n) for n in sorted(names)]

    def parquet_schema(self, uri: str) -> dict[str, pl.DataType]:
        """The file's columns as Polars dtypes, from its footer alone (two small reads)."""
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
        schema = pq.read_schema(pa.BufferReader(b"PAR1" + footer))
        return dict(pl.from_arrow(schema.empty_table()).schema)

    @staticmethod
    def _read(stream, offset: int, length: int) -> bytes:
        stream.seek(offset)
        # InputStream.readNBytes (Java 11+) returns a byte[], which py4j hands over as bytes.
        return bytes(stream.readNBytes(length))
