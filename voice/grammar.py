"""The command grammar: a table of Dutch and English phrases per robot action, and pure matching rules.

Matching is normalised (case, punctuation, diacritics, immediate repeats) and fuzzy (difflib ratio, the
measure the voice notes' thresholds were taken with). A transcript is accepted when its best action scores
at least ``threshold`` and beats the next action by ``margin``; otherwise it is rejected with the
candidates. Safety first: "stop" and "sta op" are confused by Whisper in both directions, so whenever a
transcript could be "stop" the safe action wins (see :func:`match_command` and :func:`confirm_by_scores`).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum


class Action(str, Enum):
    STAND_UP = "stand_up"
    LIE_DOWN = "lie_down"
    SIT = "sit"
    WALK_FORWARD = "walk_forward"
    WALK_BACKWARD = "walk_backward"
    TURN_LEFT = "turn_left"
    TURN_RIGHT = "turn_right"
    STOP = "stop"
    HELLO = "hello"
    STRETCH = "stretch"
    EMERGENCY_STOP = "emergency_stop"


LANGUAGES = ("nl", "en")

PHRASES: Mapping[Action, Mapping[str, tuple[str, ...]]] = {
    Action.STAND_UP: {"nl": ("sta op",), "en": ("stand up",)},
    Action.LIE_DOWN: {"nl": ("ga liggen",), "en": ("lie down",)},
    Action.SIT: {"nl": ("ga zitten",), "en": ("sit down",)},
    Action.WALK_FORWARD: {"nl": ("loop vooruit",), "en": ("walk forward",)},
    Action.WALK_BACKWARD: {"nl": ("loop achteruit",), "en": ("walk backward",)},
    Action.TURN_LEFT: {"nl": ("draai links", "draai naar links"), "en": ("turn left",)},
    Action.TURN_RIGHT: {"nl": ("draai rechts", "draai naar rechts"), "en": ("turn right",)},
    Action.STOP: {"nl": ("stop",), "en": ("stop",)},
    Action.HELLO: {"nl": ("hallo", "zwaai"), "en": ("hello", "wave")},
    Action.STRETCH: {"nl": ("rek uit",), "en": ("stretch",)},
    Action.EMERGENCY_STOP: {"nl": ("noodstop",), "en": ("emergency stop",)},
}

SAFE_ACTION = Action.STOP
STOP_FAMILY = frozenset({Action.STOP, Action.EMERGENCY_STOP})
# Actions a misheard "stop" has turned into in measurements; they must never win over a possible "stop".
STOP_LOOKALIKES = frozenset({Action.STAND_UP})

DEFAULT_THRESHOLD = 0.70
DEFAULT_MARGIN = 0.10
# A stop look-alike must beat "stop" by this much, or the transcript "could be stop". The exact phrases
# themselves are 0.20 apart ("sta op" vs "stop"); "Stop op." (a measured mishearing of "sta op") is 0.04.
SAFETY_MARGIN = 0.15


@dataclass(frozen=True)
class Candidate:
    action: Action
    phrase: str
    confidence: float


@dataclass(frozen=True)
class Match:
    """The grammar's decision: ``command`` is None when rejected; ``reason`` says why, for people."""

    command: Candidate | None
    candidates: tuple[Candidate, ...]
    reason: str


def normalize(text: str) -> str:
    """Lower case, no diacritics, punctuation as spaces, single spaces, immediate repeats collapsed."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    words = re.sub(r"[^\w]+|_", " ", plain).split()
    return " ".join(_collapse_repeats(words))


def _collapse_repeats(words: list[str]) -> list[str]:
    """'stop stop stop' -> 'stop', 'lie down lie down' -> 'lie down' (Whisper repeats short commands), also
    when its repetition loop was cut off by the token limit mid-phrase: 'turn left turn left turn' -> 'turn left'."""
    for size in range(1, len(words) // 2 + 1):
        unit, whole = words[:size], len(words) // size
        if words[:whole * size] == unit * whole and _cut_prefix(words[whole * size:], unit):
            return unit
    return words


def _cut_prefix(tail: list[str], unit: list[str]) -> bool:
    """``tail`` is the start of ``unit``, its last word possibly cut short ('tur' of 'turn')."""
    if not tail:
        return True
    return tail[:-1] == unit[:len(tail) - 1] and unit[len(tail) - 1].startswith(tail[-1])


def phrases_for(language: str) -> list[tuple[Action, str]]:
    return [(action, phrase) for action, table in PHRASES.items() for phrase in table.get(language, ())]


def hotwords(language: str) -> str:
    """The vocabulary, comma separated, to bias Whisper's decoding toward the commands of ``language``."""
    return ", ".join(dict.fromkeys(phrase for _, phrase in phrases_for(language)))


