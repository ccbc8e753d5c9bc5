"""Reading an offline W&B run file (``run-<id>.wandb``): a LevelDB-style log of protobuf records.

The records are W&B's own type (``wandb.proto.wandb_internal_pb2.Record``); only the framing
around them is read here, because the installed wandb (0.31) has no reader of the file that
works offline:

- ``wandb.sdk.internal.datastore.DataStore``, the Python reader ``wandb sync`` used, is gone:
  the internal process moved to the Go binary ``wandb-core``, and ``wandb/sdk/internal/`` now
  holds only ``job_builder``, ``profiler`` and ``incremental_table_util``.
- ``wandb sync`` and ``wandb beta sync`` hand the file to ``wandb-core``, which uploads it to a
  server; no option prints its records (``--dry-run`` says what would be uploaded, ``--view``
  was removed).
- ``wandb.apis.public`` queries runs on a W&B server; it does not open local files.

The framing is LevelDB's log format (32 KiB blocks of chunks: CRC, length, type full, first,
middle or last) behind W&B's 7-byte header, as W&B's own writer and the old ``DataStore``
wrote and read it; a file whose header is not W&B's stops the test, by name, rather than being
misread.
"""

import struct
import time
from pathlib import Path

BLOCK = 32768
HEADER = 7  # ":W&B", a 2-byte magic and a version byte; each chunk then has crc(4), length(2), type(1)


def records(path: Path) -> list:
    """Every ``wandb_internal_pb2.Record`` of the file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    position, pending, found = HEADER, b"", []
    while position + 7 <= len(data):
        left = BLOCK - position % BLOCK
        if left < 7:  # a block's tail too short for a chunk header is padding
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if position + 7 + length > len(data):  # a chunk still being written
            break
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 0 and length == 0:  # zeros to the end of the block (written at a flush): the next block goes on
            position += left - 7
            continue
        pending = chunk if kind in (1, 2) else pending + chunk  # full/first start a record, middle/last extend it
        if kind in (1, 4):  # full or last: the record is complete
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            found.append(record)
    return found


def finished_records(path: Path, timeout: float = 120.0) -> list:
    """The records once the file holds the run's exit record: W&B's service may still be writing
    the file after ``finish()`` has returned (seen on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while True:
        found = records(path)
        if any(record.WhichOneof("record_type") == "exit" for record in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def logged(path: Path) -> dict:
    """``history`` (every logged key), ``config`` (top-level config keys), ``group`` and ``name`` of a run file."""
    history, config, group, name = set(), set(), None, None
    for record in finished_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history |= {item.key or "/".join(item.nested_key) for item in record.history.item}
        elif kind == "run":
            group, name = record.run.run_group, record.run.display_name
            config |= {item.key or item.nested_key[0] for item in record.run.config.update}
        elif kind == "config":
            config |= {item.key or item.nested_key[0] for item in record.config.update}
    return {"history": history, "config": config, "group": group, "name": name}
