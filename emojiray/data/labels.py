"""Label vocabularies and the emotion label of face emoji (pure Python).

Emotion mapping
---------------
Only face emoji get an emotion; every other emoji is ``none``. A face emoji is one in the
"Smileys & Emotion" category whose subcategory is ``face-*``, ``cat-face`` or ``monkey-face``
(people, hands and hearts are not faces). Two passes decide the label; the first match wins.

1. Keywords in the Unicode name (e.g. "FACE SCREAMING IN FEAR"), rules in this order
   (``_RULES`` below is the source of truth; ``tests/data/test_labels.py`` pins examples):

   ==================  =========================================================================
   other               SKULL, GHOST, ALIEN, ROBOT, CLOWN, POO, OGRE, GOBLIN (costumes)
   sick                MEDICAL MASK, THERMOMETER, BANDAGE, NAUSEATED, VOMITING, SNEEZING, WOOZY,
                       UNEVEN EYES, DIZZY, SPIRAL EYES, OVERHEATED, FREEZING, EXPLODING
   fearful/surprised   FEAR, SCREAM, ASTONISHED, ANXIOUS, HUSHED, FLUSHED, WEARY, ANGUISHED,
                       SHAKING FACE; COLD SWEAT unless SMILING; OPEN MOUTH unless smiling,
                       grinning, vomiting or with a hand
   angry               ANGRY, POUTING, RAGE, SYMBOLS COVERING MOUTH, TRIUMPH, HORNS, IMP
   sad                 CRY, SAD, DISAPPOINTED, FROWNING, PENSIVE, WORRIED, PERSEVERING, CONFOUNDED,
                       PLEADING, TIRED, DIAGONAL MOUTH; TEAR unless JOY or SMILING
   love                HEART, KISS
   playful             TONGUE, WINK, ZANY, ONE LARGE AND ONE SMALL EYE, UPSIDE-DOWN, MONEY-MOUTH,
                       SAVOURING, MONKEY
   happy               GRIN, SMIL(E/ING), LAUGH, JOY, HALO, PARTY, STAR EYES, SUNGLASSES, COWBOY
   neutral             NEUTRAL, EXPRESSIONLESS, WITHOUT MOUTH, ZIPPER, UNAMUSED, SMIRK, ROLLING EYES,
                       EYEBROW, DOTTED LINE, EXHALING, CLOUDS, SLEEP, RELIEVED, THINKING, SHUSHING,
                       SALUTING, LYING, GRIMACING, HEAD SHAKING, YAWNING, BAGS UNDER EYES, CONFUSED,
                       MONOCLE, NERD, DISGUISED, DROOLING, PEEKING, HAND OVER/COVERING MOUTH, HUGGING
   ==================  =========================================================================

2. Otherwise by subcategory: face-smiling/face-hat -> happy, face-affection -> love,
   face-tongue -> playful, face-neutral-skeptical/face-sleepy/face-hand/face-glasses -> neutral,
   face-concerned -> sad, face-negative -> angry, face-unwell -> sick, anything else -> other.

Sources without Unicode categories (a Hugging Face text column, a folder with its own labels)
apply the name pass only when the name mentions a face ("... FACE", "SMILEY"), else ``other`` for such a face and
``none`` for everything else.
"""

from __future__ import annotations

EMOTIONS = ("happy", "love", "playful", "neutral", "sad", "angry", "fearful/surprised", "sick", "other")
NO_EMOTION = "none"
EMOTION_VOCAB = EMOTIONS + (NO_EMOTION,)
EMOTION_ALIASES = {"fearful": "fearful/surprised", "surprised": "fearful/surprised",
                   "fear": "fearful/surprised", "fearful_surprised": "fearful/surprised"}

UNICODE_CATEGORIES = frozenset({
    "Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places",
    "Activities", "Objects", "Symbols", "Flags", "Component",
})
FACE_SUBCATEGORIES_PREFIX = ("face-",)
FACE_SUBCATEGORIES = ("cat-face", "monkey-face")

