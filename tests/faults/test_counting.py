"""The suite's counting, on frames made up here: a gap, a duplicate, a reordering or a wrong text
must show in the figures, or a fault test that passes would prove nothing."""

from __future__ import annotations

import time

from chat_llm_worker.scripted import split_deltas
from tests.support.faultload import Answer, FaultReport

EXPECTED = "the answer the scripted model repeats, cut into deltas"
DELTAS = split_deltas(EXPECTED)


def answer() -> Answer:
    made = Answer(expected=EXPECTED, client_message_id="c", sent_at=time.time())
    made.reply_id = "r"
    made.user_message_id = "u"
    return made


def token(seq: int, attempt: int = 1) -> dict[str, object]:
    return {"type": "token", "seq": seq, "attempt": attempt, "text": DELTAS[seq - 1], "deltas": 1}


def complete(seq: int, attempt: int = 1, text: str = EXPECTED) -> dict[str, object]:
    return {"type": "complete", "seq": seq, "attempt": attempt, "text": text}


def stream(made: Answer, seqs: list[int], attempt: int = 1) -> None:
    for seq in seqs:
        made.on_token(token(seq, attempt), time.time())


def report_of(*answers: Answer) -> FaultReport:
    return FaultReport("t", sessions=1, answers=list(answers))


def test_a_whole_answer_counts_clean() -> None:
    made = answer()
    stream(made, list(range(1, len(DELTAS) + 1)))
    made.end("complete", time.time(), complete(len(DELTAS) + 1))
    report = report_of(made)
    assert made.intact
    assert (report.generated, report.delivered, report.lost) == (len(DELTAS), len(DELTAS), 0)


def test_a_missing_token_is_a_gap_and_lost() -> None:
    made = answer()
    stream(made, [s for s in range(1, len(DELTAS) + 1) if s != 3])
    made.end("complete", time.time(), complete(len(DELTAS) + 1))
    report = report_of(made)
    assert made.missing == [3] and not made.intact
    assert report.lost == 1 and report.gaps == 1 and report.broken == [made]


def test_a_doubled_and_a_late_token_are_counted() -> None:
    made = answer()
    stream(made, [1, 2, 4, 3, 4, *range(5, len(DELTAS) + 1)])
    made.end("complete", time.time(), complete(len(DELTAS) + 1))
    assert (made.duplicates, made.out_of_order) == (1, 1)
    assert not made.intact


def test_a_text_other_than_the_expected_one_is_broken() -> None:
    made = answer()
    stream(made, list(range(1, len(DELTAS) + 1)))
    made.end("complete", time.time(), complete(len(DELTAS) + 1, text=EXPECTED + "!"))
    assert not made.intact


def test_a_retried_answer_counts_its_last_attempt_and_drops_the_earlier_one() -> None:
    made = answer()
    stream(made, [1, 2, 3])
    made.on_retrying({"type": "retrying", "attempt": 2}, time.time())
    stream(made, [4], attempt=1)  # late, from the dead attempt
    stream(made, list(range(1, len(DELTAS) + 1)), attempt=2)
    made.end("complete", time.time(), complete(len(DELTAS) + 1, attempt=2))
    assert made.intact and made.stale == 1 and made.retrying == [2]
    assert report_of(made).delivered == len(DELTAS)


def test_an_answer_without_an_outcome_is_stuck_and_a_lost_message() -> None:
    made = answer()
    stream(made, [1, 2])
    made.end("stuck", time.time())
    report = report_of(made)
    assert report.stuck == 1 and report.messages_lost == 1
    assert report.row()[FaultReport.HEADER.index("msgs_lost")] == "1"


def test_recovery_is_never_when_an_answer_hit_by_the_fault_hears_nothing_again() -> None:
    made = answer()
    stream(made, [1])
    made.fault_at = time.time()
    made.end("stuck", time.time() + 1)
    assert report_of(made).row()[FaultReport.HEADER.index("recover_s")] == "never"
