"""Regenerate examples/session.raw from irlap.samples (python3 examples/make_session.py)."""

from pathlib import Path

from irlap.samples import sample_raw_line

if __name__ == "__main__":
    target = Path(__file__).with_name("session.raw")
    target.write_bytes(sample_raw_line())
    print(f"wrote {target}")
