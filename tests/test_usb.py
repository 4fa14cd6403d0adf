"""USB IrDA adapters: each driver against its emulated chip (a pyusb backend on the emulated medium), end to end.

Discovery, a link at every speed the chip has, TinyTP and OBEX transfers; every wrong driver/chip pair fails;
a chip pulled out mid-transfer is ENETDOWN with the reason; garbage from a chip never raises out of a driver.
The emulated STIr421x needs its firmware patch: every test here finds a synthetic one (never SigmaTel's file)
through ``$IRSOCK_FIRMWARE_PATH`` (the autouse fixture ``stir421x_firmware``).
"""

from __future__ import annotations

import errno
import json
import threading
import uuid

import pytest
import usb.core
from hypothesis import given, settings
from hypothesis import strategies as st

import irsock
from irlap.dongles import DongleError, dongle_names, get_dongle
from irlap.dongles.framed import FrameDongle
from irlap.dongles.usb import KNOWN_IDS, UsbPort, parse_usb_url, scan, udev_rule
from irlap.dongles.usb.bridge import ClassDescriptor
from irlap.emulator.medium import get_medium
from irlap.emulator.usb import BY_ID, CHIPS, bus_for, chip_of
from irlap.emulator.virtual import devices_on
from irlap.port import PortError
from irlap.qos import BAUD_RATES, QosParams
from irlap.sir import wrap
from irsock.apps.transfer import connect_obex
from irsock.net.errors import IrSockNetDown
from irsock.obex import ObexClient
from tests.conftest import wait_until
from tests.test_socket import echo_server

#: each emulated chip and the id its URL names
CHIP_IDS = {name: f"{cls.vid:04x}:{cls.pid:04x}" for name, cls in CHIPS.items()}
USB_DRIVERS = [name for name in dongle_names() if issubclass(get_dongle(name), FrameDongle)]


@pytest.fixture(autouse=True, scope="module")
def stir421x_firmware(tmp_path_factory):
    """A synthetic STIr421x patch where the bridge driver looks (the emulated chip's bcdDevice names it); module
    scope, so that the hypothesis tests here may use it too."""
    from irlap.dongles.usb.bridge import FIRMWARE_ENV, stir421x_firmware_name
    from irlap.emulator.usb import Stir421xChip, stir421x_patch_file

    folder = tmp_path_factory.mktemp("firmware")
    path = folder / stir421x_firmware_name(Stir421xChip.bcd_device)
    path.write_bytes(stir421x_patch_file(Stir421xChip.bcd_device))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(FIRMWARE_ENV, str(folder))
        yield path


def fresh(prefix: str = "usb") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def url(chip: str, medium: str, **options) -> str:
    """A usb: URL that plugs a new emulated ``chip`` into ``medium``'s bus: by its id, or by name for a model that
    shares its id with another (the FIR bridge)."""
    query = "&".join(f"{k}={v}" for k, v in {"irsim": medium, **options}.items())
    if not CHIPS[chip].by_id:
        return f"usb:?chip={chip}&{query}"
    return f"usb:{CHIP_IDS[chip]}?{query}"


def echo_round_trip(iface, payload: bytes, timeout: float = 60) -> bytes:
    [device] = [d for d in iface.discover(timeout=5) if d.info.nickname.startswith("virtual")]
    with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
        sock.connect((device.address, "Echo"))
        received = bytearray()

        def reader():
            while len(received) < len(payload):
                data = sock.recv(65536)
                if not data:
                    return
                received.extend(data)

        thread = threading.Thread(target=reader)
        thread.start()
        sock.sendall(payload)
        thread.join(timeout)
        return bytes(received)


def test_every_usb_driver_has_an_emulated_chip_and_the_registry_lists_it():
    assert set(USB_DRIVERS) == {cls.driver for cls in CHIPS.values()}
    for driver, _what in KNOWN_IDS.values():
        assert driver in USB_DRIVERS
    for cls in CHIPS.values():
        assert (cls.vid, cls.pid) in KNOWN_IDS or cls.interface_class[:2] == (0xFE, 0x02)


@pytest.mark.parametrize("chip", sorted(CHIPS))
def test_discovery_and_tinytp_echo_in_real_time(chip):
    """Paced like a real line: the adapter's driver is chosen by the id, discovery, IAS, 20 KB echoed at 115200."""
    name = fresh()
    with irsock.attach(url(chip, name, devices=1), nickname="pc") as iface:
        assert iface.runtime.dongle_name == CHIPS[chip].driver
        fastest = max(b for b in get_dongle(CHIPS[chip].driver).speeds if b <= 115200)
        payload = bytes(range(256)) * (80 if fastest >= 57600 else 8)  # 2 KB for a 9600-only chip: ~5 s of line
        assert echo_round_trip(iface, payload) == payload
        params = iface.runtime.station.params
        # the virtual device is a SIR station: the link runs at the chip's fastest SIR speed
        assert params is not None and params.baud == fastest


@pytest.mark.parametrize("chip", sorted(CHIPS))
def test_every_speed_the_chip_has(chip):
    """A link at each SIR speed the chip supports (the offer capped there), data intact at that speed."""
    driver = get_dongle(CHIPS[chip].driver)
    for baud in [b for b in driver.speeds if 9600 <= b <= 115200]:
        name = fresh()
        qos = QosParams.offer(max_baud=baud)
        with irsock.attach(url(chip, name, devices=1, pace=0), nickname="pc", qos=qos) as iface:
            payload = bytes(range(256)) * 8
            assert echo_round_trip(iface, payload) == payload, baud
            assert iface.runtime.station.params.baud == baud
            assert iface.runtime.frames.speed == baud


