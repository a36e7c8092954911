"""The two containers a segment's shards may use, both file formats stock TFDS reads.

    tfrecord  TFRecord framing around each episode's tf.train.Example (`rlstore.tfrecord`).
    parquet   TFDS's Parquet layout (`tfds.core.file_adapters.ParquetFileAdapter`): one binary
              column `data`, one row per episode holding the same serialized Example, the
              column compressed with zstd.

Why parquet exists here: frame-stacked Atari data stored one frame per step compresses badly
frame by frame (a zlib stream per 84x84 frame cannot see its neighbours, 155 B/frame on Pong,
3.7x Dopamine's gzip of the whole frame array). With the frames stored raw in the Example and
the parquet column compressed with zstd, an episode's frames are compressed together: about
20 B/frame, half of Dopamine's gzip, and zstd inflates a frame in ~4 us where zlib took ~18.
Stock TFDS reads such a segment with plain `builder.as_dataset()` (its parquet adapter supports
tf.data and random access), so every version stays readable without rlstore.

A segment record names its container in `shard_format` (absent: tfrecord, as every segment
written before parquet existed). Shard files carry it in their TFDS names too
(`<dataset>-<split>.parquet-00000-of-00001`), which is what readers dispatch on, as TFDS does.
All segments of a version share one format: TFDS reads a version's segment directories with one
file adapter (`Store.publish` refuses a mix).
"""
from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Mapping, Sequence

TFRECORD = "tfrecord"
PARQUET = "parquet"
FORMATS = (TFRECORD, PARQUET)
PARQUET_COLUMN = "data"  # TFDS's ParquetFileAdapter._PARQUET_FIELD
ZSTD_LEVEL = 9  # measured on Pong: 21 B/frame, ~10 us/frame to compress (level 3: 36 B; 15: 19 B at 12x the time)
ROW_GROUP_BYTES = 4 << 20  # raw record bytes per row group: a reader holds one group per open file
SHUFFLE_BUFFER_BYTES = 256 << 20  # raw parquet records a reader's episode shuffle buffer may hold

_SUFFIX = re.compile(r"\.(tfrecord|parquet)-\d+(-of-\d+)?$")


def check_format(name: str) -> str:
    """`name` if it names a shard format, else ValueError listing them."""
    if name not in FORMATS:
        raise ValueError(f"shard format must be one of {', '.join(FORMATS)}, not {name!r}")
    return name


def frame_encoding(shard_format: str) -> str:
    """The TFDS Tensor encoding of single frames in shards of `shard_format`: raw in parquet (the
    zstd column compresses an episode's frames together), zlib per frame in TFRecord."""
    return "bytes" if shard_format == PARQUET else "zlib"


def segment_format(segment: Mapping[str, Any]) -> str:
    """The shard format a segment record declares (records without one are TFRecord)."""
    return segment.get("shard_format", TFRECORD)


def file_format(path: str | Path) -> str:
    """The shard format of a shard file, from its TFDS name (a pending or unnamed file: tfrecord)."""
    found = _SUFFIX.search(Path(path).name)
    return found.group(1) if found else TFRECORD


