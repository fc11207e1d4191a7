"""emojiray.data.labels: the emotion of an emoji, pinned with examples (see the module docstring)."""

from __future__ import annotations

import pytest

from emojiray.data.labels import EMOTION_VOCAB, EMOTIONS, NO_EMOTION, emotion_of, normalize_emotion, slug
from emojiray.errors import EmojirayError

SMILEYS = "Smileys & Emotion"

# (Unicode name, category, subcategory, emotion)
CATEGORISED = [
    ("GRINNING FACE", SMILEYS, "face-smiling", "happy"),
    ("SMILING FACE WITH HEART-SHAPED EYES", SMILEYS, "face-affection", "love"),
    ("FACE WITH STUCK-OUT TONGUE", SMILEYS, "face-tongue", "playful"),
    ("NEUTRAL FACE", SMILEYS, "face-neutral-skeptical", "neutral"),
    ("CRYING FACE", SMILEYS, "face-concerned", "sad"),
    ("POUTING FACE", SMILEYS, "face-negative", "angry"),
    ("FACE SCREAMING IN FEAR", SMILEYS, "face-concerned", "fearful/surprised"),
    ("ASTONISHED FACE", SMILEYS, "face-concerned", "fearful/surprised"),
    ("FACE WITH MEDICAL MASK", SMILEYS, "face-unwell", "sick"),
    ("SKULL", SMILEYS, "face-negative", "other"),
    ("ROBOT FACE", SMILEYS, "face-costume", "other"),
    ("SMILING FACE WITH OPEN MOUTH AND COLD SWEAT", SMILEYS, "face-smiling", "happy"),
    ("CRYING CAT FACE", SMILEYS, "cat-face", "sad"),
    # rule order and exclusions
    ("FACE WITH COLD SWEAT", SMILEYS, "face-concerned", "fearful/surprised"),
    ("FACE WITH OPEN MOUTH", SMILEYS, "face-concerned", "fearful/surprised"),
    ("SMILING FACE WITH OPEN MOUTH", SMILEYS, "face-smiling", "happy"),
    ("FACE WITH OPEN MOUTH VOMITING", SMILEYS, "face-unwell", "sick"),
    ("FACE WITH TEARS OF JOY", SMILEYS, "face-smiling", "happy"),
    ("SMILING FACE WITH TEAR", SMILEYS, "face-affection", "happy"),
    ("FACE HOLDING BACK TEARS", SMILEYS, "face-concerned", "sad"),
    ("LOUDLY CRYING FACE", SMILEYS, "face-concerned", "sad"),
    ("SMILING FACE WITH HORNS", SMILEYS, "face-negative", "angry"),
    ("KISSING FACE", SMILEYS, "face-affection", "love"),
    ("WINKING FACE", SMILEYS, "face-smiling", "playful"),
    ("GRINNING FACE WITH ONE LARGE AND ONE SMALL EYE", SMILEYS, "face-tongue", "playful"),
    ("FACE WITH HAND OVER MOUTH", SMILEYS, "face-hand", "neutral"),
    ("FACE WITH OPEN EYES AND HAND OVER MOUTH", SMILEYS, "face-hand", "neutral"),
    ("SMIRKING FACE", SMILEYS, "face-neutral-skeptical", "neutral"),
    ("SLEEPING FACE", SMILEYS, "face-sleepy", "neutral"),
    ("WEARY CAT FACE", SMILEYS, "cat-face", "fearful/surprised"),
    ("POUTING CAT FACE", SMILEYS, "cat-face", "angry"),
    ("SEE-NO-EVIL MONKEY", SMILEYS, "monkey-face", "playful"),
    ("DIZZY FACE", SMILEYS, "face-unwell", "sick"),
    ("PILE OF POO", SMILEYS, "face-costume", "other"),
    # no keyword: the subcategory decides
    ("MELTING FACE", SMILEYS, "face-smiling", "happy"),
    ("DOWNCAST FACE WITH SWEAT", SMILEYS, "face-concerned", "sad"),
    ("FACE WITH FINGER COVERING CLOSED LIPS", SMILEYS, "face-hand", "neutral"),
    ("SERIOUS FACE", SMILEYS, "face-negative", "angry"),
    ("MYSTERY FACE", SMILEYS, "face-costume", "other"),
    # not faces
    ("THUMBS UP SIGN", "People & Body", "hand-fingers-closed", NO_EMOTION),
    ("RED HEART", SMILEYS, "heart", NO_EMOTION),
    ("KISS MARK", SMILEYS, "emotion", NO_EMOTION),
    ("GRINNING FACE", "People & Body", "person", NO_EMOTION),
    ("MONKEY FACE", "Animals & Nature", "animal-mammal", NO_EMOTION),
]