@pytest.mark.parametrize("chip", sorted(CHIPS))
def test_obex_push_to_the_emulated_phone(chip, tmp_path):
    name = fresh()
    with irsock.attach(url(chip, name, devices="phone", pace=0), nickname="pc") as iface:
        [phone] = devices_on(name)
        [device] = iface.discover(timeout=5)
        data = bytes(range(256)) * 40
        with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
            connect_obex(sock, device.address)
            with ObexClient(sock) as client:
                result = client.put_bytes("photo.bin", data)
        assert result.verified
        [stored] = phone.call(lambda stack, now: list(stack.inbox.objects))
        assert stored.name == "photo.bin" and stored.data == data


@pytest.mark.parametrize("baud", [576000, 1152000, 4000000])
def test_mcs7780_at_mir_and_fir_in_real_time(baud):
    """The MCS7780 at each of its MIR and FIR speeds against a host-framed MIR/FIR station on the same medium
    (irsim ``dongle=fir``): the link comes up at that speed, the chip frames it, TinyTP data arrives intact."""
    name = fresh()
    peer = irsim_fast_peer(name)
    try:
        serve_echo(peer)
        with irsock.attach(url("mcs7780", name), nickname="pc", qos=QosParams.offer(max_baud=baud)) as iface:
            payload = bytes(range(256)) * 80
            assert fir_echo(iface, payload) == payload
            assert iface.runtime.station.params.baud == baud and iface.runtime.frames.speed == baud
            chip = chip_of(iface.runtime.port)
            assert chip.light.speed == baud and chip.xcvr_kind == ("fir" if baud == 4000000 else "mir")
            assert iface.runtime.frames.stats.bad_fcs == 0 and iface.runtime.frames.stats.good > 0
    finally:
        peer.close()


def irsim_fast_peer(name: str):
    """A station on the irsim medium ``name`` that offers SIR, MIR and FIR (the emulator's ``fir`` adapter)."""
    return irsock.attach(f"irsim://{name}?dongle=fir", dongle="fir", nickname="peer",
                         qos=QosParams.offer(max_baud=4000000))


def test_mcs7780_without_the_transceiver_sequence_stays_dark_at_fir():
    """The model's quirk: a speed change from SIR to FIR without the transceiver sequence leaves the chip silent,
    and the driver's CRC-32 check drops a FIR frame whose CRC was damaged on the way."""
    from irlap.dongles.usb import open_usb
    from irlap.dongles.usb.mcs7780 import REG_MODE, Mcs7780

    name = fresh()
    bus = bus_for(name)
    chip = bus.plug("mcs7780")
    port, driver_name = open_usb("usb:9710:7780", backend=bus.view(chip))
    assert driver_name == "mcs7780"
    driver = Mcs7780(port)
    try:
        driver.open()
        assert chip.light.speed == 9600
        driver.write_reg(REG_MODE, driver.read_reg(REG_MODE) | 0x0001)  # FIR bit alone, no transceiver sequence
        assert chip.light.speed is None
        driver.speed = 9600
        driver.set_speed(4000000)
        assert chip.light.speed == 4000000
        from irlap import fir

        good = b"\xff\x93hello"
        crc = fir.fcs32(good).to_bytes(4, "little")
        assert driver.unwrap(good + crc) == [good]
        assert driver.unwrap(good + bytes(4)) == [] and driver.stats.bad_fcs == 1
    finally:
        driver.close()


