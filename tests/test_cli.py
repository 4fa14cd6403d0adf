"""The `irda trace` commands end to end, including every way the input can be wrong."""

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from irlap.frames import build
from irlap.pcap import PcapWriter, read_pcap
from irlap.samples import sample_raw_line, sample_session
from irsock.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "session.raw"


def test_example_file_is_current():
    """examples/session.raw is what examples/make_session.py makes (regenerate it if this fails)."""
    assert EXAMPLE.read_bytes() == sample_raw_line()


def test_convert_reports_counts(tmp_path, capsys):
    out = tmp_path / "s.pcap"
    assert main(["trace", "convert", str(EXAMPLE), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{len(sample_session())} frames written" in text
    assert "1 bad FCS" in text and "3 garbage bytes" in text
    records = list(read_pcap(out))
    assert [r.data for r in records] == [build(s.frame) for s in sample_session()]
    assert all(r.incoming for r in records)
    times = [r.time for r in records]
    assert times == sorted(times) and times[0] > 0


def test_convert_json_and_outgoing(tmp_path, capsys):
    raw = tmp_path / "line.raw"
    raw.write_bytes(b"\xc0\x55\x7d\xc1" + sample_raw_line() + b"\xc0" + b"\x00" * 5000 + b"\xc1" + b"\xc0\x55")
    out = tmp_path / "s.pcap"
    assert main(["trace", "convert", str(raw), "-o", str(out), "--direction", "out", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["good"] == len(sample_session()) and report["bad_fcs"] == 1
    assert report["aborted"] == 2 and report["oversize"] == 1
    assert all(r.outgoing for r in read_pcap(out))


def test_convert_of_noise_says_what_to_check(tmp_path, capsys):
    raw = tmp_path / "noise.raw"
    raw.write_bytes(bytes(range(0x80)))
    assert main(["trace", "convert", str(raw), "-o", str(tmp_path / "n.pcap")]) == 0
    captured = capsys.readouterr()
    assert "0 frames written" in captured.out and "raw SIR capture" in captured.err


def test_show_lines_and_json(tmp_path, capsys):
    path = tmp_path / "s.pcap"
    with PcapWriter(path) as writer:
        for sample in sample_session():
            writer.write_frame(build(sample.frame), outgoing=sample.outgoing, time=100 + sample.time)
        writer.write_log("link closed", time=101.0)
        writer.write_frame(b"\x55", outgoing=True, time=101.5)
    assert main(["trace", "show", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("  0.000000 -> XID") and "s=0" in lines[0]
    assert '"Galileo"' in lines[3] and "hint=8220" in lines[3] and "<-" in lines[3]
    [snrm] = [line for line in lines if " SNRM " in line]
    assert "new-ca=0x2a" in snrm and "data 2048 B" in snrm and "window 7" in snrm
    assert any(" I " in line and "ns=1 nr=1" in line for line in lines)
    assert "link closed" in lines[-2] and "?" in lines[-1] and "too short" in lines[-1]
    assert main(["trace", "show", str(path), "--json"]) == 0
    objects = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert objects[0]["kind"] == "XID" and objects[0]["slot"] == "0" and objects[0]["direction"] == "out"
    assert objects[3]["nickname"] == "Galileo"
    assert objects[-1]["kind"] == "?" and "error" in objects[-1]


@pytest.mark.parametrize(
    "content, words",
    [
        (None, "no such file"),
        (b"", "not a pcap file"),
        (b"hello world, this is not a capture", "magic number"),
        (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1), "not IrDA"),
    ],
)
def test_show_bad_input_is_one_line_error(tmp_path, capsys, content, words):
    path = tmp_path / "bad.pcap"
    if content is not None:
        path.write_bytes(content)
    assert main(["trace", "show", str(path)]) == 1
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and err.startswith("irda: ")


def test_convert_missing_input_and_unwritable_output(tmp_path, capsys):
    assert main(["trace", "convert", str(tmp_path / "nope.raw"), "-o", str(tmp_path / "x.pcap")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["trace", "convert", str(EXAMPLE), "-o", str(tmp_path / "no" / "dir" / "x.pcap")]) == 1
    assert "cannot write" in capsys.readouterr().err


def test_truncated_capture_exits_nonzero_without_traceback(tmp_path):
    path = tmp_path / "cut.pcap"
    with PcapWriter(path) as writer:
        writer.write_frame(b"\x55\x11", outgoing=True, time=0)
        writer.write_frame(b"\x54\x11", outgoing=False, time=1)
    path.write_bytes(path.read_bytes()[:-3])
    result = subprocess.run([sys.executable, "-m", "irsock.cli", "trace", "show", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "record 2 is truncated" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout.count("\n") == 1  # the good first record was still shown


def _leaf_commands() -> list[str]:
    from irsock.cli import _subcommands, build_parser

    commands = _subcommands(build_parser())
    groups = {name.split(" ")[0] for name in commands if " " in name}
    return [name for name in commands if name not in groups]


def test_help_lists_every_command_on_one_line_each(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 80 for line in out.splitlines()), max(out.splitlines(), key=len)
    listing = out.split("commands (")[1].splitlines()[1:]
    names = _leaf_commands()
    assert {"trace convert", "trace capture", "send", "receive", "demo", "sim link", "completion"} <= set(names)
    assert len(listing) == len(names)
    for name, line in zip(names, listing, strict=True):
        assert line.startswith(f"  {name} ") and len(line.split(name, 1)[1].strip()) > 10, line


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_naming_the_commands(shell, capsys):
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    for word in ("send", "receive", "demo", "convert", "capture", "json", "port", "dongle"):
        assert word in script, word


def test_bash_completion_completes_commands_actions_and_options(tmp_path):
    script = tmp_path / "irda.bash"
    script.write_text(subprocess.run([sys.executable, "-m", "irsock.cli", "completion", "bash"], check=True,
                                     capture_output=True, text=True).stdout)
    probe = f"""
source {script}
t() {{ COMP_WORDS=("$@"); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); COMPREPLY=()
      _shtab_irda irda "${{COMP_WORDS[-1]}}" "${{COMP_WORDS[-2]}}"; echo "${{COMPREPLY[*]}}"; }}
t irda ""
t irda trace ""
t irda send --j
t irda completion ""
"""
    lines = subprocess.run(["bash", "-c", probe], check=True, capture_output=True, text=True).stdout.splitlines()
    assert set(lines[0].split()) == {"trace", "emulate", "dongles", "udev-rule", "discover", "send", "receive",
                                     "print", "comm", "bench", "demo", "ias", "ping", "serve", "run", "sim",
                                     "completion"}
    assert lines[1:] == ["convert show capture", "--json", "bash zsh fish"]


def test_ping_waits_as_long_as_a_big_frame_takes_at_9600(capsys, monkeypatch):
    monkeypatch.delenv("IRDA_PORT", raising=False)
    # 2000 bytes at 9600 bit/s: over 2 s each way, so a fixed 2 s wait reported 100% loss
    assert main(["ping", "virtual-1", "--size", "2000", "--count", "1"]) == 0
    out = capsys.readouterr().out
    assert "2000 bytes from 0x" in out and "1 sent, 1 received, 0% loss" in out


def test_sim_link_that_loses_the_link_exits_1_and_gives_no_efficiency(capsys):
    assert main(["sim", "link", "--bytes", "20000", "--outage", "0.5:30"]) == 1
    captured = capsys.readouterr()
    assert "efficiency" not in captured.out.replace("no goodput or efficiency", "")
    assert "LINK LOST" in captured.out
    assert "the transfer failed: the link was lost after 4096 of 20000 bytes" in captured.err
    assert main(["sim", "link", "--bytes", "20000", "--outage", "0.5:30", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["link_lost"] is True
    assert main(["sim", "link", "--bytes", "20000"]) == 0
    assert "efficiency 0.9" in capsys.readouterr().out


@pytest.mark.parametrize("argv, command", [(["send", "--bogus", "x"], "send"),
                                           (["trace", "show", "x.pcap", "--bogus"], "trace show"),
                                           (["sim", "link", "--bogus"], "sim link")])
def test_an_unknown_option_shows_the_usage_of_its_command(argv, command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: irda {command} [-h]")
    assert f"irda {command}: error: unrecognized arguments: --bogus" in err
    with pytest.raises(SystemExit):
        main([*command.split(), "--help"])
    assert capsys.readouterr().out.startswith(f"usage: irda {command} [-h]")


def test_a_dongle_without_a_port_is_said_to_be_ignored(capsys, monkeypatch):
    monkeypatch.delenv("IRDA_PORT", raising=False)
    monkeypatch.delenv("IRDA_DONGLE", raising=False)
    assert main(["discover", "--dongle", "tekram", "--timeout", "0.5"]) == 0
    assert "--dongle tekram is ignored: the built-in emulator has no dongle" in capsys.readouterr().err
    monkeypatch.setenv("IRDA_DONGLE", "actisys")
    assert main(["discover", "--timeout", "0.5"]) == 0
    assert "IRDA_DONGLE actisys is ignored" in capsys.readouterr().err


def test_a_regular_file_as_port_is_not_a_serial_port_and_not_a_dialout_problem(tmp_path, capsys):
    plain = tmp_path / "notes.txt"
    plain.write_text("hello")
    assert main(["discover", "--port", str(plain)]) == 1
    err = capsys.readouterr().err
    assert f"cannot open {plain}: it is a regular file, not a serial port" in err
    assert "dialout" not in err and "ioctl" not in err
    assert main(["discover", "--port", str(tmp_path)]) == 1
    assert "it is a directory, not a serial port" in capsys.readouterr().err


def test_port_errors_give_the_errno_text_once(tmp_path, capsys, monkeypatch):
    import errno

    import serial

    missing = tmp_path / "ttyNOPE"
    assert main(["discover", "--port", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.count("No such file") + err.count("no such device") == 1 and "Errno" not in err
    assert "is the adapter plugged in?" in err and "dialout" not in err

    def denied(url, **_kwargs):  # as pyserial words it: the errno text inside its own message
        try:
            raise PermissionError(errno.EACCES, "Permission denied", url)
        except PermissionError as inner:
            raise serial.SerialException(inner.errno, f"could not open port {url}: {inner}") from None

    monkeypatch.setattr(serial, "serial_for_url", denied)
    assert main(["discover", "--port", "/dev/null"]) == 1
    err = capsys.readouterr().err
    assert err.lower().count("permission denied") == 1 and "Errno" not in err
    assert "dialout group" in err


def test_ias_to_an_address_discovery_never_saw_says_so(capsys, monkeypatch):
    monkeypatch.delenv("IRDA_PORT", raising=False)
    assert main(["ias", "0x12345678", "Device", "DeviceName", "--timeout", "1"]) == 1
    err = capsys.readouterr().err
    assert "irda: 0x12345678 was not seen by discovery: is it in range? irda discover lists the devices" in err
    assert "no answer to the connection request" not in err


def test_the_builtin_emulators_devices_keep_their_address_from_run_to_run(capsys, monkeypatch):
    from irlap.emulator.virtual import device_address

    monkeypatch.delenv("IRDA_PORT", raising=False)
    seen = set()
    for _run in range(2):  # every device found has the address its nickname and the medium give, in every run
        assert main(["discover", "--timeout", "2", "--json"]) == 0
        devices = json.loads(capsys.readouterr().out)["devices"]
        assert devices and all(d["address"] == device_address("builtin", d["nickname"]) for d in devices)
        seen.update((d["address_hex"], d["nickname"]) for d in devices)
    assert ("0xf8c1a79d", "virtual-1") in seen  # the address docs/runtime.md shows
    assert device_address("builtin", "virtual-1") == 0xF8C1A79D
    assert device_address("other", "virtual-1") != 0xF8C1A79D


def _json_options() -> list[tuple[str, str]]:
    """(command, help of its --json) for every command that has --json."""
    import argparse

    from irsock.cli import build_parser

    found = []

    def walk(parser, name):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    walk(child, f"{name} {sub}".strip())
            elif "--json" in action.option_strings:
                found.append((name, action.help or ""))

    walk(build_parser(), "")
    return found


def test_every_json_option_says_whether_it_prints_one_object_or_json_lines():
    helps = dict(_json_options())
    assert {"ping", "demo", "trace capture", "discover", "sim discover", "dongles"} <= set(helps)
    for command, text in helps.items():
        lines = "JSON lines" in text.replace("with --watch, JSON lines", "")
        assert ("one JSON object" in text) != lines, (command, text)
    assert "JSON lines" in helps["trace show"] and "JSON lines" in helps["receive"]


def test_ping_demo_and_capture_print_one_json_object(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("IRDA_PORT", raising=False)
    assert main(["ping", "virtual-1", "--count", "2", "--interval", "0.1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["address_hex"] == "0xf8c1a79d" and data["sent"] == 2 and data["received"] == 2
    assert [r["seq"] for r in data["replies"]] == [0, 1] and data["rtt_ms"]["min"] > 0
    assert main(["demo", "--size", "2000", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["intact"] and data["bytes"] == 2000 and data["received_name"] == "irsock-demo.bin"
    out = tmp_path / "c.pcap"
    assert main(["trace", "capture", "-o", str(out), "--duration", "0.5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["output"] == str(out) and data["records"] >= 0


def test_sim_discover_and_discover_print_devices_alike(capsys, monkeypatch):
    monkeypatch.delenv("IRDA_PORT", raising=False)
    assert main(["sim", "discover", "--devices", "2", "--json"]) == 0
    simulated = json.loads(capsys.readouterr().out)["devices"]
    assert main(["discover", "--timeout", "2", "--json"]) == 0
    real = json.loads(capsys.readouterr().out)["devices"]
    assert simulated and real
    keys = {"address", "address_hex", "nickname", "hints", "hint_bytes", "charset"}
    for device in simulated + real:
        assert set(device) == keys and isinstance(device["address"], int)
        assert device["address_hex"] == f"0x{device['address']:08x}" and isinstance(device["hints"], list)


def test_send_imports_only_its_own_command(tmp_path):
    """irda send builds the parser of its own command group and pushes without importing the other groups, the
    daemon's client and server, asyncio support, the trace writer or the MIR/FIR codecs: every module imported is
    start-up time of every push (issue 17). A subprocess, so that nothing imported by other tests counts."""
    payload = tmp_path / "hi.txt"
    payload.write_bytes(b"hi")
    probe = ("import sys, irsock.cli\n"
             f"code = irsock.cli.main(['send', '--port', 'irsim://send-imports?devices=phone', {str(payload)!r}])\n"
             "print(code, ' '.join(sorted(name for name in sys.modules if name.startswith(('irsock.cli.', "
             "'irsock.daemon.', 'irsock.aio', 'irlap.pcap', 'irlap.fir', 'irlap.mir')))))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    code, _, imported = result.stdout.splitlines()[-1].partition(" ")
    assert code == "0", result.stdout + result.stderr
    assert imported.split() == ["irsock.cli.common", "irsock.cli.transfer"]
