"""The emulated Uwatec Smart Com, downloaded the way libdivecomputer does it (examples/uwatec_download.py)."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
import uuid
from pathlib import Path

from irsock.devices.dive import HANDSHAKE_2, MAGIC, MODEL, SmartCom, dive_timestamp, stored_dives

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "uwatec_download.py"


def run(*args: str) -> dict:
    port = f"irsim://dive-{uuid.uuid4().hex[:8]}?devices=dive"
    result = subprocess.run([sys.executable, str(SCRIPT), "--port", port, "--json", *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_stored_dive_is_downloaded_intact(tmp_path):
    out = tmp_path / "dives.bin"
    result = run("--out", str(out))
    dives = stored_dives()
    assert result["device"]["name"] == "Aladin Smart Com" and result["model"] == MODEL
    assert out.read_bytes() == b"".join(dives) and result["bytes"] == sum(len(d) for d in dives)
    assert [(d["timestamp"], d["length"], d["sha256"]) for d in result["dives"]] == [
        (dive_timestamp(d), len(d), hashlib.sha256(d).hexdigest()) for d in dives]
    assert all(d.startswith(MAGIC) for d in dives)


def test_a_fingerprint_downloads_only_the_newer_dives():
    dives = stored_dives()
    result = run("--fingerprint", str(dive_timestamp(dives[1])))
    assert [d["timestamp"] for d in result["dives"]] == [dive_timestamp(dives[2])]
    assert run("--fingerprint", str(dive_timestamp(dives[2])))["dives"] == []  # nothing new: C6 says 0


def test_commands_split_across_reads_and_unknown_bytes():
    computer = SmartCom()
    assert computer.feed(b"\x1b\x1c\x10") == b"\x01"  # the second handshake is not whole yet
    assert computer.feed(HANDSHAKE_2[2:]) == b"\x01"
    assert computer.feed(b"\x77\x10") == bytes((MODEL,))  # 0x77 is no command: dropped
    assert computer.feed(b"\x1c\x00\x00\x00\x00") == b"\x00"  # a wrong handshake is refused
    answer = computer.feed(b"\xc4" + struct.pack("<I", 0) + bytes.fromhex("10270000"))
    assert struct.unpack_from("<I", answer)[0] == len(answer) == 4 + sum(len(d) for d in stored_dives())
