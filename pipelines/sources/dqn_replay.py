"""Dopamine replay checkpoints: the layout of the DQN Replay Dataset (`--format dqn_replay`).

`OutOfGraphReplayBuffer.save(dir, N)` writes, per checkpoint N, gzipped files named
`<name>_ckpt.N.gz`:
    $store$_observation   .npy uint8 [capacity, H, W]: single frames (Dopamine stacks at sample time)
    $store$_action        .npy [capacity]
    $store$_reward        .npy [capacity]
    $store$_terminal      .npy [capacity]
    add_count             .npy 0-d integer (or a pickled int): rows ever added
    invalid_range         .npy, rows the sampler avoids near the cursor (not needed here)
    episode_end_indices   newer Dopamine: a pickled set of numpy ints (never read, see below)
Row i holds (o_i, a_i, r_i, terminal_i). Nothing is unpickled: `.npy` files load with
allow_pickle=False, and an integer pickle is read by walking its opcodes (`read_pickled_int`);
any other pickle is refused.

How rows become RLDS episodes:
- The buffer is circular. With add_count <= capacity the rows are 0 .. add_count-1; past
  capacity they run oldest-first from add_count % capacity, and the first episode has lost its
  start (its `starts_mid_episode` metadata is True; its first stacks are zero-padded).
- Dopamine writes stack_size-1 all-zero rows (zero frame, action, reward and terminal) before
  every episode. They are not steps. Episode boundaries are read from the arrays alone: a
  terminal row ends an episode, and so does a run of exactly stack_size-1 zero rows, which is
  how a non-terminal episode end (`episode_end=True`, e.g. a time limit) shows in the arrays.
  That is why `episode_end_indices` (a pickle of numpy scalars) is never needed.
- The final step. No row holds the observation after the last action, so one rule applies to
  every episode end: a row becomes an RLDS transition exactly when Dopamine's own sampler
  would use it. A terminal row keeps its action and reward, and the episode gets one more step
  whose observation is an all-zero frame (the padding frame Dopamine's buffer holds after a
  terminal, so the rebuilt next stack equals Dopamine's next_state), with is_terminal=True.
  The last row of a cut episode (a non-terminal end, or the end of the checkpoint) has no next
  observation, so it becomes the final step: its frame is kept, its action and reward are not
  (Dopamine never samples it either), is_terminal=False: a truncation, never a termination.
Episodes are stored as single frames with the observation field's `stack` set to stack_size
(see `rlstore.frames`). Every checkpoint is one work item; one ingest gives one version.
"""
from __future__ import annotations

import gzip
import io
import re
import struct
import zlib
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from rlstore.episode import Episode, make_episode
from rlstore.errors import BadInputError, Location
from rlstore.pipelines.notes import TRUNCATED, add_note
from rlstore.pipelines.sources.base import SourceFile, WorkItem, hash_file

STORE_PREFIX = "$store$_"
STORE_ARRAYS = ("observation", "action", "reward", "terminal")
_SIDE_FILES = ("add_count", "invalid_range", "episode_end_indices")
_CHECKPOINT_FILE = re.compile(r"^(.+)_ckpt\.(\d+)\.gz$")


def checkpoint_file(directory: str | Path, name: str, checkpoint: int) -> Path:
    return Path(directory) / f"{name}_ckpt.{checkpoint}.gz"


class DqnReplayFormat:
    name = "dqn_replay"

    def __init__(self, frame_stack: int = 4):
        if int(frame_stack) < 1:
            raise BadInputError(f"frame_stack must be at least 1, got {frame_stack}")
        self.frame_stack = int(frame_stack)

    def detect(self, path: Path) -> bool:
        if path.is_dir():
            return any(path.glob(f"{STORE_PREFIX}observation_ckpt.*.gz"))
        return path.name.startswith(STORE_PREFIX) and bool(_CHECKPOINT_FILE.match(path.name))

    def work_items(self, paths: Sequence[Path]) -> list[WorkItem]:
        checkpoints: dict[tuple[str, int], None] = {}
        for path in paths:
            files = sorted(path.iterdir()) if path.is_dir() else [path]
            for file in files:
                match = _CHECKPOINT_FILE.match(file.name)
                if match and (match.group(1).startswith(STORE_PREFIX) or match.group(1) in _SIDE_FILES):
                    checkpoints[(str(file.parent), int(match.group(2)))] = None
            if not checkpoints:
                raise BadInputError(f"no Dopamine replay checkpoint ({STORE_PREFIX}*_ckpt.N.gz files) here",
                                    Location(file=str(path)))
        items = [{"dir": directory, "checkpoint": number} for directory, number in sorted(checkpoints)]
        for item in items:
            for name in _required_files():
                if not checkpoint_file(item["dir"], name, item["checkpoint"]).is_file():
                    raise BadInputError(f"checkpoint {item['checkpoint']} is missing its {name} file",
                                        Location(file=str(checkpoint_file(item["dir"], name, item["checkpoint"])),
                                                 field=name.removeprefix(STORE_PREFIX)))
        return items

    def read(self, item: WorkItem) -> Iterator[tuple[Location, Episode]]:
        directory, number = item["dir"], item["checkpoint"]
        arrays = {name: load_array(checkpoint_file(directory, STORE_PREFIX + name, number), name)
                  for name in STORE_ARRAYS}
        add_count = load_int(checkpoint_file(directory, "add_count", number), "add_count")
        where = Location(file=str(checkpoint_file(directory, STORE_PREFIX + "observation", number)))
        yield from buffer_episodes(arrays, add_count, self.frame_stack, number, where)

    def source_files(self, item: WorkItem) -> list[SourceFile]:
        names = [STORE_PREFIX + n for n in STORE_ARRAYS] + list(_SIDE_FILES)
        paths = [checkpoint_file(item["dir"], name, item["checkpoint"]) for name in names]
        return [hash_file(path) for path in paths if path.is_file()]

    def run_metadata(self, paths: Sequence[Path]) -> dict[str, Any]:
        return {"frame_stack": self.frame_stack}


