"""Every dongle driver against its emulated model, on a virtual clock: timelines and resulting speeds."""

import pytest

from irlap.dongles import Dongle, DongleError, dongle_names, get_dongle
from irlap.emulator.models import MODELS, make_model


class ModelPort:
    """A pyserial-like port wired to a dongle model, with a virtual clock the driver's sleep advances."""

    def __init__(self, model):
        self.model = model
        self.now = 0.0
        self._dtr = False
        self._rts = False
        self.baudrate = 9600
        self.timeline: list[tuple[float, str]] = []
        self.light: list[tuple[int | None, int, bytes]] = []

    def sleep(self, seconds):
        assert seconds >= 0
        self.now += seconds

    @property
    def dtr(self):
        return self._dtr

    @dtr.setter
    def dtr(self, value):
        self._dtr = bool(value)
        self.model.lines(self._dtr, self._rts, self.now)

    @property
    def rts(self):
        return self._rts

    @rts.setter
    def rts(self, value):
        self._rts = bool(value)
        self.model.lines(self._dtr, self._rts, self.now)

    def write(self, data):
        self.timeline.append((self.now, f"write {bytes(data).hex()} at {self.baudrate}"))
        out = self.model.uart_write(data, self.baudrate, self.now)
        self.now += len(data) * 10 / self.baudrate
        if out:
            self.light.append((self.model.ir_speed(self.now), self.baudrate, out))
        return len(data)

    def flush(self):
        pass

    def read(self, n=1):
        data = bytes(self.model.echo[:n])
        del self.model.echo[:n]
        return data

    def reset_input_buffer(self):
        self.model.echo.clear()

    def works_at(self, baud):
        """Would data written now leave as light at the UART's speed?"""
        speed = self.model.ir_speed(self.now)
        return speed is not None and (speed == 0 or speed == self.baudrate == baud)


def connect(name, model_name=None):
    port = ModelPort(make_model(model_name or name))
    driver = get_dongle(name)(port, sleep=port.sleep)
    return port, driver


def test_plain_opens_without_a_power_up_wait():
    """The 50 ms power-up wait is the dongle drivers' (issue 17: 50 ms of every command's start); plain has no
    dongle to power up, while a driver for a dongle still waits."""
    port, driver = connect("plain")
    driver.open()
    assert port.now == 0.0 and (port.dtr, port.rts) == (True, True) and port.works_at(9600)
    port, driver = connect("old_belkin", "plain")
    driver.open()
    assert port.now == pytest.approx(0.050)


def test_registry_lists_all_builtins():
    names = dongle_names()
    for name in ("plain", "tekram", "actisys", "actisys+", "esi", "girbil", "litelink", "ma600", "mcp2120",
                 "old_belkin", "toim3232", "act200l"):
        assert name in names
        assert issubclass(get_dongle(name), Dongle)
        assert name in MODELS
    with pytest.raises(DongleError, match="unknown dongle"):
        get_dongle("nosuch")


@pytest.mark.parametrize("name", [n for n in MODELS])
def test_every_driver_reaches_every_speed_on_its_model(name):
    port, driver = connect(name)
    driver.open()
    assert port.works_at(9600), port.model.log
    for baud in [*driver.speeds, 9600]:
        driver.set_speed(baud)
        port.now += 0.2  # the dongle settles
        assert port.baudrate == baud
        assert port.works_at(baud), (baud, port.model.log[-6:])
    driver.close()


@pytest.mark.parametrize("name", [n for n in MODELS])
def test_unsupported_speed_is_refused(name):
    port, driver = connect(name)
    driver.open()
    unsupported = 4000000 if 4000000 not in driver.speeds else 16000000  # the emulator's fir dongle does 4M
    with pytest.raises(DongleError, match="does not support"):
        driver.set_speed(unsupported)


def test_serial_dongles_stay_at_sir_speeds():
    """A UART cannot send MIR or FIR: every serial driver declares 115200 bit/s at most; only the emulator's
    host-framed fir dongle (not a serial adapter) declares 576000-4000000."""
    for name in MODELS:
        speeds = get_dongle(name).speeds
        if name == "fir":
            assert {576000, 1152000, 4000000} <= set(speeds)
        else:
            assert max(speeds) <= 115200, (name, speeds)


def test_tekram_timeline():
    port, driver = connect("tekram")
    driver.open()
    port.model.log.clear()
    start = port.now
    driver.set_speed(57600)
    log = [(round((t - start) * 1e6), what) for t, what in port.model.log]
    assert log == [(0, "lines 1/0"), (14, "command 11"), (151056, "lines 1/1")]
    assert port.now - start == pytest.approx(14e-6 + 10 / 9600 + 0.150 + 50e-6)


def test_girbil_and_mcp2120_switch_to_38400_for_real():
    for name in ("girbil", "mcp2120"):
        port, driver = connect(name)
        driver.open()
        driver.set_speed(38400)
        port.now += 0.2
        assert port.model.ir_speed(port.now) == 38400


def test_ma600_echo_is_checked():
    port, driver = connect("ma600", "tekram")  # an MA600 driver on a Tekram: no echo comes back
    with pytest.raises(DongleError, match="did not confirm 9600"):
        driver.open()


def test_actisys_without_plus_has_no_38400():
    port, driver = connect("actisys")
    driver.open()
    with pytest.raises(DongleError):
        driver.set_speed(38400)
    port, driver = connect("actisys+", "actisys")  # a + driver on a plain IR-220L lands elsewhere
    driver.open()
    driver.set_speed(38400)
    assert not port.works_at(38400)


def test_mcp2120_close_holds_reset():
    port, driver = connect("mcp2120")
    driver.open()
    driver.close()
    assert (port.dtr, port.rts) == (True, True) and port.model.ir_speed(port.now + 1) is None


# plain and the fir test dongle follow the UART whatever the lines and bytes say: no driver can get them wrong
@pytest.mark.parametrize("model", [n for n in MODELS if n not in ("plain", "fir")])
def test_wrong_driver_fails_like_hardware(model):
    """A driver for another dongle ends in garbage (speed mismatch) or silence at some speed."""
    for name in MODELS:
        # compatible pairs; the fir test dongle is a plain adapter up to 115200 (no speed control to get wrong)
        if name == model or {name, model} in ({"actisys", "actisys+"}, {"tekram", "toim3232"}, {"plain", "fir"}):
            continue
        port, driver = connect(name, model)
        failures = 0
        try:
            driver.open()
            for baud in driver.speeds:
                driver.set_speed(baud)
                port.now += 0.2
                failures += not port.works_at(baud)
        except DongleError:
            failures += 1
        assert failures, f"the {name} driver works on a {model} model at every speed"
