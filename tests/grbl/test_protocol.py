"""The sans-I/O protocol: literal grbl output, chunking, garbage, encoding rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crown_edge.drivers.grbl import protocol as p
from crown_edge.drivers.grbl.codes import alarm_info, error_info
from crown_edge.errors import ProtocolError


def one(line: str) -> p.Event:
    event = p.parse_line(line)
    assert event is not None
    return event


def test_status_idle_with_wco() -> None:
    status = one("<Idle|MPos:0.000,0.000,0.000|FS:0,0|WCO:0.000,0.000,0.000>")
    assert isinstance(status, p.Status)
    assert status.state == "Idle" and status.substate is None
    assert status.mpos == (0.0, 0.0, 0.0) and status.wco == (0.0, 0.0, 0.0)
    assert status.feed == 0 and status.spindle == 0


def test_status_hold_substate_buffers_overrides_accessories() -> None:
    status = one("<Hold:0|MPos:12.500,-3.000,0.000|Bf:15,128|FS:1200,600|Ov:100,100,100|A:SFM>")
    assert isinstance(status, p.Status)
    assert (status.state, status.substate) == ("Hold", 0)
    assert status.planner_free == 15 and status.rx_free == 128
    assert status.feed == 1200 and status.spindle == 600
    assert status.overrides == (100, 100, 100) and status.accessories == "SFM"


def test_status_fields_in_any_order_door_wpos_feed_pins_line() -> None:
    status = one("<Door:1|Pn:D|Ln:42|F:500.0|WPos:1.000,2.000,3.000>")
    assert isinstance(status, p.Status)
    assert (status.state, status.substate) == ("Door", 1)
    assert status.wpos == (1.0, 2.0, 3.0) and status.mpos is None
    assert status.feed == 500.0 and status.pins == "D" and status.line == 42


def test_status_unknown_field_is_kept() -> None:
    status = one("<Run|MPos:1.000,2.000,3.000|FS:3000,0|SD:0.5,1>")
    assert isinstance(status, p.Status)
    assert status.extra == {"SD": "0.5,1"}


def test_answers_and_codes() -> None:
    assert one("ok") == p.Ok()
    error = one("error:11")
    assert isinstance(error, p.Error) and error.name == "Line overflow"
    assert "Max characters per line exceeded" in error.text
    alarm = one("ALARM:1")
    assert isinstance(alarm, p.Alarm) and alarm.name == "Hard limit"
    assert error_info(999).name == "Unknown error 999"
    assert alarm_info(3).name == "Abort during cycle"


def test_feedback_banner_settings_startup() -> None:
    assert one("Grbl 1.1h ['$' for help]") == p.Welcome("1.1h")
    assert one("[MSG:'$H'|'$X' to unlock]") == p.Feedback("MSG", "'$H'|'$X' to unlock")
    assert one("[VER:1.1h.20190825:]") == p.Version("1.1h.20190825", "")
    assert one("[OPT:VL,15,128]") == p.Options("VL", 15, 128)
    assert one("[OPT:V,35,1024]") == p.Options("V", 35, 1024)
    assert one("[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]") == p.Feedback(
        "GC", "G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0"
    )
    assert one("$110=5000.000") == p.Setting(110, "5000.000")
    assert one(">G21G54:ok") == p.StartupLine("G21G54", "ok")
    assert one(">G21:error:20") == p.StartupLine("G21", "error:20")


def test_incremental_feed_and_blank_lines() -> None:
    proto = p.GrblProtocol()
    assert proto.events(b"\r\nGrbl 1.1h ['$' for help]\r\nok\r\n<Idle|MPos:0") == [
        p.Welcome("1.1h"),
        p.Ok(),
    ]
    events = proto.events(b".000,0.000,0.000|FS:0,0>\r\n")
    assert len(events) == 1 and isinstance(events[0], p.Status)


@pytest.mark.parametrize(
    "line", ["okay", "error:x", "<Bogus|MPos:0>", "<Idle|MPos:a,b>", "[nocolon]", "hello"]
)
def test_malformed_lines_raise_protocol_error(line: str) -> None:
    with pytest.raises(ProtocolError):
        p.parse_line(line)


GRBL_LINES = st.sampled_from(
    [
        b"ok\r\n",
        b"error:20\r\n",
        b"ALARM:2\r\n",
        b"<Run|MPos:1.000,2.000,0.000|FS:3000,600>\r\n",
        b"[MSG:Caution: Unlocked]\r\n",
        b"\r\nGrbl 1.1h ['$' for help]\r\n",
        b"$32=1\r\n",
        b"garbage!\r\n",
        b"\xff\xfe\r\n",
    ]
)


def _drain(proto: p.GrblProtocol) -> list[object]:
    out: list[object] = []
    while True:
        try:
            event = proto.next_event()
        except ProtocolError:
            out.append("ProtocolError")
            continue
        if event is None:
            return out
        out.append(event)


@settings(deadline=None)  # no wall-clock limit on a shared CI box
@given(st.lists(GRBL_LINES | st.binary(max_size=40), max_size=30), st.data())
def test_byte_by_byte_equals_one_chunk(parts: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(parts)
    whole = p.GrblProtocol()
    whole.receive_data(stream)
    expected = _drain(whole)
    split = p.GrblProtocol()
    got: list[object] = []
    for i in range(len(stream)):
        split.receive_data(stream[i : i + 1])
        got += _drain(split)
    assert got == expected
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    chunked = p.GrblProtocol()
    got = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        chunked.receive_data(stream[start:end])
        got += _drain(chunked)
    assert got == expected


@settings(deadline=None)  # no wall-clock limit on a shared CI box
@given(st.binary(max_size=600))
def test_random_bytes_only_raise_protocol_error(blob: bytes) -> None:
    proto = p.GrblProtocol()
    proto.receive_data(blob + b"\n")
    for _ in range(len(blob) + 2):
        try:
            if proto.next_event() is None:
                break
        except ProtocolError:
            continue


def test_encode_line_rules() -> None:
    assert p.encode_line(" G1 X1 Y2 ") == b"G1 X1 Y2\n"
    assert p.encode_line("G1X1(" + "c" * 70 + ")").endswith(b")\n")
    with pytest.raises(ProtocolError, match="80-char"):
        p.encode_line("G1X" + "1" * 80)
    for bad in ("G1 X1 ! Y2", "(hello?)", "G1 X1\nG1 X2", "G1 X1 é"):
        with pytest.raises(ProtocolError):
            p.encode_line(bad)
    with pytest.raises(ProtocolError, match="RX buffer"):
        p.encode_line("G1X1(" + "c" * 130 + ")")
    assert p.effective_length("G1 X1 (comment) ; tail") == 4


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("G1 X1\x18", "control characters"),  # soft reset: a control character first
        ("G1\rX1", "control characters"),
        ("G1 X1\x01", "control characters"),
        ("G1 X1 ~", "real-time"),
        ("G1 X1 ?", "real-time"),
        ("G1 X1 !", "real-time"),
    ],
)
def test_encode_line_names_what_is_wrong(line: str, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        p.encode_line(line)


def test_effective_length_drops_blanks_and_comments() -> None:
    assert p.effective_length("G1\tX1 Y2\x7f") == 7  # tab and spaces dropped, DEL kept
    assert p.effective_length("G1 X1 (a (b) c") == 5  # a comment ends at its first ")"
    assert p.effective_length("G1X1;(x)") == 4
    assert p.effective_length("") == 0
    assert p.encode_line("G1\tX1") == b"G1\tX1\n"  # a tab is white space, not a control char


def test_send_response_classification() -> None:
    assert p.is_send_response("$32=1")
    assert p.is_send_response("$H")
    assert p.is_send_response("G10 L20 P1 X0")
    assert not p.is_send_response("$J=G91 X1 F100")
    assert not p.is_send_response("G1 X1")