class _HashingSink:
    """A write-only stream that hashes and counts what passes through it to `stream`."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self.sha256 = hashlib.sha256()
        self.num_bytes = 0
        self.closed = False

    def write(self, data) -> int:
        view = memoryview(data)
        self._stream.write(view)
        self.sha256.update(view)
        self.num_bytes += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.num_bytes

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:  # the shard writer closes the file itself
        self.closed = True


class ParquetRecordWriter:
    """Appends episode records to a Parquet shard; the same interface as `tfrecord.RecordWriter`
    (`write`, `finish`, `sha256`, `num_records`, `num_bytes`: bytes written so far).

    Records are buffered into row groups of about `ROW_GROUP_BYTES` raw bytes, so a reader holds
    at most one group per open file, and one episode is found by reading one group.
    """

    def __init__(self, stream: BinaryIO):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._sink = _HashingSink(stream)
        self._schema = pa.schema([pa.field(PARQUET_COLUMN, pa.binary())])
        self._writer = pq.ParquetWriter(self._sink, self._schema, compression="zstd", compression_level=ZSTD_LEVEL,
                                        use_dictionary=False, write_statistics=False)
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.num_records = 0

    @property
    def sha256(self):
        return self._sink.sha256

    @property
    def num_bytes(self) -> int:
        return self._sink.num_bytes

    def write(self, record: bytes) -> None:
        self._pending.append(record)
        self._pending_bytes += len(record)
        self.num_records += 1
        if self._pending_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._pending:
            self._writer.write_table(pa.table({PARQUET_COLUMN: pa.array(self._pending, pa.binary())}),
                                     row_group_size=len(self._pending))
            self._pending, self._pending_bytes = [], 0

    def finish(self) -> None:
        """Writes the last row group and the footer; the file is complete after this."""
        self._flush()
        self._writer.close()


def _parquet_file(source: BinaryIO | str, path: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(source)
    schema = parquet.schema_arrow
    if schema.names != [PARQUET_COLUMN] or schema.field(0).type != pa.binary():
        raise ValueError(f"{path}: not a TFDS parquet shard (columns {schema.names}, expected one binary "
                         f"'{PARQUET_COLUMN}')")
    return parquet


def _parquet_records(source: BinaryIO | str, path: str, keep: Callable[[int], bool] | None) -> Iterator[bytes]:
    import pyarrow as pa

    try:
        parquet = _parquet_file(source, path)
        index = 0
        for group in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            wanted = [i for i in range(index, index + rows) if keep is None or keep(i)]
            if wanted:
                column = parquet.read_row_group(group, columns=[PARQUET_COLUMN]).column(0)
                for i in wanted:
                    yield column[i - index].as_py()
            index += rows
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"{path}: unreadable parquet shard ({error})") from None


def read_records(stream: BinaryIO, path: str, keep: Callable[[int], bool] | None = None) -> Iterator[bytes]:
    """Every episode record of one shard of either format, in order; with `keep`, only the
    records whose index passes it. Raises ValueError naming `path` on damaged data."""
    if file_format(path) == PARQUET:
        return _parquet_records(stream, path, keep)
    from rlstore import tfrecord

    return tfrecord.read_records(stream, path, keep)


def read_bytes_records(raw: bytes, path: str) -> list[bytes]:
    """Every record of a shard already read into memory (compaction checks its sha256 first)."""
    return list(read_records(io.BytesIO(raw), path))


def record_places(stream: BinaryIO, path: str) -> Iterator[int]:
    """Where each record of a shard is: a byte offset (TFRecord, from the checked headers alone)
    or a row number (parquet, from the footer alone); `read_record_at` reads one back."""
    if file_format(path) != PARQUET:
        from rlstore import tfrecord

        return tfrecord.record_offsets(stream, path)
    import pyarrow as pa

    try:
        return iter(range(_parquet_file(stream, path).metadata.num_rows))
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"{path}: unreadable parquet shard ({error})") from None


def read_record_at(stream: BinaryIO, place: int, path: str) -> bytes:
    """The one record at `place` (from `record_places`)."""
    if file_format(path) != PARQUET:
        from rlstore import tfrecord

        return tfrecord.read_record_at(stream, place, path)
    import pyarrow as pa

    try:
        parquet = _parquet_file(stream, path)
        row = place
        for group in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            if row < rows:
                return parquet.read_row_group(group, columns=[PARQUET_COLUMN]).column(0)[row].as_py()
            row -= rows
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"{path}: unreadable parquet shard ({error})") from None
    raise ValueError(f"{path}: no record at row {place}")


def bounded_shuffle_buffer(files: Sequence[str | Path], episodes: int) -> int:
    """`episodes`, or fewer if that many of these shards' records would pass SHUFFLE_BUFFER_BYTES.

    A parquet record holds its frames raw (a 500-step Pong episode is 3.5 MB, 20x its zlib
    TFRecord record), so a buffer of 256 such episodes would hold 900 MB and grow with episode
    length. The footers give the records' raw size without reading them. TFRecord shards store
    records as they are held, compressed frame by frame, and keep the buffer asked for.
    """
    parquet = [path for path in files if file_format(path) == PARQUET]
    if not parquet:
        return episodes
    import pyarrow.parquet as pq

    rows = raw = 0
    for path in parquet:
        try:
            metadata = pq.read_metadata(path)
        except (OSError, ValueError):
            continue  # the reader itself will report the file
        rows += metadata.num_rows
        raw += sum(metadata.row_group(group).total_byte_size for group in range(metadata.num_row_groups))
    if not rows or not raw:
        return episodes
    return max(1, min(episodes, SHUFFLE_BUFFER_BYTES * rows // raw))


def parquet_tf_records(name):
    """The serialized episodes of one parquet shard (`name`: a path, or a string tensor in a
    tf.data map) as a tf.data.Dataset, read by pyarrow as TFDS's parquet adapter reads it."""
    import tensorflow as tf

    def generate(path: bytes):
        path = path.decode()
        with open(path, "rb") as stream:
            yield from _parquet_records(stream, path, None)

    return tf.data.Dataset.from_generator(generate, args=(name,), output_signature=tf.TensorSpec((), tf.string))