def phrases_in(text: str, languages: tuple[str, ...] = LANGUAGES) -> list[str]:
    """The phrases of different actions that occur word for word in normalised ``text`` (a phrase inside
    a longer one found first, like "stop" in "emergency stop", does not count)."""
    table = sorted({(phrase, action) for language in languages for action, phrase in phrases_for(language)},
                   key=lambda item: -len(item[0]))
    rest = f" {text} "
    found: dict[Action, str] = {}
    for phrase, action in table:
        if f" {phrase} " in rest:
            rest = rest.replace(f" {phrase} ", " | ")
            found.setdefault(action, phrase)
    return list(found.values())


def rank(transcript: str, languages: tuple[str, ...] = LANGUAGES) -> tuple[Candidate, ...]:
    """The best phrase per action, best first (ties keep the table order)."""
    text = normalize(transcript)
    best: dict[Action, Candidate] = {}
    for language in languages:
        for action, phrase in phrases_for(language):
            score = difflib.SequenceMatcher(None, text, phrase, autojunk=False).ratio() if text else 0.0
            if action not in best or score > best[action].confidence:
                best[action] = Candidate(action, phrase, round(score, 3))
    return tuple(sorted(best.values(), key=lambda c: -c.confidence))


def match_command(
    transcript: str,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
    languages: tuple[str, ...] = LANGUAGES,
) -> Match:
    """Map a transcript (or typed text) to one action, or reject it with the candidates."""
    ranked = rank(transcript, languages)
    best = ranked[0]
    shown = tuple(c for c in ranked if best.confidence - c.confidence < 0.2)[:3]
    stop = next(c for c in ranked if c.action is SAFE_ACTION)
    text = normalize(transcript)
    if "stop" in text.split() and best.action not in STOP_FAMILY:
        return Match(stop, shown, f"'{transcript}' contains 'stop': the safe action wins")
    if len(heard := phrases_in(text, languages)) > 1:
        # Whisper biased with the vocabulary sometimes recites it ("sta op, ga liggen, ...").
        return Match(None, shown, f"several commands in one utterance ({', '.join(heard)}): say one at a time")
    if best.confidence < threshold:
        return Match(None, shown, f"no command matched well enough (best '{best.phrase}' {best.confidence:.2f}"
                                  f" < threshold {threshold:.2f})")
    if best.action in STOP_LOOKALIKES and best.confidence - stop.confidence < SAFETY_MARGIN:
        return Match(stop, shown, f"'{transcript}' could be 'stop' ({stop.confidence:.2f}) or '{best.phrase}'"
                                  f" ({best.confidence:.2f}): the safe action wins")
    close = [c for c in ranked[1:] if best.confidence - c.confidence < margin]
    if close:
        if stop in close:
            return Match(stop, shown, f"ambiguous between '{best.phrase}' and 'stop': the safe action wins")
        names = ", ".join(f"'{c.phrase}'" for c in (best, *close))
        return Match(None, shown, f"ambiguous between {names} (margin < {margin:.2f})")
    return Match(best, shown, "matched")


def confirm_by_scores(match: Match, scores: Mapping[Action, float], *, margin: float) -> Match:
    """Re-check a stop look-alike against how likely the audio is to say each phrase (log-probabilities).

    Biased decoding turns a spoken "stop" into "sta op"; the acoustic model itself, asked without bias,
    tells them apart. The look-alike is kept only if it is more than ``margin`` nats likelier than "stop".
    """
    command = match.command
    if command is None or command.action not in STOP_LOOKALIKES or command.action not in scores:
        return match
    lead = scores[command.action] - scores[SAFE_ACTION]
    if lead > margin:
        return Match(command, match.candidates, f"{match.reason}; the audio favours '{command.phrase}' over"
                                                f" 'stop' by {lead:.2f} nats")
    stop = Candidate(SAFE_ACTION, "stop", command.confidence)
    return Match(stop, match.candidates, f"transcribed '{command.phrase}', but the audio is as likely to say"
                                         f" 'stop' (lead {lead:.2f} < {margin:.2f} nats): the safe action wins")


# What each side of the "stop" / "sta op" question sounds like to Whisper. The real difference is one
# syllable against two ending in "op"; Whisper spells the two-syllable utterance "Sta op", "Stop op" or
# "Stap op". Measured on 24 espeak-ng "stop" clips: the one-syllable side always won by >= 1.58 nats.
ACOUSTIC_FORMS: Mapping[Action, Mapping[str, tuple[str, ...]]] = {
    Action.STAND_UP: {"nl": ("sta op", "stop op", "stap op"), "en": ("stand up",)},
    Action.STOP: {"nl": ("stop",), "en": ("stop",)},
}


def verification_phrases(action: Action, language: str) -> dict[Action, tuple[str, ...]]:
    """The phrases to score when ``action`` must be confirmed against "stop" (empty when it need not be)."""
    if action not in STOP_LOOKALIKES or action not in ACOUSTIC_FORMS:
        return {}
    return {key: ACOUSTIC_FORMS[key].get(language, PHRASES[key].get(language, ())) for key in (action, SAFE_ACTION)}
