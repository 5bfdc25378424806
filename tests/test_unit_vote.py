"""Voting a burst into one read, and one read per vehicle (stage tests: PlateRead lists in, Vote out)."""
from __future__ import annotations

from unit.recognise import Candidate, PlateRead
from unit.vote import Deduper, edits, vote


def pr(text: str, conf: float, det: float = 0.9, region: str = "us-ca", cands: list[tuple[str, float]] | None = None):
    return PlateRead(box=(10, 10, 60, 30), text=text, confidence=conf, det_score=det, region=region,
                     candidates=[Candidate(p, s) for p, s in (cands or [(text, conf)])])


def test_characterwise_confidence_weighted_vote_fixes_single_frame_errors():
    # no single frame is right; every position is right by weight
    reads = [pr("7A8C123", 0.6), pr("7ABC1Z3", 0.7), pr("7ABC123", 0.5), pr("1ABC123", 0.4), pr("7ABCI23", 0.3)]
    reads[2].text = "7ABG123"
    v = vote(reads)
    assert v.plate == "7ABC123"
    assert v.support == 0 and v.frames == 5
    assert 0 < v.confidence < 0.7
    assert v.candidates[0].plate == "7ABC123"


def test_heavier_frames_win_a_split_character():
    v = vote([pr("ABC123", 0.9), pr("ABC128", 0.3), pr("ABC128", 0.3)])
    assert v.plate == "ABC123"          # 0.9 outweighs 0.6
    v = vote([pr("ABC123", 0.4), pr("ABC128", 0.3), pr("ABC128", 0.3)])
    assert v.plate == "ABC128"


def test_length_vote_and_best_crop_comes_from_an_agreeing_frame():
    reads = [pr("ABC1234", 0.5), pr("ABC123", 0.8), pr("ABC123", 0.7), pr("ABC12", 0.2)]
    v = vote(reads)
    assert v.plate == "ABC123"
    assert v.best is reads[1] and v.best_index == 1
    assert v.support == 2


def test_two_plates_in_one_burst_heaviest_cluster_wins():
    reads = [pr("7ABC123", 0.8), pr("7ABC123", 0.7), pr("XYZ987", 0.9)]
    v = vote(reads)
    assert v.plate == "7ABC123"
    assert v.others == ["XYZ987"]


def test_candidates_are_merged_across_frames_and_ranked():
    reads = [pr("ABC123", 0.8, cands=[("ABC123", 0.8), ("A8C123", 0.15)]),
             pr("ABC123", 0.7, cands=[("ABC123", 0.7), ("A8C123", 0.2), ("ABC1Z3", 0.05)])]
    v = vote(reads, top_n=3)
    assert [c.plate for c in v.candidates] == ["ABC123", "A8C123", "ABC1Z3"]
    assert v.candidates[1].score > v.candidates[2].score


def test_nothing_readable_gives_no_vote():
    assert vote([]) is None
    assert vote([pr("A", 0.9)], min_chars=2) is None
    assert vote([pr("ABC", 0.0)]) is None


def test_region_is_the_weighted_majority():
    v = vote([pr("ABC123", 0.9, region="us-ca"), pr("ABC123", 0.2, region="mx"), pr("ABC123", 0.2, region="mx")])
    assert v.region == "us-ca"


def test_edits():
    assert edits("ABC123", "ABC123") == 0
    assert edits("ABC123", "A8C123") == 1
    assert edits("ABC123", "ABC1234") == 1
    assert edits("", "ABC") == 3


def test_dedup_one_vehicle_one_read_per_lane_within_window():
    d = Deduper(window_s=10, max_edits=1)
    assert d.seen("in", "7ABC123", 100.0) is False
    assert d.seen("in", "7ABC123", 105.0) is True        # same vehicle, second trigger
    assert d.seen("in", "7A8C123", 107.0) is True        # OCR jitter, same vehicle
    assert d.seen("out", "7ABC123", 108.0) is False      # other lane: another read
    assert d.seen("in", "XYZ987", 108.0) is False        # other plate
    assert d.seen("in", "7ABC123", 116.0) is True        # window slid while the vehicle stayed (stop-and-go)
    assert d.seen("in", "7ABC123", 127.0) is False       # gone and back later: a new read
    d.window_s = 0                                       # live-reloaded to "off"
    assert d.seen("in", "7ABC123", 127.5) is False


def test_decide_reads_drops_or_marks_a_vote_below_min_read_confidence():
    from unit.vote import (BELOW_THRESHOLD, LOW_CONFIDENCE_READ, NO_PLATE, READ, Thresholds, decide,
                           frame_votes)
    reads = [pr("7ABC123", 0.3, cands=[("7ABC123", 0.3), ("7A8C123", 0.2)]), pr("7ABC123", 0.25)]
    v, outcome = decide(reads, Thresholds(min_read_confidence=0.2))
    assert outcome == READ and v.plate == "7ABC123"
    v, outcome = decide(reads, Thresholds(min_read_confidence=0.5))
    assert outcome == BELOW_THRESHOLD and v.confidence < 0.5          # dropped: the unit stores nothing
    v, outcome = decide(reads, Thresholds(min_read_confidence=0.5, low_confidence_reads=True))
    assert outcome == LOW_CONFIDENCE_READ and v.plate == "7ABC123"    # kept, with its candidates, marked
    assert "7A8C123" in [c.plate for c in v.candidates]
    assert decide([], Thresholds(low_confidence_reads=True)) == (None, NO_PLATE)   # no plate: nothing to mark
    # frame_votes holds a frame's read to min_det_score and min_frame_confidence
    th = Thresholds(min_det_score=0.5, min_frame_confidence=0.2)
    assert frame_votes(pr("AB1", 0.3, det=0.6), th)
    assert not frame_votes(pr("AB1", 0.3, det=0.4), th) and not frame_votes(pr("AB1", 0.1, det=0.9), th)


def test_thresholds_are_the_recognition_configs():
    from unit.config import RecognitionConfig
    from unit.vote import Thresholds
    rc = RecognitionConfig(min_det_score=0.4, min_frame_confidence=0.1, min_read_confidence=0.2, min_chars=3,
                           top_n=4, low_confidence_reads=True)
    assert Thresholds.of(rc) == Thresholds(0.4, 0.1, 0.2, 3, 4, True)
