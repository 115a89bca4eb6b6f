"""The supervisor's handling of its children's output: lines, prefixes, the tail, access logs."""

from hypothesis import given
from hypothesis import strategies as st

from tools.supervisor.logs import LineSplitter, Prefixer, Tail, is_routine


def test_lines_split_across_chunks_come_out_whole() -> None:
    splitter = LineSplitter()

    assert splitter.feed(b"INFO: Started ser") == []
    assert splitter.feed(b"ver process\nINFO: Wait") == ["INFO: Started server process"]
    assert splitter.feed(b"ing\r\n") == ["INFO: Waiting"]


def test_a_carriage_return_ends_a_line_and_blank_lines_are_dropped() -> None:
    splitter = LineSplitter()

    assert splitter.feed(b"seeded 10\rseeded 20\r\n\n  \nok\n") == ["seeded 10", "seeded 20", "ok"]


def test_output_ending_without_a_newline_is_flushed_at_the_end() -> None:
    splitter = LineSplitter()
    splitter.feed(b"ERROR: Application startup failed. Exiting.")

    assert splitter.flush() == ["ERROR: Application startup failed. Exiting."]
    assert splitter.flush() == []


def test_bytes_that_are_not_utf8_are_replaced_not_fatal() -> None:
    assert LineSplitter().feed(b"caf\xe9 \xff\n") == ["caf\ufffd \ufffd"]


def test_an_overlong_line_is_cut_instead_of_held() -> None:
    splitter = LineSplitter(max_line=10)

    assert splitter.feed(b"x" * 25) == ["x" * 10, "x" * 10]
    assert splitter.flush() == ["x" * 5]


@given(st.lists(st.text(alphabet="ab \n", max_size=30), max_size=10))
def test_splitting_never_loses_or_invents_text(chunks: list[str]) -> None:
    splitter = LineSplitter()
    lines = [line for chunk in chunks for line in splitter.feed(chunk.encode())]
    lines += splitter.flush()

    expected = [line.rstrip() for line in "".join(chunks).split("\n") if line.strip()]
    assert lines == expected


def test_prefixes_name_the_child_and_line_up() -> None:
    prefixer = Prefixer(["provider", "authority", "supervisor"], colour=False)

    assert prefixer.line("provider", "INFO: ready") == "[provider]   INFO: ready"
    assert prefixer.line("supervisor", "started") == "[supervisor] started"


def test_on_a_terminal_each_child_has_its_own_colour() -> None:
    prefixer = Prefixer(["provider", "authority"], colour=True)

    provider, authority = prefixer.prefix("provider"), prefixer.prefix("authority")

    assert "[provider]" in provider
    assert provider.startswith("\x1b[")
    assert provider.endswith("\x1b[0m")
    assert provider[:5] != authority[:5]


def test_the_tail_keeps_only_the_last_lines() -> None:
    tail = Tail(size=3)
    for number in range(5):
        tail.add(f"line {number}")

    assert tail.lines() == ["line 2", "line 3", "line 4"]
    tail.clear()
    assert tail.lines() == []


def test_a_coloured_line_per_event_is_routine_too() -> None:
    coloured = "2026-11-23 15:17:54,614 \x1b[32mINFO\x1b[0m     - referral.events | nearhome-ledger"
    assert is_routine(f"{coloured} | 0-1-179544 - Received")
    assert is_routine(f"{coloured} | 0-1-179544 - Processed")
    assert not is_routine(f"{coloured} |            - Consumer nearhome-ledger-1 assigned")


def test_a_line_per_request_or_per_event_is_routine_and_the_rest_is_not() -> None:
    assert is_routine('INFO:     127.0.0.1:51234 - "GET /v1/vacancies HTTP/1.1" 200 OK')
    assert is_routine('INFO:     127.0.0.1:40000 - "POST /v1/referrals?x=1 HTTP/1.1" 422')
    assert is_routine(
        "2026-11-23 14:12:23,762 INFO     - provider.events | nearhome-ledger | 1075- - Received"
    )
    assert is_routine(
        "2026-11-23 14:12:23,776 INFO     - provider.events | nearhome-ledger | 1075- - Processed"
    )
    assert not is_routine("INFO:     Uvicorn running on http://127.0.0.1:8001")
    assert not is_routine("ERROR:    Application startup failed. Exiting.")
    assert not is_routine(
        "2026-11-23 14:04:22,261 INFO     - provider.events | nearhome-alerting |            - "
        "Consumer nearhome-alerting-1 assigned to partitions"
    )


def test_a_json_line_per_request_or_per_event_is_routine_and_the_rest_is_not() -> None:
    head = '{"timestamp": "2026-11-27T20:41:07.120731+00:00", "level": "INFO", "logger": '
    assert is_routine(head + '"nearhome.access", "message": "GET /v1/referrals 200"}')
    assert is_routine(head + '"faststream.access.kafka", "message": "Received", "topic": "x"}')
    assert is_routine(head + '"faststream.access.kafka", "message": "Processed"}')
    assert not is_routine(head + '"faststream.access.kafka", "message": "Consumer assigned"}')
    assert not is_routine(head + '"uvicorn.error", "message": "Uvicorn running on http://x"}')
    assert not is_routine('{"level": "ERROR", "logger": "nearhome.access", "message": "GET /"}')
    assert not is_routine("{not json")


def test_a_text_line_per_request_or_per_event_is_routine_and_the_rest_is_not() -> None:
    assert is_routine(
        "2026-11-27 20:41:07,120 INFO  nearhome.access [authority] GET /v1/referrals 200 "
        "request_id=5c1e"
    )
    assert is_routine(
        "2026-11-27 20:41:07,120 INFO  faststream.access.kafka [ledger] Received event_id=1"
    )
    assert not is_routine(
        "2026-11-27 20:41:07,120 INFO  uvicorn.error [authority] Uvicorn running on http://x"
    )