def _required_files() -> list[str]:
    return [STORE_PREFIX + name for name in STORE_ARRAYS] + ["add_count"]


def _gunzip(path: Path, field: str) -> bytes:
    try:
        with gzip.open(path, "rb") as stream:
            return stream.read()
    except EOFError:
        raise BadInputError("truncated .gz file (it ends before gzip's end-of-stream marker)",
                            Location(file=str(path), field=field)) from None
    except (OSError, zlib.error) as error:
        raise BadInputError(f"not a readable .gz file ({error})", Location(file=str(path), field=field)) from None


def load_array(path: Path, field: str) -> np.ndarray:
    """A gzipped .npy array, loaded without ever allowing pickles."""
    data = _gunzip(path, field)
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as error:
        reason = "holds an object array (it would need unpickling)" if "pickle" in str(error) else f"not a .npy array ({error})"
        raise BadInputError(reason, Location(file=str(path), field=field)) from None


def load_int(path: Path, field: str) -> int:
    """An integer side file: a 0-d integer .npy array, or a pickled int read opcode by opcode."""
    data = _gunzip(path, field)
    where = Location(file=str(path), field=field)
    if data.startswith(b"\x93NUMPY"):
        value = np.load(io.BytesIO(data), allow_pickle=False)
        if value.ndim != 0 or value.dtype.kind not in "iu":
            raise BadInputError(f"expected one integer, got a {value.dtype} array of shape {value.shape}", where)
        return int(value)
    try:
        return read_pickled_int(data)
    except ValueError as error:
        raise BadInputError(f"{error}; refusing to unpickle it", where) from None


def read_pickled_int(data: bytes) -> int:
    """The integer a pickle holds, found by walking its opcodes; nothing is ever executed.

    Accepts exactly what `pickle.dumps(some_int)` writes at any protocol: an optional PROTO
    and FRAME, one integer opcode (INT, LONG, BININT, BININT1, BININT2, LONG1, LONG4), an
    optional memo store, STOP. Anything else raises ValueError naming the opcode.
    """
    position, value = 0, None

    def take(count: int) -> bytes:
        nonlocal position
        if position + count > len(data):
            raise ValueError("the pickle ends early")
        chunk = data[position:position + count]
        position += count
        return chunk

    def line() -> bytes:
        nonlocal position
        end = data.find(b"\n", position)
        if end < 0:
            raise ValueError("the pickle ends early")
        chunk, position = data[position:end], end + 1
        return chunk

    while True:
        opcode = take(1)
        if opcode == b"\x80":  # PROTO
            take(1)
        elif opcode == b"\x95":  # FRAME
            take(8)
        elif opcode == b"\x94":  # MEMOIZE
            pass
        elif opcode in (b"q", b"r"):  # BINPUT, LONG_BINPUT
            take(1 if opcode == b"q" else 4)
        elif opcode == b"p":  # PUT
            line()
        elif value is None and opcode == b"J":
            value = struct.unpack("<i", take(4))[0]
        elif value is None and opcode == b"K":
            value = take(1)[0]
        elif value is None and opcode == b"M":
            value = struct.unpack("<H", take(2))[0]
        elif value is None and opcode in (b"\x8a", b"\x8b"):  # LONG1, LONG4
            size = take(1)[0] if opcode == b"\x8a" else struct.unpack("<i", take(4))[0]
            value = int.from_bytes(take(size), "little", signed=True)
        elif value is None and opcode in (b"I", b"L"):  # INT, LONG (protocol 0)
            text = line().rstrip(b"L")
            if text in (b"00", b"01"):
                raise ValueError("the pickle holds a bool, not an integer")
            try:
                value = int(text)
            except ValueError:
                raise ValueError("the pickle's INT opcode holds no integer") from None
        elif opcode == b"." and value is not None:
            if position != len(data):
                raise ValueError("the pickle has data after STOP")
            return value
        else:
            raise ValueError(f"the pickle holds something other than an integer (opcode {opcode!r} at byte {position - 1})")