def test_mcs7780_keeps_the_peers_turnaround_from_the_end_of_what_it_heard():
    """At MIR/FIR the chip sends no fill, so the driver waits the fill time before the first frame of a turn, but
    counted from the completion of the last bulk IN transfer (the peer's frame had ended by then): the time the
    frame took to reach the host and the station to answer is part of the turnaround, not added to it."""
    from irlap import fir, framing
    from irlap.dongles.usb.mcs7780 import Mcs7780

    class Port(FakeChip):
        def __init__(self, packets):
            super().__init__(packets)
            self.written = []

        def bulk_write(self, endpoint, data):
            self.written.append((clock[0], bytes(data)))

    clock = [100.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock[0] += seconds

    frame = b"\xff\x93hello"
    port = Port([frame + fir.fcs32(frame).to_bytes(4, "little")])
    driver = Mcs7780(port, sleep=sleep)
    driver.clock = lambda: clock[0]
    driver.speed = 4000000
    fill = framing.turnaround_fill(4000000, 1000)
    driver.send_frame(frame, fill)  # nothing heard yet: the peer has been quiet for long
    assert slept == [] and len(port.written) == 1
    assert driver.receive(0.05).frames == [frame] and driver.heard_at == 100.0
    clock[0] += 0.0004  # the frame reached the host 0.4 ms ago: 0.6 ms of the 1 ms are left
    driver.send_frame(frame, fill)
    assert slept == [pytest.approx(0.0006)] and port.written[-1][0] == pytest.approx(100.001)
    driver.send_frame(frame, 0)  # the later frames of the turn follow at once
    assert len(slept) == 1
    clock[0] += 0.005
    driver.send_frame(frame, fill)  # answering 5 ms later: the turnaround has passed already
    assert len(slept) == 1 and len(port.written) == 4
    # the runtime's line time of a frame at FIR: 1 us per chip byte, fill included (irlap.framing)
    assert driver.line_time(frame, fill) == pytest.approx(framing.line_seconds(len(framing.wrap(frame, 4000000,
                                                                                                  fill)), 4000000))
    driver.speed = 1152000
    assert driver.line_time(frame, 3) == pytest.approx(framing.line_seconds(len(framing.wrap(frame, 1152000, 3)),
                                                                            1152000))
    driver.speed = 115200
    assert driver.line_time(frame, 10) == pytest.approx(len(wrap(frame, 10)) * 10 / 115200)


def test_kingsun_sir_repeated_buffers_do_not_repeat_frames():
    """The KS-7200 never empties its receive buffer: reads with nothing new bring the same 8 bytes again (and
    garbage with an impossible count after plug-in). A short frame that fits one buffer arrives exactly once."""
    from irlap.dongles.usb import open_usb
    from irlap.dongles.usb.kingsun_sir import KingsunSir

    name = fresh()
    bus = bus_for(name)
    chip = bus.plug("kingsun-sir")
    port, driver_name = open_usb("usb:07c0:4200", backend=bus.view(chip))
    assert driver_name == "kingsun-sir"
    driver = KingsunSir(port)
    driver.open()
    try:
        assert driver.receive(0.01).frames == []  # the uninitialised buffer is dropped
        light = get_medium(name)[0].attach_light("peer", speed=9600)
        frame = b"\xff\x01"  # wraps to 6 bytes: BOF, two bytes, FCS, EOF - one buffer
        light.send(wrap(frame, 0))
        frames = []
        wait_until(lambda: frames.extend(driver.receive(0.05).frames) or frames, "the frame arrived")
        for _ in range(20):
            frames.extend(driver.receive(0.005).frames)
        assert frames == [frame]
        assert chip.data_in(0x81, 8, 0)[1:7] == wrap(frame, 0)  # the chip still hands out that same buffer
    finally:
        driver.close()


def test_two_usb_adapters_of_different_chips_talk_to_each_other():
    """A Bridge-class adapter and an STIr4200 on one medium: one serves Echo, the other connects."""
    name = fresh()
    a = irsock.attach(url("irda-usb", name, pace=0), nickname="alpha")
    b = irsock.attach(url("stir4200", name), nickname="beta")
    try:
        server = b.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
        server.bind(("Echo",))
        server.listen(1)

        def serve():
            conn, _ = server.accept()
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

        threading.Thread(target=serve, daemon=True).start()
        [device] = a.discover(timeout=5)
        assert device.info.nickname == "beta"
        payload = bytes(range(256)) * 20
        with a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as client:
            client.connect((device.address, "Echo"))
            client.sendall(payload)
            received = bytearray()
            while len(received) < len(payload):
                received += client.recv(65536)
        assert bytes(received) == payload
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("driver", USB_DRIVERS)
@pytest.mark.parametrize("chip", sorted(CHIPS))
def test_only_the_right_driver_works_with_each_chip(driver, chip):
    """Each driver forced on each chip: the right pair finds the device, every wrong pair fails (refused
    requests at open, or nothing that becomes a frame)."""
    name = fresh()
    try:
        iface = irsock.attach(url(chip, name, devices=1, pace=0), dongle=driver, nickname="pc")
    except PortError as exc:
        assert driver != CHIPS[chip].driver, exc
        assert "did not come up" in str(exc)
        return
    with iface:
        try:
            found = iface.discover(timeout=3)
        except IrSockNetDown as exc:  # the driver's first transfer was refused: the port failed, with the reason
            assert driver != CHIPS[chip].driver and "not" in str(exc), (driver, chip, exc)
            return
    assert bool(found) == (driver == CHIPS[chip].driver), (driver, chip, found)


@pytest.mark.parametrize("chip", sorted(CHIPS))
def test_unplugged_mid_transfer_is_enetdown_with_the_reason(chip):
    name = fresh()
    with irsock.attach(url(chip, name, devices=1), nickname="pc") as iface:
        [device] = iface.discover(timeout=5)
        sock = iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
        sock.connect((device.address, "Echo"))
        sock.sendall(b"x" * 4000)
        assert sock.recv(1)  # the transfer is under way
        emulated = chip_of(iface.runtime.port)
        bus_for(name).unplug(emulated)
        with pytest.raises(OSError) as failure:
            for _ in range(200):
                sock.sendall(b"y" * 4000)
                sock.recv(65536)
        # the connection breaks with the reason; everything after that on the interface is ENETDOWN
        assert failure.value.errno in (errno.ECONNRESET, errno.ENETDOWN) and "unplugged" in str(failure.value)
        wait_until(lambda: iface.runtime.failure is not None, "the runtime saw the port fail")
        assert "unplugged" in iface.runtime.failure and iface.runtime.url in iface.runtime.failure
        with pytest.raises(IrSockNetDown, match="unplugged") as down:
            iface.discover(timeout=1)
        assert down.value.errno == errno.ENETDOWN


def test_usb_url_forms_and_clear_errors():
    assert (parse_usb_url("usb:066f:4200").vid, parse_usb_url("usb:066f:4200").pid) == (0x066F, 0x4200)
    located = parse_usb_url("usb:1-4.2")
    assert (located.bus, located.ports) == (1, (4, 2))
    assert parse_usb_url("usb:").vid is None
    for bad in ("usb:zz", "usb:1:2:3", "usb:x-1", "usb:10000:1"):
        with pytest.raises(PortError, match="names no USB device"):
            parse_usb_url(bad)
    with pytest.raises(PortError, match="no emulated USB chip"):
        irsock.attach(f"usb:1234:5678?irsim={fresh()}")
    with pytest.raises(PortError, match="serial adapters"):
        irsock.attach(f"usb:066f:4200?irsim={fresh()}", dongle="tekram")
    with pytest.raises(PortError, match="USB adapters"):
        irsock.attach(f"irsim://{fresh()}", dongle="stir4200")


def test_a_usb_port_is_found_by_bus_and_port_path():
    name = fresh()
    bus = bus_for(name)
    first, second = bus.plug("stir4200"), bus.plug("irda-usb")
    from irlap.dongles.usb import open_usb

    port, driver = open_usb(f"usb:{bus.number}-{second.port_numbers[0]}", backend=bus)
    try:
        assert driver == "irda-usb" and chip_of(port) is second
    finally:
        port.close()
    found = scan(backend=bus)
    assert [(row["driver"], row["url"]) for row in found] == [
        ("stir4200", f"usb:{bus.number}-{first.port_numbers[0]}"),
        ("irda-usb", f"usb:{bus.number}-{second.port_numbers[0]}")]


def test_bridge_class_is_recognised_by_interface_class_alone():
    """A no-name bridge with an unknown id is taken by irda-usb through its interface class 0xFE/0x02."""
    from irlap.emulator.usb import BridgeChip

    class NoName(BridgeChip):
        vid, pid = 0x1234, 0xABCD

    name = fresh()
    bus = bus_for(name)
    chip = bus.plug(NoName)
    [row] = scan(backend=bus)
    assert row["driver"] == "irda-usb" and row["vid"] == "1234"
    from irlap.dongles.usb import open_usb

    port, driver = open_usb("usb:1234:abcd", backend=bus.view(chip))
    port.close()
    assert driver == "irda-usb"


def test_bridge_descriptor_narrows_the_offer_and_header_changes_apply_after_the_frame():
    name = fresh()
    bus = bus_for(name)
    chip = bus.plug("irda-usb", speeds=(9600, 19200, 38400))
    chip.data_size_bits, chip.window_bits = 0x0F, 0x07  # up to 512 bytes, 3 frames
    from irlap.dongles.usb import open_usb
    from irlap.runtime import LinkRuntime

    port, _driver = open_usb("usb:09c4:0011", backend=bus.view(chip))
    runtime = LinkRuntime(port, dongle="auto").start()
    try:
        qos = runtime.station.qos
        assert [b for i, b in enumerate(BAUD_RATES) if qos.baud >> i & 1] == [9600, 19200, 38400]
        assert qos.value("data_size") == 512 and qos.value("window_size") == 3
        assert runtime.frames.min_turnaround_us == 1000
        # a frame with a speed change in its header goes out at the old speed
        light = get_medium(name)[0].attach_light("listener", speed=9600)
        heard = []
        light.on_light = heard.append
        runtime.call(lambda station, now: None)
        runtime.frames.port.bulk_write(0x02, bytes((0x03,)) + b"\xff\x93hello")  # 19200 after this frame
        wait_until(lambda: heard, "the listener heard the frame")
        assert wrap(b"\xff\x93hello", 12)[-8:] in b"".join(heard)
        assert chip.speed == 19200
    finally:
        runtime.close()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_class_descriptor_parser_takes_any_bytes(raw):
    try:
        descriptor = ClassDescriptor(raw)
    except DongleError:
        return
    assert 9600 in descriptor.speeds and descriptor.max_window >= 1


class FakeChip:
    """A UsbPort stand-in whose IN endpoint returns scripted packets (garbage from a broken chip)."""

    def __init__(self, packets):
        self.packets = list(packets)

    def bulk_read(self, endpoint, size, timeout_ms):
        return self.packets.pop(0) if self.packets else b""

    def control_in(self, request_type, request, value, index, length, timeout_ms=500):
        return self.packets.pop(0)[:length] if self.packets else b""


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=12))
def test_receive_paths_never_raise_on_garbage(packets):
    from irlap.dongles.usb.bridge import UsbBridge
    from irlap.dongles.usb.kingsun_sir import KingsunSir
    from irlap.dongles.usb.ks959 import Ks959
    from irlap.dongles.usb.ksdazzle import KsDazzle
    from irlap.dongles.usb.mcs7780 import Mcs7780
    from irlap.dongles.usb.stir4200 import Stir4200

    cases = [(cls, 9600) for cls in (UsbBridge, Stir4200, Ks959, KsDazzle, KingsunSir)]
    cases += [(Mcs7780, b) for b in (9600, 576000, 4000000)] + [(Stir4200, 4000000), (UsbBridge, 4000000)]
    class FakeStir421x(FakeChip):
        vid, pid = 0x066F, 0x4210  # the bridge driver reads a 3-byte header from it

    for cls, speed in cases + [(FakeStir421x, 9600), (FakeStir421x, 4000000)]:
        driver = UsbBridge(cls(packets)) if cls is FakeStir421x else cls(FakeChip(packets))
        driver.speed = speed
        for _ in range(len(packets) + 1):
            received = driver.receive(0.001)
            assert all(isinstance(f, bytes) and f for f in received.frames)


