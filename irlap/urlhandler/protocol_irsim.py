"""``irsim://MEDIUM[?options]``: a serial port on the emulated infrared medium (see irlap.emulator.medium).

Options: ``dongle=NAME`` (the emulated dongle model, default plain), ``devices=N`` or ``devices=KIND,...``
(virtual devices placed on the medium when it is made: N plain ones, or one per kind named, e.g.
``devices=phone,echo``), ``ber=X``, ``seed=K``, ``outage=START:SECONDS`` (repeatable), ``nickname=...`` for the
plain devices' name prefix, ``pace=F`` (fraction of the line time a byte takes: 1 real time, 0 instant, for
bulk tests). Each open makes a new dongle on MEDIUM.
"""

from __future__ import annotations

import urllib.parse

from serial.serialutil import PortNotOpenError, SerialBase, SerialException, SerialTimeoutException

from irlap.emulator.medium import Endpoint, MediumOptions, get_medium
from irlap.emulator.models import MODELS


def parse_url(url: str) -> tuple[str, dict]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "irsim":
        raise SerialException(f"expected irsim://MEDIUM[?dongle=NAME&devices=N&ber=X&seed=K], got {url!r}")
    name = (parts.netloc + parts.path).strip("/") or "default"
    options: dict = {"dongle": "plain", "devices": 0, "ber": 0.0, "seed": 0, "outages": [], "nickname": "virtual",
                     "pace": 1.0}
    try:
        for key, values in urllib.parse.parse_qs(parts.query, keep_blank_values=True).items():
            value = values[-1]
            if key == "dongle":
                if value not in MODELS:
                    raise SerialException(f"irsim: no emulated dongle {value!r}; models: {', '.join(MODELS)}")
                options["dongle"] = value
            elif key == "devices":
                from irlap.emulator.virtual import parse_devices

                options["devices"] = parse_devices(value)
            elif key == "ber":
                options["ber"] = float(value)
            elif key == "seed":
                options["seed"] = int(value)
            elif key == "outage":
                for item in values:
                    start, seconds = item.split(":")
                    options["outages"].append((float(start), float(seconds)))
            elif key == "nickname":
                options["nickname"] = value
            elif key == "pace":
                options["pace"] = float(value)
            else:
                raise SerialException(
                    f"irsim: unknown option {key!r} (dongle, devices, ber, seed, outage, nickname, pace)")
    except ValueError as exc:
        raise SerialException(f"irsim: bad option value in {url!r}: {exc}") from None
    if isinstance(options["devices"], int) and options["devices"] < 0 or not 0 <= options["ber"] < 1 \
            or options["pace"] < 0:
        raise SerialException("irsim: devices and pace must be >= 0 and ber in [0, 1)")
    return name, options


class Serial(SerialBase):
    """A pyserial port whose far side is an emulated dongle on an emulated medium."""

    BAUDRATES = (2400, 9600, 19200, 38400, 57600, 115200)

    def __init__(self, *args, **kwargs) -> None:
        self._endpoint: Endpoint | None = None
        super().__init__(*args, **kwargs)

    def open(self) -> None:
        if self.is_open:
            raise SerialException("port is already open")
        if self._port is None:
            raise SerialException("port must be configured before it can be used")
        name, options = parse_url(self.port)
        medium, created = get_medium(name, MediumOptions(ber=options["ber"], seed=options["seed"],
                                                         outages=options["outages"], pace=options["pace"]))
        self._endpoint = medium.attach(options["dongle"])
        if created and options["devices"]:
            from irlap.emulator.virtual import spawn_devices

            spawn_devices(name, options["devices"], prefix=options["nickname"], seed=options["seed"])
        self.is_open = True
        self._reconfigure_port()
        self._update_dtr_state()
        self._update_rts_state()

    def close(self) -> None:
        if self._endpoint is not None:
            self._endpoint.close()
            self._endpoint = None
        self.is_open = False

    def _reconfigure_port(self) -> None:
        if self._endpoint is not None:
            self._endpoint.set_baud(int(self._baudrate))

    def _update_dtr_state(self) -> None:
        if self._endpoint is not None:
            self._endpoint.set_lines(bool(self._dtr_state), bool(self._rts_state))

    def _update_rts_state(self) -> None:
        self._update_dtr_state()

    def from_url(self, url: str) -> None:
        parse_url(url)

    @property
    def in_waiting(self) -> int:
        if not self.is_open or self._endpoint is None:
            raise PortNotOpenError()
        return self._endpoint.in_waiting()

    @property
    def out_waiting(self) -> int:
        if not self.is_open or self._endpoint is None:
            raise PortNotOpenError()
        return self._endpoint.out_waiting()

    def read(self, size: int = 1) -> bytes:
        if not self.is_open or self._endpoint is None:
            raise PortNotOpenError()
        if size <= 0:
            return b""
        return self._endpoint.read(size, self._timeout)

    def cancel_read(self) -> None:
        if self._endpoint is not None:
            self._endpoint.cancel_read()

    def write(self, data) -> int:
        if not self.is_open or self._endpoint is None:
            raise PortNotOpenError()
        data = bytes(data)
        self._endpoint.write(data)
        if self._write_timeout is not None and self._write_timeout == 0 and self._endpoint.out_waiting() > 65536:
            raise SerialTimeoutException("write timeout")
        return len(data)

    def flush(self) -> None:
        if not self.is_open or self._endpoint is None:
            raise PortNotOpenError()
        self._endpoint.drain()

    def reset_input_buffer(self) -> None:
        if not self.is_open or self._endpoint is None:
            raise PortNotOpenError()
        self._endpoint.reset_input()

    def reset_output_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()

    @property
    def cd(self) -> bool:
        return True

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    def send_break(self, duration: float = 0.25) -> None:
        pass

    def _update_break_state(self) -> None:
        pass