def _zero_rows(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Rows that are exactly Dopamine's padding transition: all-zero frame, action, reward, terminal."""
    zero = ~arrays["observation"].reshape(len(arrays["observation"]), -1).any(axis=1)
    for name in ("action", "reward", "terminal"):
        zero &= ~np.asarray(arrays[name]).reshape(len(zero), -1).any(axis=1)
    return zero


def _check_arrays(arrays: dict[str, np.ndarray], add_count: int, frame_stack: int, where: Location) -> int:
    """Checks lengths, frame shape and add_count; returns the capacity."""
    lengths = {name: len(value) if value.ndim else 0 for name, value in arrays.items()}
    capacity = lengths["observation"]
    for name in STORE_ARRAYS:
        if lengths[name] != capacity:
            raise BadInputError(f"has {lengths[name]} rows but $store$_observation has {capacity} "
                                "(arrays of unequal length)",
                                where.at(file=where.file.replace(f"{STORE_PREFIX}observation", STORE_PREFIX + name),
                                         field=name))
    frames = arrays["observation"]
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise BadInputError(f"frames must be single uint8 [H, W] frames, Dopamine's layout for a stack of {frame_stack} "
                            f"built at sample time; got {frames.dtype} rows of shape {tuple(frames.shape[1:])}",
                            where.at(field="observation"))
    if add_count < 0:
        raise BadInputError(f"add_count is negative ({add_count})", where.at(field="add_count"))
    return capacity


def _row_order(add_count: int, capacity: int) -> tuple[np.ndarray, bool]:
    """Buffer rows oldest-first, and whether the buffer has wrapped."""
    if add_count <= capacity:
        return np.arange(add_count), False
    cursor = add_count % capacity
    return np.concatenate([np.arange(cursor, capacity), np.arange(cursor)]), True


def buffer_episodes(arrays: dict[str, np.ndarray], add_count: int, frame_stack: int, checkpoint: int,
                    where: Location) -> Iterator[tuple[Location, Episode]]:
    """RLDS episodes of one checkpoint's arrays, oldest first (rules in the module docstring)."""
    capacity = _check_arrays(arrays, add_count, frame_stack, where)
    order, wrapped = _row_order(add_count, capacity)
    rows = {name: np.asarray(value)[order] for name, value in arrays.items()}
    zero = _zero_rows(rows)
    terminal = rows["terminal"].astype(bool)
    padding = frame_stack - 1
    index, number, count = 0, 0, len(order)
    starts_mid = wrapped
    if wrapped:  # the cursor may have landed inside a run of padding rows
        while index < min(padding, count) and zero[index]:
            index += 1
    elif padding:
        _expect_padding(zero, 0, padding, checkpoint, where)
        index = padding
    while index < count:
        end, terminal_end = _episode_end(zero, terminal, index, padding)
        episode_where = where.at(episode=number)
        episode = _episode(rows, index, end, terminal_end, checkpoint, starts_mid)
        if end == count - 1 and not terminal_end:
            add_note(episode, TRUNCATED, f"checkpoint {checkpoint} ends inside this episode")
        yield episode_where, episode
        starts_mid = False
        number += 1
        index = end + 1
        if index < count:
            _expect_padding(zero, index, padding, checkpoint, where.at(episode=number))
            index += padding


def _episode_end(zero: np.ndarray, terminal: np.ndarray, start: int, padding: int) -> tuple[int, bool]:
    """(last row of the episode starting at `start`, whether it ended in a terminal)."""
    count = len(zero)
    for row in range(start, count):
        if terminal[row]:
            return row, True
        if padding and row + 1 < count and zero[row + 1] and not zero[row] and _zero_run(zero, row + 1) == padding:
            return row, False
    return count - 1, False


def _zero_run(zero: np.ndarray, start: int) -> int:
    stop = start
    while stop < len(zero) and zero[stop]:
        stop += 1
    return stop - start


def _expect_padding(zero: np.ndarray, start: int, padding: int, checkpoint: int, where: Location) -> None:
    found = _zero_run(zero, start) if padding else 0
    if found != padding:
        raise BadInputError(f"checkpoint {checkpoint}: expected Dopamine's {padding} all-zero padding rows before an "
                            f"episode for a frame stack of {padding + 1}, found {found} (is --frame-stack right?)",
                            where.at(field="observation"))


def _episode(rows: dict[str, np.ndarray], start: int, end: int, terminal: bool, checkpoint: int,
             starts_mid: bool) -> Episode:
    frames = rows["observation"][start:end + 1]
    action = np.asarray(rows["action"][start:end + 1])
    reward = np.asarray(rows["reward"][start:end + 1], np.float32)
    if terminal:  # one more step: the zero frame that follows a terminal row in Dopamine's buffer
        frames = np.concatenate([frames, np.zeros_like(frames[:1])])
        action = np.concatenate([action, np.zeros_like(action[:1])])
        reward = np.concatenate([reward, np.zeros(1, np.float32)])
    discount = np.ones(len(frames), np.float32)
    if terminal:
        discount[-2] = 0.0
    return make_episode(frames, action, reward, discount, terminal,
                        episode_metadata={"checkpoint": np.int64(checkpoint), "starts_mid_episode": np.bool_(starts_mid)})