# names from sources without Unicode categories
NAME_ONLY = [
    ("grinning face", "happy"),
    ("GRINNING FACE", "happy"),
    ("grinning_face", "happy"),
    ("smiley", "happy"),
    ("face screaming in fear", "fearful/surprised"),
    ("crying cat face", "sad"),
    ("some unknown face", "other"),
    ("pizza", NO_EMOTION),
    ("thumbs up", NO_EMOTION),
    ("red heart", NO_EMOTION),
]


@pytest.mark.parametrize("name, category, subcategory, expected", CATEGORISED)
def test_emotion_of_categorised_emoji(name, category, subcategory, expected):
    assert emotion_of(name, category, subcategory) == expected


@pytest.mark.parametrize("name, expected", NAME_ONLY)
def test_emotion_of_name_only(name, expected):
    assert emotion_of(name) == expected


def test_every_label_is_in_the_vocabulary():
    labels = [emotion_of(n, c, s) for n, c, s, _ in CATEGORISED] + [emotion_of(n) for n, _ in NAME_ONLY]
    assert set(labels) <= set(EMOTION_VOCAB)
    assert set(EMOTIONS) <= set(labels)  # the examples reach every emotion...
    assert NO_EMOTION in labels  # ...and "none"


def test_vocabulary():
    assert EMOTION_VOCAB == EMOTIONS + ("none",)
    assert len(set(EMOTION_VOCAB)) == len(EMOTION_VOCAB) == 10
    assert "fearful/surprised" in EMOTIONS and "none" not in EMOTIONS


@pytest.mark.parametrize("value, expected", [
    ("Fearful", "fearful/surprised"),
    ("surprised", "fearful/surprised"),
    ("fear", "fearful/surprised"),
    ("fearful_surprised", "fearful/surprised"),
    ("fearful/surprised", "fearful/surprised"),
    (" HAPPY ", "happy"),
    ("none", "none"),
    ("other", "other"),
])
def test_normalize_emotion(value, expected):
    assert normalize_emotion(value) == expected


@pytest.mark.parametrize("value", ["bogus", "", "happy sad"])
def test_normalize_emotion_rejects_unknown(value):
    with pytest.raises(EmojirayError) as info:
        normalize_emotion(value)
    message = str(info.value)
    assert "\n" not in message and "unknown emotion" in message and "fearful/surprised" in message


def test_normalize_is_identity_on_vocabulary():
    assert [normalize_emotion(v) for v in EMOTION_VOCAB] == list(EMOTION_VOCAB)


@pytest.mark.parametrize("value, expected", [
    ("fearful/surprised", "fearful-surprised"),
    ("happy", "happy"),
    ("Face With Tears", "face-with-tears"),
    ("  a//b  ", "a-b"),
    ("", "unlabelled"),
    ("///", "unlabelled"),
])
def test_slug(value, expected):
    assert slug(value) == expected


def test_slugs_of_vocabulary_are_distinct_and_safe():
    slugs = [slug(v) for v in EMOTION_VOCAB]
    assert len(set(slugs)) == len(slugs)
    assert all(s.replace("-", "").isalnum() for s in slugs)
