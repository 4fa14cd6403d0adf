"""irresponder on a microcontroller board: the responder on a machine.UART wired to an IrDA transceiver.

Copy ``irresponder.py`` and this file to the board (``mpremote cp firmware/irresponder.py
firmware/main.py :``); it starts at power-up. Settings: edit CONFIG below, or put a file
``irresponder_config.py`` next to it with ``CONFIG = {...}`` holding only what differs.

Transceivers (``"transceiver"``):

* ``"plain"``: the infrared side follows the UART's bit clock, nothing to command (a SIR encoder
  clocked from the UART, or a transceiver bench setup that only ever runs 9600). A speed change
  re-initialises the UART once the last byte has left.
* ``"mcp2120"``: Microchip MCP2120 encoder/decoder with BAUD2:BAUD0 tied high (software speed
  selection) and its MODE pin on ``"mode_pin"``: MODE low, rate byte, 0x11 (both echoed), MODE high,
  then the UART follows. The rate bytes (``MCP2120_RATES``) are the values the Linux driver is known
  to send; check them against Table 2-2 of your datasheet and your crystal.
* ``"clock16x"``: an ENDEC that needs a 16x bit clock (e.g. MCP2122, HSDL-7001) fed by a PWM pin
  (``"clock_pin"``) running at 16 x the bit rate; a speed change retunes it.

The USB REPL shows events when ``"log"`` is True; ``"led"`` lights while a link is up.
"""

import time

import machine
from irresponder import Responder

CONFIG = {
    "uart": 1,  # Raspberry Pi Pico: UART1 on GP4 (TX) / GP5 (RX)
    "tx": 4,
    "rx": 5,
    "rxbuf": 4096,  # bytes the UART driver buffers while the core is busy
    "transceiver": "plain",  # "plain", "mcp2120" or "clock16x"
    "mode_pin": None,  # mcp2120: GPIO driving MODE (low = command mode)
    "reset_pin": None,  # mcp2120: GPIO driving RESET (active low), optional
    "clock_pin": None,  # clock16x: PWM pin feeding the ENDEC's 16x clock input
    "speeds": (9600, 19200, 38400, 57600, 115200),  # what the transceiver can do (9600 is always offered)
    "nickname": "irresponder",
    "address": None,  # a fixed 32-bit device address, or None for a random one at each start
    "hints": 0x0404,  # Computer + IrCOMM
    "data_size": 1024,  # largest I-field received (64..2048): the RAM the buffers take scales with it
    "window": 7,
    "min_turnaround_us": 10000,
    "credit": 4,  # TinyTP PDUs buffered per echo connection (credit x data_size bytes at most)
    "echo_lsap": 2,
    "services": ("Echo",),
    "led": None,  # a GPIO number (or "LED") lit while connected
    "log": False,
}

MCP2120_RATES = {9600: 0x87, 19200: 0x8B, 38400: 0x85, 57600: 0x83, 115200: 0x81}

try:
    from irresponder_config import CONFIG as USER_CONFIG

    CONFIG.update(USER_CONFIG)
except ImportError:
    pass


def sleep_ms(ms):
    if hasattr(time, "sleep_ms"):
        time.sleep_ms(ms)
    else:
        time.sleep(ms / 1000)


class Clock:
    """A non-wrapping millisecond clock from ticks_ms."""

    def __init__(self):
        self.last = time.ticks_ms()
        self.ms = 0

    def now(self):
        t = time.ticks_ms()
        self.ms += time.ticks_diff(t, self.last)
        self.last = t
        return self.ms


class BoardPort:
    """The UART plus the transceiver's speed control, as the core wants it (write, set_speed)."""

    def __init__(self, uart, config, pin=None, pwm=None):
        self.uart = uart
        self.config = config
        self.kind = config["transceiver"]
        self.baud = 9600
        self.pending = 0  # bytes written since the last wait, for UARTs without flush()
        pin = pin or machine.Pin
        self.mode = None
        self.clock = None
        if self.kind == "mcp2120":
            if config["mode_pin"] is None:
                raise ValueError("the mcp2120 transceiver needs CONFIG['mode_pin']")
            self.mode = pin(config["mode_pin"], pin.OUT, value=1)  # data mode
            if config["reset_pin"] is not None:
                reset = pin(config["reset_pin"], pin.OUT, value=0)
                sleep_ms(1)
                reset.value(1)
                sleep_ms(20)  # power-up / reset time: wait before the first byte
        elif self.kind == "clock16x":
            if config["clock_pin"] is None:
                raise ValueError("the clock16x transceiver needs CONFIG['clock_pin']")
            pwm = pwm or machine.PWM
            self.clock = pwm(pin(config["clock_pin"]))
            self.clock.freq(16 * 9600)
            self.clock.duty_u16(32768)
        elif self.kind != "plain":
            raise ValueError("unknown transceiver " + str(self.kind) + ": plain, mcp2120 or clock16x")

    def write(self, buf):
        self.uart.write(buf)
        self.pending += len(buf)

    def drain(self):
        """Wait until the UART has sent everything (flush() where the port has it)."""
        if hasattr(self.uart, "flush"):
            self.uart.flush()
        elif hasattr(self.uart, "txdone"):
            while not self.uart.txdone():
                pass
        else:
            sleep_ms(self.pending * 10000 // self.baud + 2)
        self.pending = 0
        sleep_ms(1)  # the stop bit of the last byte leaves after the FIFO empties

    def set_speed(self, baud):
        self.drain()
        if self.kind == "mcp2120":
            self.mode.value(0)  # command mode: bytes are echoed, not sent as light
            sleep_ms(1)
            for byte in (MCP2120_RATES[baud], 0x11):
                self.uart.write(bytes((byte,)))
                self.drain()
                sleep_ms(2)
            sleep_ms(2)
            self.uart.read()  # the echoes
            self.uart.init(baudrate=baud)
            self.mode.value(1)
        elif self.kind == "clock16x":
            self.clock.freq(16 * baud)
            self.uart.init(baudrate=baud)
        else:
            self.uart.init(baudrate=baud)
        self.baud = baud


def make_uart(config):
    return machine.UART(config["uart"], baudrate=9600, tx=machine.Pin(config["tx"]), rx=machine.Pin(config["rx"]),
                        rxbuf=config["rxbuf"], timeout=0)


def run(config=CONFIG):
    uart = make_uart(config)
    port = BoardPort(uart, config)
    led = None
    if config["led"] is not None:
        led = machine.Pin(config["led"], machine.Pin.OUT, value=0)

    def log(text):
        print("irresponder:", text)

    responder = Responder(port, address=config["address"], nickname=config["nickname"], hints=config["hints"],
                          speeds=config["speeds"], data_size=config["data_size"], window=config["window"],
                          min_turnaround_us=config["min_turnaround_us"], credit=config["credit"],
                          echo_lsap=config["echo_lsap"], services=config["services"],
                          log=log if config["log"] else None)
    print("irresponder ready address=0x%08x nickname=%s" % (responder.address, config["nickname"]))  # noqa: UP031
    clock = Clock()
    buf = bytearray(256)
    mv = memoryview(buf)
    while True:
        waiting = uart.any()
        if waiting:
            n = uart.readinto(buf, min(waiting, len(buf)))
            if n:
                responder.feed(mv[:n], clock.now())
            continue
        now = clock.now()
        deadline = responder.next_deadline()
        if deadline is not None and deadline <= now:
            responder.poll(now)
        if led is not None:
            led.value(1 if responder.connected else 0)
        sleep_ms(1)


if __name__ == "__main__":
    run()
