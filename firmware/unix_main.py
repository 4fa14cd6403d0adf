"""irresponder on the MicroPython unix port (or CPython): the responder on a serial device path.

    micropython firmware/unix_main.py --port /dev/pts/3 --nickname bench [options]

Opens the device (a PTY from ``irda emulate --pty`` or a USB-serial adapter wired to a SIR
transceiver that follows the UART speed), puts it in raw mode at 9600 bit/s and runs the same core
as the board. A speed change after UA is a termios speed change, which the emulator's PTY bridge
follows. Prints ``irresponder ready ...`` on stdout once it listens; with ``-v`` every event goes to
stderr; with ``--stats`` a JSON line of counters follows every event.

Options (defaults in brackets):
  --port PATH             serial device [required]
  --nickname NAME         discovery nickname and IAS DeviceName [irresponder]
  --address HEX           32-bit device address [random]
  --hints HEX             hint bits, 0x0404 = Computer + IrCOMM [0x0404]
  --max-baud N            fastest speed offered, 9600..115200 [115200]
  --data-size N           largest I-field received, 64..2048 [1024]
  --window N              frames per turn the primary may send, 1..7 [7]
  --min-turn-us N         our minimum turnaround (10000 = 10 ms) [10000]
  --credit N              TinyTP credit per echo connection [4]
  --lsap N                LSAP of the TinyTP echo [2]
  --service NAME          an IAS class pointing at the echo (repeatable) [Echo]; IrDA:IrCOMM is
                          the IrCOMM loopback on LSAP 3
  --seed N                seed of the random slot choice and address
  -v / --verbose          log events to stderr
  --stats                 with -v: counters as JSON after every event
  --trace                 every chunk of bytes received and sent, in hex, to stderr
"""

import select
import sys
import time

try:
    import termios
except ImportError:  # not a POSIX system
    termios = None

sys.path.append(__file__.rsplit("/", 1)[0] if "/" in __file__ else ".")
from irresponder import Responder  # noqa: E402 - the path is set up first

# Linux termios speed codes, for ports whose termios module lacks some names (MicroPython has no B19200)
LINUX_SPEEDS = {9600: 0o15, 19200: 0o16, 38400: 0o17, 57600: 0o10001, 115200: 0o10002}
VTIME = 5
VMIN = 6
EXTPROC = 0o200000


def speed_code(baud):
    return getattr(termios, "B%d" % baud, LINUX_SPEEDS[baud])  # noqa: UP031 - MicroPython-friendly


def ticks_ms():
    try:
        return time.ticks_ms()
    except AttributeError:
        return int(time.monotonic() * 1000)


def ticks_diff(a, b):
    try:
        return time.ticks_diff(a, b)
    except AttributeError:
        return a - b


class Clock:
    """A non-wrapping millisecond clock built on ticks_ms (which wraps on MicroPython)."""

    def __init__(self):
        self.last = ticks_ms()
        self.ms = 0

    def now(self):
        t = ticks_ms()
        self.ms += ticks_diff(t, self.last)
        self.last = t
        return self.ms


class TtyPort:
    """The serial device: raw, non-blocking reads (VMIN 0), speed changes through termios."""

    def __init__(self, path, clock):
        self.file = open(path, "r+b", buffering=0)  # noqa: SIM115 - lives as long as the process
        self.fd = self.file.fileno()
        self.clock = clock
        self.baud = 9600
        self.tx_end = 0.0  # when (ms) the bytes written so far have left the line
        self.trace = False
        self.keep_lflag = 0
        if termios is not None:
            # keep EXTPROC if the PTY's other side set it: that is how the emulator's bridge learns
            # about our speed changes (MicroPython's setraw clears every local flag)
            self.keep_lflag = termios.tcgetattr(self.fd)[3] & EXTPROC
            if hasattr(termios, "setraw"):
                termios.setraw(self.fd)
            else:  # CPython keeps setraw in tty
                import tty

                tty.setraw(self.fd)
            self._apply(9600)

    def _apply(self, baud):
        attrs = termios.tcgetattr(self.fd)
        attrs[3] |= self.keep_lflag
        attrs[6][VMIN] = 0
        attrs[6][VTIME] = 0
        attrs[4] = attrs[5] = speed_code(baud)
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)

    def write(self, buf):
        if self.trace:
            sys.stderr.write("tx %d bytes at %d bit/s: %s\n" % (len(buf), self.baud, bytes(buf).hex()))  # noqa: UP031
        now = self.clock.now()
        self.file.write(buf)
        self.tx_end = max(now, self.tx_end) + len(buf) * 10000 / self.baud

    def set_speed(self, baud):
        # like a UART: the last byte must have left before the speed changes, else it is sent garbled
        wait = self.tx_end - self.clock.now()
        if wait > 0:
            time.sleep_ms(int(wait) + 2) if hasattr(time, "sleep_ms") else time.sleep((wait + 2) / 1000)
        self.baud = baud
        if termios is not None:
            self._apply(baud)

    def readinto(self, buf):
        return self.file.readinto(buf) or 0


