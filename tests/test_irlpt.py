"""IrLPT: irda print to the emulated printer, irda receive --irlpt as a sink, and the printer personality."""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import uuid

import irsock
from irlap.emulator.virtual import devices_on
from irsock.apps import irlpt
from irsock.cli import main
from irsock.devices.printer import PRINTER_LSAP


def printer_port() -> tuple[str, str]:
    name = f"lpt-{uuid.uuid4().hex[:8]}"
    return name, f"irsim://{name}?devices=printer"


def test_irda_print_delivers_the_job_to_the_emulated_printer_once(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("IRDA_PORT", raising=False)
    job = tmp_path / "page.pcl"
    job.write_bytes(os.urandom(30_000))  # ~2.7 s at 115200: every event of the printer handled once, not again
    medium, url = printer_port()
    assert main(["print", str(job), "--port", url, "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["bytes"] == 30_000 and summary["line_rate"] == 11520 and summary["efficiency"] > 0.5
    assert "printing to" in captured.err and "'irsock printer'" in captured.err
    [printer] = devices_on(medium)
    [stored] = printer.stack.jobs
    assert bytes(stored.data) == job.read_bytes() and stored.received == 30_000
    assert stored.complete and stored.reason == "user request"


def test_print_without_a_printer_says_what_was_seen(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("IRDA_PORT", raising=False)
    job = tmp_path / "page.txt"
    job.write_text("hello\n")
    name = f"lpt-{uuid.uuid4().hex[:8]}"
    assert main(["print", str(job), "--port", f"irsim://{name}?devices=echo", "--timeout", "5"]) != 0
    err = capsys.readouterr().err
    assert "Printer" in err and "Traceback" not in err


def start_sink(interfaces, root):
    """An IrLPT sink on a new interface serving one job into ``root``: (sink, host, listener, thread, jobs)."""
    sink = interfaces("lpt-sink")
    host = interfaces("host")
    listener = irlpt.irlpt_listener(sink)
    listener.settimeout(0.5)
    jobs = []
    served = threading.Thread(target=irlpt.serve_jobs, args=(listener, root),
                              kwargs={"once": True, "report": jobs.append})
    served.start()
    return sink, host, listener, served, jobs


def test_irlpt_sink_stores_jobs_from_print_file(interfaces, tmp_path):
    sink, host, listener, served, jobs = start_sink(interfaces, tmp_path)
    payload = tmp_path / "doc.ps"
    payload.write_bytes(os.urandom(50_000))
    with irlpt.printer_socket(host) as sock:
        sock.settimeout(30)
        assert sock.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_QUERY,
                               irsock.IasQuery(sink.address, "IrLPT", "IrDA:IrLMP:LsapSel")).integer
        summary = irlpt.print_file(sock, sink.address, payload, line_rate=lambda: None, out=io.StringIO(), tty=False)
    served.join(30)
    assert summary.bytes == 50_000
    [job] = jobs
    assert job.complete and job.size == 50_000 and job.path.name == "irlpt-job-1.prn"
    assert job.path.read_bytes() == payload.read_bytes()
    assert sink.hints & 0x0800  # the Printer hint, so irda print finds it
    listener.close()


def test_a_job_cut_by_an_abort_is_kept_as_partial(interfaces, tmp_path):
    sink, host, listener, served, jobs = start_sink(interfaces, tmp_path)
    with irlpt.printer_socket(host) as sock:
        sock.settimeout(30)
        sock.connect((sink.address, "IrLPT"))
        sock.sendall(b"%!PS first page only")
        while sock.unsent():
            threading.Event().wait(0.01)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # an abort
    served.join(30)
    [job] = jobs
    assert not job.complete and job.path.name == "irlpt-job-1.partial.prn"
    assert job.path.read_bytes() == b"%!PS first page only"
    listener.close()


def test_job_names_are_never_reused(tmp_path):
    (tmp_path / "irlpt-job-1.prn").write_bytes(b"old")
    assert irlpt._free_name(tmp_path, "complete").name == "irlpt-job-2.prn"
    assert (tmp_path / "irlpt-job-1.prn").read_bytes() == b"old"


def test_the_printer_keeps_a_bounded_number_of_jobs():
    from irsock.devices import printer

    assert printer.KEPT_JOBS == 16 and printer.PRINTER_LSAP == PRINTER_LSAP == 3


def test_irda_receive_irlpt_and_irda_print_through_two_processes(tmp_path):
    """The sink and the printer client as separate programs on the two PTYs of one irda emulate."""
    emulate = subprocess.Popen([sys.executable, "-m", "irsock.cli", "emulate", "--pty", "2", "--devices", "0",
                                "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    receiver = None
    try:
        ports = json.loads(emulate.stdout.readline())["ports"]
        receiver = subprocess.Popen([sys.executable, "-m", "irsock.cli", "receive", "--irlpt", "--once", "--json",
                                     "--port", ports[0], "--nickname", "pty-printer", "--dir", str(tmp_path)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert "IrLPT printer" in receiver.stderr.readline()
        payload = tmp_path / "letter.txt"
        payload.write_bytes(b"Dear printer,\r\n" * 500)
        printed = subprocess.run([sys.executable, "-m", "irsock.cli", "print", "--port", ports[1], str(payload)],
                                 capture_output=True, text=True, timeout=120)
        assert printed.returncode == 0, printed.stderr
        assert "'pty-printer'" in printed.stdout and "printed letter.txt: 7500 bytes" in printed.stdout
        out, _err = receiver.communicate(timeout=30)
        job = json.loads(out.splitlines()[0])
        assert job["size"] == 7500 and job["complete"]
    finally:
        for process in (receiver, emulate):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(10)
    assert (tmp_path / "irlpt-job-1.prn").read_bytes() == payload.read_bytes()
