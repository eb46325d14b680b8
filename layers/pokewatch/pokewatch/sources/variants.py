"""Names of card print variants, shared by every source so that card ids agree.

A card print id is the pokemontcg.io card id + `_` + the variant in snake case
(`base1-4_holofoil`, `sv1-25_reverse_holofoil`). pokemontcg.io ids may themselves contain `_`
(`cel25c-17_A`), so the variant of an id is recognised by its known names, not by splitting.
"""

from __future__ import annotations

import re

#: The `tcgplayer.prices` keys of pokemontcg.io that PokeWatch knows (the variant a CSV card id
#: ends with is recognised among these); the pokemontcg source keeps another key as a print of
#: its own, with a warning.
TCGPLAYER_PRICE_KEYS: tuple[str, ...] = (
    "normal",
    "holofoil",
    "reverseHolofoil",
    "1stEditionHolofoil",
    "1stEditionNormal",
    "unlimitedHolofoil",
)

_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD = re.compile(r"[a-z0-9]+")


def variant_name(text: str) -> str:
    """Snake case of a variant as the APIs spell it: `reverseHolofoil` or `Reverse Holofoil`
    → `reverse_holofoil`, `1stEditionHolofoil` → `1st_edition_holofoil`."""
    return "_".join(_WORD.findall(_WORD_BOUNDARY.sub(" ", text).lower()))


KNOWN_VARIANTS: tuple[str, ...] = tuple(variant_name(key) for key in TCGPLAYER_PRICE_KEYS)

#: The variant at the end of a card print id (longest names first, so `reverse_holofoil` wins).
VARIANT_SUFFIX = (
    "_(" + "|".join(re.escape(v) for v in sorted(KNOWN_VARIANTS, key=len, reverse=True)) + ")$"
)


def card_print_id(card_id: str, variant: str) -> str:
    """The id of one print of a card: `base1-4` + `holofoil` → `base1-4_holofoil`."""
    return f"{card_id}_{variant}"