def parse_args(argv):
    opts = {"port": None, "nickname": "irresponder", "address": None, "hints": 0x0404, "max_baud": 115200,
            "data_size": 1024, "window": 7, "min_turn_us": 10000, "credit": 4, "lsap": 2, "services": [],
            "seed": None, "verbose": False, "stats": False, "trace": False}
    names = {"--port": ("port", str), "--nickname": ("nickname", str), "--address": ("address", hexint),
             "--hints": ("hints", hexint), "--max-baud": ("max_baud", int), "--data-size": ("data_size", int),
             "--window": ("window", int), "--min-turn-us": ("min_turn_us", int), "--credit": ("credit", int),
             "--lsap": ("lsap", int), "--seed": ("seed", int)}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-v", "--verbose"):
            opts["verbose"] = True
        elif arg == "--stats":
            opts["stats"] = True
        elif arg == "--trace":
            opts["trace"] = True
        elif arg == "--service" and i + 1 < len(argv):
            opts["services"].append(argv[i + 1])
            i += 1
        elif arg in names and i + 1 < len(argv):
            key, kind = names[arg]
            opts[key] = kind(argv[i + 1])
            i += 1
        elif arg in ("-h", "--help"):
            print(__doc__)
            sys.exit(0)
        else:
            raise SystemExit("irresponder: unknown or incomplete option " + arg + " (--help lists them)")
        i += 1
    if not opts["port"]:
        raise SystemExit("irresponder: --port PATH is required")
    return opts


def hexint(text):
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def main(argv):
    opts = parse_args(argv)
    clock = Clock()
    try:
        port = TtyPort(opts["port"], clock)
    except OSError as exc:
        raise SystemExit("irresponder: cannot open " + opts["port"] + ": " + str(exc)) from None
    port.trace = opts["trace"]
    rng = None
    if opts["seed"] is not None:
        import random

        random.seed(opts["seed"])
        rng = random
    responder = None

    def log(text):
        sys.stderr.write("irresponder: " + text + "\n")
        if opts["stats"] and responder is not None:
            sys.stderr.write("stats " + stats_json(responder.stats()) + "\n")

    speeds = [s for s in (9600, 19200, 38400, 57600, 115200) if s <= opts["max_baud"]]
    responder = Responder(port, address=opts["address"], nickname=opts["nickname"], hints=opts["hints"],
                          speeds=speeds, data_size=opts["data_size"], window=opts["window"],
                          min_turnaround_us=opts["min_turn_us"], credit=opts["credit"], echo_lsap=opts["lsap"],
                          services=opts["services"] or ("Echo",), rng=rng,
                          log=log if opts["verbose"] else None)
    print("irresponder ready port=%s address=0x%08x nickname=%s lsap=%d" % (  # noqa: UP031
        opts["port"], responder.address, opts["nickname"], opts["lsap"]))
    try:
        sys.stdout.flush()
    except AttributeError:
        pass
    run(responder, port, clock, opts["trace"])


def stats_json(stats):
    return "{" + ", ".join('"%s": %d' % (k, stats[k]) for k in sorted(stats)) + "}"  # noqa: UP031


def run(responder, port, clock, trace=False):
    poller = select.poll()
    poller.register(port.file, select.POLLIN)
    buf = bytearray(512)
    mv = memoryview(buf)
    while True:
        now = clock.now()
        deadline = responder.next_deadline()
        timeout = 200 if deadline is None else max(0, min(200, deadline - now))
        events = poller.poll(timeout)
        if events:
            for _obj, flags in events:
                if flags & (select.POLLHUP | select.POLLERR) and not flags & select.POLLIN:
                    time.sleep(0.05)  # nobody on the other side of the PTY yet
            try:
                n = port.readinto(buf)
            except OSError as exc:
                sys.stderr.write("irresponder: the port failed: " + str(exc) + "\n")
                sys.exit(1)
            if n:
                if trace:
                    sys.stderr.write("rx %d bytes at %d bit/s: %s\n" % (n, port.baud, bytes(mv[:n]).hex()))  # noqa: UP031
                responder.feed(mv[:n], clock.now())
        responder.poll(clock.now())


if __name__ == "__main__":
    main(sys.argv[1:])
