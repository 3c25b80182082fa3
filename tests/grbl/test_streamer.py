"""Character counting and send-response bookkeeping, and the resume preamble."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crown_edge.drivers.grbl.streamer import Streamer, resume_preamble
from crown_edge.errors import ProtocolError

LINES = st.lists(
    st.integers(1, 60).map(lambda n: "G1X" + "1" * n) | st.sampled_from(["$32=1", "G10 L20 X0"]),
    min_size=1,
    max_size=60,
)


@settings(deadline=None)  # no wall-clock limit on a shared CI box
@given(LINES, st.lists(st.booleans(), max_size=400))
def test_character_counting_never_overfills_and_sends_each_line_once(
    lines: list[str], choices: list[bool]
) -> None:
    streamer = Streamer(lines)
    sent: list[bytes] = []
    acked: list[int] = []
    moves = iter(choices)
    while not streamer.all_acked:
        send = next(moves, True) and not streamer.finished_sending
        if send and (data := streamer.next_to_send()) is not None:
            sent.append(data)
        elif streamer.in_flight:
            acked.append(streamer.on_ok())
        else:
            data = streamer.next_to_send()
            assert data is not None
            sent.append(data)
        assert streamer.in_flight_bytes <= 127
    assert [d.decode().strip() for d in sent] == lines
    assert acked == list(range(1, len(lines) + 1))
    assert streamer.acked_lines == streamer.last_acked_line == len(lines)


def test_settings_lines_are_sent_alone() -> None:
    streamer = Streamer(["G1X1", "$32=1", "G1X2"])
    assert streamer.next_to_send() == b"G1X1\n"
    assert streamer.next_to_send() is None  # $32 waits for the G1 to be answered
    streamer.on_ok()
    assert streamer.next_to_send() == b"$32=1\n"
    assert streamer.next_to_send() is None
    streamer.on_ok()
    assert streamer.next_to_send() == b"G1X2\n"


def test_send_response_mode_keeps_one_line_in_flight() -> None:
    streamer = Streamer(["G1X1", "G1X2"], send_response=True)
    assert streamer.next_to_send() == b"G1X1\n"
    assert streamer.next_to_send() is None


def test_bad_line_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ProtocolError) as info:
        Streamer(["G1X1", "G1X" + "9" * 90])
    assert info.value.fields["line"] == 2


def test_answer_without_line_in_flight_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        Streamer(["G1X1"]).on_ok()


def test_start_line_skips_and_numbers_absolutely() -> None:
    lines = ["(job J)", "G21", "M4 S500", "F1000", "G1X1Y1", "G1X2Y2", "G1X3Y3"]
    streamer = Streamer(lines, start_line=5, preamble=resume_preamble(lines, 5))
    sent = []
    while (data := streamer.next_to_send()) is not None:
        sent.append(data.decode().strip())
    assert sent[0] == "(job J)" and sent[-2:] == ["G1X2Y2", "G1X3Y3"]
    assert "G0X1.000Y1.000" in sent and "M5" in sent and "M4S500" in sent
    numbers = [streamer.on_ok() for _ in sent]
    assert numbers[-2:] == [6, 7] and set(numbers[:-2]) == {0}
    assert streamer.acked_lines == 2 and streamer.last_acked_line == 7


def test_resume_preamble_empty_from_start() -> None:
    assert resume_preamble(["G1X1"], 0) == []