# (label, include keywords, exclude keywords); first matching rule wins.
_RULES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("other", ("SKULL", "GHOST", "ALIEN", "ROBOT", "CLOWN", "POO", "OGRE", "GOBLIN"), ()),
    ("sick", ("MEDICAL MASK", "THERMOMETER", "BANDAGE", "NAUSEATED", "VOMITING", "SNEEZING", "WOOZY",
              "UNEVEN EYES", "DIZZY", "SPIRAL EYES", "OVERHEATED", "FREEZING", "EXPLODING"), ()),
    ("fearful/surprised", ("FEAR", "SCREAM", "ASTONISHED", "ANXIOUS", "HUSHED", "FLUSHED", "WEARY",
                           "ANGUISHED", "SHAKING FACE"), ()),
    ("fearful/surprised", ("COLD SWEAT",), ("SMILING",)),
    ("fearful/surprised", ("OPEN MOUTH",), ("SMILING", "SMILE", "GRINNING", "VOMITING", "HAND")),
    ("angry", ("ANGRY", "POUTING", "RAGE", "SYMBOLS COVERING MOUTH", "TRIUMPH", "HORNS", "IMP"), ()),
    ("sad", ("CRY", "SAD", "DISAPPOINTED", "FROWNING", "PENSIVE", "WORRIED", "PERSEVERING",
             "CONFOUNDED", "PLEADING", "TIRED", "DIAGONAL MOUTH"), ()),
    ("sad", ("TEAR",), ("JOY", "SMILING")),
    ("love", ("HEART", "KISS"), ()),
    ("playful", ("TONGUE", "WINK", "ZANY", "ONE LARGE AND ONE SMALL EYE", "UPSIDE-DOWN", "MONEY-MOUTH",
                 "SAVOURING", "MONKEY"), ()),
    ("happy", ("GRIN", "SMIL", "LAUGH", "JOY", "HALO", "PARTY", "STAR EYES", "SUNGLASSES", "COWBOY"), ()),
    ("neutral", ("NEUTRAL", "EXPRESSIONLESS", "WITHOUT MOUTH", "ZIPPER", "UNAMUSED", "SMIRK", "ROLLING EYES",
                 "EYEBROW", "DOTTED LINE", "EXHALING", "CLOUDS", "SLEEP", "RELIEVED", "THINKING", "SHUSHING",
                 "SALUTING", "LYING", "GRIMACING", "HEAD SHAKING", "YAWNING", "BAGS UNDER EYES", "CONFUSED",
                 "MONOCLE", "NERD", "DISGUISED", "DROOLING", "PEEKING", "HAND OVER MOUTH",
                 "HAND COVERING MOUTH", "HUGGING"), ()),
)

_SUBCATEGORY_DEFAULT = {
    "face-smiling": "happy", "face-hat": "happy", "face-affection": "love", "face-tongue": "playful",
    "face-neutral-skeptical": "neutral", "face-sleepy": "neutral", "face-hand": "neutral",
    "face-glasses": "neutral", "face-concerned": "sad", "face-negative": "angry", "face-unwell": "sick",
}


def is_face(category: str, subcategory: str) -> bool:
    return category == "Smileys & Emotion" and (
        subcategory.startswith(FACE_SUBCATEGORIES_PREFIX) or subcategory in FACE_SUBCATEGORIES
    )


def _by_name(name: str) -> str | None:
    upper = name.upper().replace("_", " ")
    for label, include, exclude in _RULES:
        if any(k in upper for k in include) and not any(k in upper for k in exclude):
            return label
    return None


def emotion_of(name: str, category: str = "", subcategory: str = "") -> str:
    """The emotion label of an emoji (see the module docstring for the rules)."""
    if category in UNICODE_CATEGORIES:
        if not is_face(category, subcategory):
            return NO_EMOTION
        return _by_name(name) or _SUBCATEGORY_DEFAULT.get(subcategory, "other")
    upper = name.upper()
    if "FACE" in upper or "SMILEY" in upper:
        return _by_name(name) or "other"
    return NO_EMOTION


def normalize_emotion(value: str) -> str:
    v = value.strip().lower()
    v = EMOTION_ALIASES.get(v, v)
    if v not in EMOTION_VOCAB:
        from emojiray.errors import EmojirayError

        raise EmojirayError(f"unknown emotion {value!r}: choose one of {', '.join(EMOTION_VOCAB)}")
    return v


def slug(value: str) -> str:
    """A label as a safe file-name part ('fearful/surprised' -> 'fearful-surprised')."""
    out = "".join(c if c.isalnum() else "-" for c in value.lower())
    return "-".join(p for p in out.split("-") if p) or "unlabelled"
