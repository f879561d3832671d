"""The command grammar: every phrase, normalisation, fuzzy matches of measured Whisper output, rejection,
and the stop / sta op safety rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetfleet.voice.grammar import (
    PHRASES,
    Action,
    Match,
    confirm_by_scores,
    hotwords,
    match_command,
    normalize,
    verification_phrases,
)

EVERY_PHRASE = [(action, language, phrase) for action, table in PHRASES.items()
                for language, phrases in table.items() for phrase in phrases]


@pytest.mark.parametrize(("action", "language", "phrase"), EVERY_PHRASE)
def test_every_phrase_maps_to_its_action(action: Action, language: str, phrase: str) -> None:
    match = match_command(phrase)
    assert match.command is not None and match.command.action is action
    assert match.command.confidence == 1.0


def test_both_languages_cover_every_action() -> None:
    assert set(PHRASES) == set(Action)
    assert all(table.get("nl") and table.get("en") for table in PHRASES.values())


@pytest.mark.parametrize(("text", "expected"), [
    ("Sta op!", "sta op"), ("  STÁ   ÓP.  ", "sta op"), ("Draai naar links...", "draai naar links"),
    ("stop, stop, stop", "stop"), ("lie down, lie down,", "lie down"), ("Noodstop!?", "noodstop"), ("", ""),
    ("turn left, turn left, turn left, turn", "turn left"), ("turn left, turn left, tur", "turn left"),
    ("turn left, turn right", "turn left turn right"), ("turn left, turn", "turn left turn"),
    ("sta op, sta op, stop", "sta op sta op stop"),
])
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(("transcript", "action"), [
    # measured Whisper base output for espeak-ng clips (docs/voice.md)
    ("ga meten", Action.SIT), ("Loopt mooi uit.", Action.WALK_FORWARD), ("Rai dat links!", Action.TURN_LEFT),
    ("And up.", Action.STAND_UP), ("Walk forward.", Action.WALK_FORWARD), ("stand up!", Action.STAND_UP),
    ("Rek out!", Action.STRETCH), ("Storp.", Action.STOP), ("Top.", Action.STOP), ("noodstop", Action.EMERGENCY_STOP),
    ("Emergency stop.", Action.EMERGENCY_STOP), ("Hallo!", Action.HELLO), ("wave", Action.HELLO),
])
def test_fuzzy_matches_of_real_transcripts(transcript: str, action: Action) -> None:
    match = match_command(transcript)
    assert match.command is not None and match.command.action is action, match.reason


@pytest.mark.parametrize("transcript", ["Light down", "Loopt, eruit."])
def test_a_tie_between_two_actions_is_rejected_with_both_candidates(transcript: str) -> None:
    match = match_command(transcript)
    assert match.command is None and "ambiguous" in match.reason
    assert len({c.action for c in match.candidates}) >= 2
    assert abs(match.candidates[0].confidence - match.candidates[1].confidence) < 0.1


@pytest.mark.parametrize("transcript", ["", "5", "Laten we gaan.", "Ja, dat is het!", "maai",
                                        "sta op, ga liggen, loop vooruit, draai naar links, draai naar links"])
def test_below_the_threshold_is_rejected(transcript: str) -> None:
    match = match_command(transcript)
    assert match.command is None and ("threshold" in match.reason or "several commands" in match.reason)


@pytest.mark.parametrize("transcript", ["Stop op.", "stop op", "sta op stop", "stand up stop", "Not stop.",
                                        "stop stand up"])
def test_a_transcript_that_could_be_stop_yields_stop(transcript: str) -> None:
    match = match_command(transcript)
    assert match.command is not None and match.command.action is Action.STOP, match.reason
    assert "safe action" in match.reason


@pytest.mark.parametrize("transcript", ["sta op, ga liggen", "hallo, zwaai naar rechts, draai naar rechts",
                                        "walk forward turn left"])
def test_several_commands_in_one_utterance_are_rejected(transcript: str) -> None:
    match = match_command(transcript)
    assert match.command is None and "several commands" in match.reason


def test_exact_sta_op_is_stand_up() -> None:
    match = match_command("Sta op.")
    assert match.command is not None and match.command.action is Action.STAND_UP


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="stop a", min_size=1, max_size=12))
def test_text_containing_the_word_stop_never_stands_up(noise: str) -> None:
    transcript = f"{noise} stop"
    match = match_command(transcript)
    assert match.command is None or match.command.action in (Action.STOP, Action.EMERGENCY_STOP), transcript


def _stand_up() -> Match:
    match = match_command("sta op")
    assert match.command is not None and match.command.action is Action.STAND_UP
    return match


def test_audio_scores_keep_stand_up_only_when_it_is_likelier_than_stop() -> None:
    kept = confirm_by_scores(_stand_up(), {Action.STAND_UP: -2.0, Action.STOP: -2.5}, margin=0.0)
    assert kept.command is not None and kept.command.action is Action.STAND_UP
    for stop_score in (-2.0, -1.0):  # a tie, and stop likelier: the safe action wins
        changed = confirm_by_scores(_stand_up(), {Action.STAND_UP: -2.0, Action.STOP: stop_score}, margin=0.0)
        assert changed.command is not None and changed.command.action is Action.STOP
    stricter = confirm_by_scores(_stand_up(), {Action.STAND_UP: -2.0, Action.STOP: -2.5}, margin=1.0)
    assert stricter.command is not None and stricter.command.action is Action.STOP


def test_only_stop_lookalikes_are_verified() -> None:
    assert verification_phrases(Action.WALK_FORWARD, "nl") == {}
    phrases = verification_phrases(Action.STAND_UP, "nl")
    assert "sta op" in phrases[Action.STAND_UP] and phrases[Action.STOP] == ("stop",)
    walk = match_command("loop vooruit")
    assert confirm_by_scores(walk, {Action.STOP: 0.0}, margin=0.0) == walk


def test_hotwords_list_the_vocabulary_of_one_language() -> None:
    assert hotwords("nl").startswith("sta op, ") and "stop" in hotwords("nl") and "stand up" not in hotwords("nl")
    assert "emergency stop" in hotwords("en") and "noodstop" not in hotwords("en")