def test_garbage_from_the_chip_does_not_stop_the_link():
    """A chip that sends noise between the frames: the station counts bad frames, the echo still works."""
    name = fresh()
    with irsock.attach(url("irda-usb", name, devices=1, pace=0), nickname="pc") as iface:
        chip = chip_of(iface.runtime.port)
        for junk in (b"\x00", b"\x80\x01", b"\x00\xff\xff\xff", bytes(range(200))):
            chip.queue_in(junk)
        payload = bytes(range(256)) * 10
        assert echo_round_trip(iface, payload) == payload
        assert iface.runtime.running


def test_udev_rule_names_every_known_adapter_and_the_group(capsys):
    rule = udev_rule("irda")
    for vid, pid in KNOWN_IDS:
        assert f'ATTR{{idVendor}}=="{vid:04x}", ATTR{{idProduct}}=="{pid:04x}"' in rule
    assert rule.count('GROUP="irda"') == len(KNOWN_IDS)
    from irsock.cli import main

    assert main(["udev-rule", "--group", "wheel"]) == 0
    assert 'GROUP="wheel"' in capsys.readouterr().out


def test_dongles_scan_cli_reports_what_it_finds(capsys):
    """The real bus in CI has no IrDA adapter (or no libusb): either way one clear line or JSON, no traceback."""
    from irsock.cli import main

    code = main(["dongles", "--scan", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    assert "adapters" in out or "error" in out


def test_emulated_transfers_fail_with_enodev_after_unplug():
    name = fresh()
    bus = bus_for(name)
    chip = bus.plug("stir4200")
    from irlap.dongles.usb import open_usb

    port, _ = open_usb("usb:066f:4200", backend=bus.view(chip))
    assert isinstance(port, UsbPort)
    bus.unplug(chip)
    with pytest.raises(PortError, match="unplugged"):
        port.bulk_write(0x01, b"\x55\xaa\x00\x00")
    with pytest.raises(usb.core.USBError):
        port.device.ctrl_transfer(0xC0, 0x01, 0, 5, 3)
    port.close()


def test_every_emulated_chip_id_opens_its_own_driver():
    for (vid, pid), cls in BY_ID.items():
        assert KNOWN_IDS.get((vid, pid), ("irda-usb",))[0] == cls.driver


def test_a_pace_of_one_keeps_real_time():
    """The emulated chip paces its light like the line: 2 KB at 9600 bit/s take about 2 s of medium time."""
    name = fresh()
    bus = bus_for(name)
    chip = bus.plug("irda-usb")
    from irlap.dongles.usb import open_usb
    from irlap.dongles.usb.bridge import UsbBridge

    port, _ = open_usb("usb:09c4:0011", backend=bus.view(chip))
    driver = UsbBridge(port)
    driver.open()
    driver.send_frame(b"\xff\x03" + bytes(2000), 0)
    assert chip.light.tx_busy_until - get_medium(name)[0].now() > 1.5
    driver.close()


def serve_echo(iface):
    """An Echo service on ``iface`` for any number of connections."""
    listener = iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
    listener.bind(("Echo",))
    listener.listen(4)
    echo_server(listener, None)


def test_irda_serve_takes_a_usb_adapter_back_when_it_is_plugged_in_again(daemon_on):
    """The daemon serves usb:BUS-PORT; the chip pulled out: ENETDOWN with the reason; plugged into the same port
    again: the daemon opens it and new sockets work."""
    name = fresh()
    bus = bus_for(name)
    chip = bus.plug("stir4200")
    where = chip.port_numbers[0]
    peer = irsock.attach(f"irsim://{name}", nickname="peer", qos=QosParams.offer(max_link_disconnect_s=3))
    try:
        serve_echo(peer)
        daemon = daemon_on(f"usb:{bus.number}-{where}?irsim={name}")
        client = irsock.attach(f"unix:{daemon.path}")
        with client.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
            sock.connect((peer.address, "Echo"))
            sock.sendall(b"before")
            assert sock.recv(100) == b"before"
            bus.unplug(chip)
            with pytest.raises(OSError) as broken:
                while sock.recv(100):
                    pass
            assert broken.value.errno in (errno.ENETDOWN, errno.ECONNRESET)
        wait_until(lambda: daemon.port_failure, "the daemon saw the adapter go")
        assert "unplugged" in daemon.port_failure
        with pytest.raises(OSError) as down:
            client.socket(irsock.AF_IRDA, irsock.SOCK_STREAM).connect((peer.address, "Echo"))
        assert down.value.errno == errno.ENETDOWN
        bus.plug("stir4200", port=where)
        wait_until(lambda: daemon.reopened == 1, "the daemon opened the adapter again")
        wait_until(lambda: not peer.call(lambda stack, _now: stack.lmp.station.connected),
                   "the peer's link to the pulled station timed out")
        with client.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
            sock.connect((peer.address, "Echo"))
            sock.sendall(b"after")
            assert sock.recv(100) == b"after"
    finally:
        peer.close()


# --- MIR/FIR through the STIr4200 and the Bridge class ---------------------------------------------------------
def fir_echo(iface, payload: bytes) -> bytes:
    """``payload`` through the Echo service of the only device ``iface`` discovers (sent whole, then read back)."""
    [device] = iface.discover(timeout=5)
    with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
        sock.connect((device.address, "Echo"))
        sock.sendall(payload)
        received = bytearray()
        while len(received) < len(payload):
            data = sock.recv(65536)
            assert data, "the echo ended early"
            received += data
    return bytes(received)


@pytest.mark.parametrize(("chip", "baud"), [("stir4200", 4000000), ("irda-usb-fir", 576000),
                                            ("irda-usb-fir", 1152000), ("irda-usb-fir", 4000000),
                                            ("stir421x", 1152000), ("stir421x", 4000000)])
def test_fir_chips_link_at_mir_and_fir_in_real_time(chip, baud):
    """Each FIR-capable emulated chip against a host-framed MIR/FIR station on the same medium: the link comes up
    at that speed, the chip carries it, TinyTP data arrives intact, no frame was lost to a bad CRC."""
    name = fresh()
    peer = irsim_fast_peer(name)
    try:
        serve_echo(peer)
        with irsock.attach(url(chip, name), nickname="pc", qos=QosParams.offer(max_baud=baud)) as iface:
            payload = bytes(range(256)) * 80
            assert fir_echo(iface, payload) == payload
            assert iface.runtime.station.params.baud == baud and iface.runtime.frames.speed == baud
            assert chip_of(iface.runtime.port).light.speed == baud
            if chip == "stir4200":
                assert iface.runtime.frames.stats.bad_fcs == 0 and iface.runtime.frames.stats.good > 0
    finally:
        peer.close()


@pytest.mark.parametrize("chip", ["stir4200", "irda-usb-fir", "stir421x"])
def test_obex_push_at_fir_to_another_fir_station(chip):
    """An OBEX push of 200 kB at 4 Mbit/s from the emulated chip to a FIR station (``irda bench``'s push, which
    checks the stored file)."""
    from irsock.apps.bench import bench_link

    name = fresh()
    report = bench_link(url(chip, name), f"irsim://{name}?dongle=fir", dongle_b="fir", nbytes=200_000,
                        max_baud=4000000, pings=1)
    assert report["intact"] is True
    assert report["goodput_Bps"] > 115200 / 10 * 4  # far beyond any SIR speed: the push ran at FIR


def open_stir4200(name: str):
    from irlap.dongles.usb import open_usb
    from irlap.dongles.usb.stir4200 import Stir4200

    bus = bus_for(name)
    chip = bus.plug("stir4200")
    port, _ = open_usb("usb:066f:4200", backend=bus.view(chip))
    driver = Stir4200(port)
    driver.open()
    return chip, driver


def test_a_firmware_place_we_may_not_read_is_passed_over(tmp_path, monkeypatch):
    """An unreadable directory on the firmware path (EACCES: ``is_file`` raises on Python 3.11) does not end the
    search: the next place is looked in."""
    from pathlib import Path

    from irlap.dongles.usb.bridge import find_firmware

    locked, good = tmp_path / "locked", tmp_path / "good"
    good.mkdir()
    (good / "42101001.sb").write_bytes(b"patch")
    real_is_file = Path.is_file

    def is_file(path):
        if str(path).startswith(str(locked)):
            raise PermissionError(13, "Permission denied", str(path))
        return real_is_file(path)

    monkeypatch.setattr(Path, "is_file", is_file)
    monkeypatch.setenv("IRSOCK_FIRMWARE_PATH", f"{locked}:{good}")
    found, searched = find_firmware("42101001.sb")
    assert found == good / "42101001.sb" and searched[:2] == [locked, good]


def test_stir4200_fir_frame_split_at_an_escape_arrives_whole():
    """A frame longer than the FIFO once escaped goes in two blocks. The driver never ends a block between an
    escape and the byte it escapes, and the chip's modulator (one byte stream from the FIFO) takes an escape at
    a block's end for the next block's first byte: a frame cut there failed its CRC on every retransmission."""
    from irlap import fir
    from irlap.dongles.usb.stir4200 import FIFO_SIZE, fir_block

    name = fresh()
    chip, driver = open_stir4200(name)
    writes = []
    real_write = driver.port.bulk_write
    driver.port.bulk_write = lambda endpoint, data: (writes.append(bytes(data)), real_write(endpoint, data))[1]
    try:
        driver.set_speed(4000000)
        listener = get_medium(name)[0].attach_light("listener", speed=4000000)
        decoder = fir.Unwrapper()
        heard = []
        listener.on_light = lambda data: heard.extend(decoder.feed(data))
        frame = b"\xff\x93\x00" + b"\x7e" * 2045  # an even split of its escaped bytes would cut 7D | 5E
        block = fir_block(frame)
        assert len(block) > FIFO_SIZE - 4 and block[FIFO_SIZE - 5] == 0x7D
        driver.send_frame(frame, 0)
        wait_until(lambda: heard == [frame], "the frame arrived whole")
        pieces = [w[4:] for w in writes if w[:2] == b"\x55\xaa"]
        assert len(pieces) == 2 and b"".join(pieces) == block and not pieces[0].endswith(b"\x7d")
        # the chip itself, given blocks cut at the escape by some other host: the same frame
        cut = FIFO_SIZE - 4
        for piece in (block[:cut], block[cut:]):
            driver.port.bulk_write(0x01, b"\x55\xaa" + len(piece).to_bytes(2, "little") + piece)
        wait_until(lambda: len(heard) == 2, "the frame cut at its escape arrived")
        assert heard == [frame, frame] and decoder.stats.bad_fcs == 0
    finally:
        driver.close()


def test_stir4200_fir_speed_sequence_and_host_framing():
    """The speed change to FIR writes MODE = FIR | FFRSTEN | FASTRX | NRESET and PDCLK 0x02; a frame the driver
    sends is a FIR frame a receiver takes; host framing that is wrong at FIR (SIR wrapping, a lone flag, a CRC
    that does not match) puts nothing good on the line."""
    from irlap import fir
    from irlap.dongles.usb.stir4200 import fir_block

    name = fresh()
    chip, driver = open_stir4200(name)
    try:
        driver.set_speed(4000000)
        assert chip.regs[1] == 0x80 | 0x04 | 0x08 | 0x02 and chip.regs[2] == 0x02
        assert chip.light.speed == 4000000
        listener = get_medium(name)[0].attach_light("listener", speed=4000000)
        decoder = fir.Unwrapper()
        heard = []
        listener.on_light = lambda data: heard.extend(decoder.feed(data))
        frame = b"\xff\x93" + bytes(range(256)) + b"\x7d\x7e\x7f"
        driver.send_frame(frame, 0)
        wait_until(lambda: heard == [frame], "the listener decoded the frame")
        bad = bytearray(fir_block(frame))
        bad[-3] ^= 0x01  # a CRC byte (none of the CRC bytes of this frame needed an escape)
        for block in (wrap(frame, 0), b"\x7f" * 16 + b"\x7e" + frame + b"\x7e", bytes(bad)):
            driver.port.bulk_write(0x01, b"\x55\xaa" + len(block).to_bytes(2, "little") + block)
        driver.send_frame(frame, 0)  # a good one after them: it arrives, the three before did not
        wait_until(lambda: len(heard) == 2, "the second good frame arrived")
        assert heard == [frame, frame] and decoder.stats.bad_fcs == 1
        escapes = b"\xff\x93" + b"\x7e" * 2046  # escaped, longer than the 4 KB FIFO: two blocks, one frame
        driver.send_frame(escapes, 0)
        wait_until(lambda: len(heard) == 3, "the long frame arrived")
        assert heard[-1] == escapes
        # a frame whose CRC ends in an escaped byte (its last line byte before the flag is an escaped 0x7D)
        [last_escaped] = [f for f in (b"\xff\x93" + i.to_bytes(2, "big") for i in range(4000))
                          if fir.fcs32(f) >> 24 == 0x7D][:1]
        driver.send_frame(last_escaped, 0)
        wait_until(lambda: len(heard) == 4, "the frame with an escaped last CRC byte arrived")
        assert heard[-1] == last_escaped
        # the same clock divider with the SIR mode bit is no valid setting: the chip goes dark
        driver.write_reg(1, 0x20 | 0x08 | 0x02)
        assert chip.light.speed is None
    finally:
        driver.close()


def test_stir4200_fir_bad_crc_frame_is_counted_and_dropped():
    """The chip passes up whatever it demodulated, CRC-32 and all: the driver drops a frame whose CRC does not
    match and counts it; the good frames around it arrive."""
    from irlap import fir

    name = fresh()
    chip, driver = open_stir4200(name)
    try:
        driver.set_speed(4000000)
        light = get_medium(name)[0].attach_light("peer", speed=4000000)
        good = b"\xff\x93" + bytes(range(200))
        damaged = fir.PREAMBLE + fir.START_FLAG + fir.encode(good + bytes(4)) + fir.STOP_FLAG
        light.send(fir.wrap(good) + damaged + fir.wrap(good[:50]))
        frames = []
        wait_until(lambda: frames.extend(driver.receive(0.05).frames) or len(frames) >= 2, "the good frames")
        assert frames == [good, good[:50]]
        assert driver.stats.bad_fcs == 1 and driver.stats.good == 2
    finally:
        driver.close()


def test_stir4200_fir_unwrapper_takes_any_split_and_the_escapes():
    """The host's FIR receive path against Linux's rules: repeated flags, escapes of 0x7D/0x7E/0x7F, a frame cut
    by 0x7F or by an escape before the flag is aborted; chunk boundaries anywhere change nothing."""
    from irlap import fir
    from irlap.dongles.usb.stir4200 import FirUnwrapper, fir_stuff

    frames = [b"\xff\x93" + bytes(range(256)), b"\x7d\x7e\x7f\x7d", b"\x01\x02\x03"]

    def up(raw: bytes) -> bytes:
        return b"\x7e\x7e" + fir_stuff(raw + fir.fcs32(raw).to_bytes(4, "little")) + b"\x7e\x7e"

    stream = b"junk" + up(frames[0]) + b"\x7e\x01\x7f\x02\x7e" + up(frames[1]) + b"\x7e\x7e\x05\x7d\x7e" + up(frames[2])
    for step in (1, 3, 7, len(stream)):
        unwrapper = FirUnwrapper()
        got = []
        for i in range(0, len(stream), step):
            got += unwrapper.feed(stream[i:i + step])
        assert got == frames, step
        assert unwrapper.stats.aborted == 2 and unwrapper.stats.good == 3


def test_fir_bridge_descriptor_narrows_the_offer():
    """A Bridge class chip whose descriptor lists 576000, 1152000 and 4000000: the driver offers exactly its
    speeds and the turnaround, data size and window it asks for; one that lists FIR without MIR offers no MIR."""
    from irlap.dongles.usb import open_usb
    from irlap.runtime import LinkRuntime

    for speeds in ((2400, 9600, 19200, 38400, 57600, 115200, 576000, 1152000, 4000000), (9600, 115200, 4000000)):
        name = fresh()
        bus = bus_for(name)
        chip = bus.plug("irda-usb-fir", speeds=speeds)
        chip.min_turnaround_bits, chip.window_bits = 0x0F, 0x3F  # 0.5 ms; up to 6 frames
        port, driver = open_usb(f"usb:{bus.number}-{chip.port_numbers[0]}", backend=bus.view(chip))
        assert driver == "irda-usb"
        runtime = LinkRuntime(port, dongle="auto", qos=QosParams.offer(max_baud=16000000)).start()
        try:
            qos = runtime.station.qos
            assert tuple(b for i, b in enumerate(BAUD_RATES) if qos.baud >> i & 1) == speeds
            assert runtime.frames.min_turnaround_us == 500 and qos.value("min_turnaround") >= 500
            assert qos.value("window_size") == 6
        finally:
            runtime.close()


# --- STIr421x: the firmware patch -------------------------------------------------------------------------------
def open_stir421x(name: str, url_option: str = ""):
    from irlap.dongles.usb import open_usb
    from irlap.dongles.usb.bridge import UsbBridge

    bus = bus_for(name)
    chip = bus.plug("stir421x")
    port, driver_name = open_usb(f"usb:066f:4210{url_option}", backend=bus.view(chip))
    assert driver_name == "irda-usb"
    return chip, UsbBridge(port)


def test_stir421x_is_patched_and_then_reports_fir(stir421x_firmware):
    """The driver sends the vendor request 0x02, then what follows ``STMP`` in the synthetic patch in blocks of at
    most 1023 bytes; the chip, patched, lists the FIR speeds, which the driver reads from the descriptor again."""
    chip, driver = open_stir421x(fresh())
    try:
        assert not chip.patched and chip.light.speed is None
        driver.open()
        assert chip.patched and driver.patched_from == stir421x_firmware
        assert (0x40, 0x02, 0, 0) in chip.requests
        assert 4000000 in driver.speeds and 1152000 in driver.speeds
        assert driver.header_length == 3 and chip.speed == 9600
    finally:
        driver.close()


def test_stir421x_without_its_patch_says_which_file_and_where(tmp_path, monkeypatch):
    from irlap.dongles.usb.bridge import FIRMWARE_ENV

    monkeypatch.setenv(FIRMWARE_ENV, str(tmp_path / "nowhere"))
    chip, driver = open_stir421x(fresh())
    with pytest.raises(DongleError) as missing:
        driver.open()
    message = str(missing.value)
    assert "42101001.sb" in message and str(tmp_path / "nowhere") in message and "/lib/firmware" in message
    assert not chip.patched
    driver.close()
    # a file of another chip release (its Product Version line) is refused, named
    other = tmp_path / "other"
    other.mkdir()
    from irlap.emulator.usb import stir421x_patch_file

    (other / "42101001.sb").write_bytes(stir421x_patch_file(0x1002))
    chip, driver = open_stir421x(fresh(), f"?firmware={other}")
    with pytest.raises(DongleError, match="not the patch for this chip"):
        driver.open()
    driver.close()
    # the URL option may name the file itself
    (other / "mine.sb").write_bytes(stir421x_patch_file(0x1001))
    chip, driver = open_stir421x(fresh(), f"?firmware={other / 'mine.sb'}")
    driver.open()
    assert chip.patched
    driver.close()


def test_stir421x_is_deaf_and_dark_until_a_right_patch():
    """Before its patch the chip takes no frame and hears nothing; a download of the whole file (text header
    included) or of a cut image leaves it unpatched; the image alone patches it."""
    from irlap.dongles.usb.bridge import stir421x_patch_image
    from irlap.emulator.usb import Stir421xChip, stir421x_patch_file

    name = fresh()
    chip, driver = open_stir421x(name)
    port = driver.port
    try:
        listener = get_medium(name)[0].attach_light("listener", speed=9600)
        heard = []
        listener.on_light = heard.append
        port.bulk_write(0x02, b"\x02\x00\x00")  # 9600
        port.bulk_write(0x02, b"\x00\x00\x00\xff\x93hello")
        assert chip.light.speed is None and not heard
        listener.send(wrap(b"\xff\x93hi", 10))
        assert port.bulk_read(0x81, 100, 20) == b""
        patch = stir421x_patch_file(Stir421xChip.bcd_device)
        image = stir421x_patch_image(patch, Stir421xChip.bcd_device)
        for download in (patch[:1000], image[:-1] + bytes((image[-1] ^ 1,))):
            port.control_out(0x40, 0x02)
            port.bulk_write(0x02, download)
            assert not chip.patched, download[:20]
        port.control_out(0x40, 0x02)
        port.bulk_write(0x02, image)
        assert chip.patched
    finally:
        driver.close()
