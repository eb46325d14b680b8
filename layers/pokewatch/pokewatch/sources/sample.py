"""The offline market simulator: the default price source `sample` (SPEC section 4).

A deterministic, seeded market of Pokémon card prints whose daily prices, once resampled to
weeks, have the statistics of real TCGplayer prices (`../shared/data`, see
`bench/calibrate_sample_market.py`): price levels, weekly volatility by price tier, stale
weeks, jumps that partly revert, and naive-forecast errors.

Model of one card print (log price, one step per day from the epoch):

- a latent value: the card's mature level, plus a post-release premium that decays (new sets
  fall during their first months), a slow drift (vintage appreciates), its own random walk,
  its set's random walk, the market's random walk, and jumps of which a part reverts;
- sales: Poisson with a per-card liquidity (cheap cards trade more); the market price moves
  only on days with a sale (towards the latent value, with sale noise that shrinks with the
  number of sales) and is carried forward with volume 0 otherwise, which gives the stale weeks.

Randomness is counter-based: every set draws its paths from its own Philox streams keyed by
(seed, set id, stream), one row of draws per day from the epoch. A day's price therefore
depends only on the seed and the days before it, never on the range that was asked:
`collect(s, d1, d2)` equals the concatenation of the one-day collects.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from pokewatch.observations import Card
from pokewatch.sources.base import SourceError, normalise_history

#: Default first simulated day. Paths start here (or at a set's release, if later), so a
#: history of 730 days ending in 2025 or later is available; earlier days have no prices.
DEFAULT_EPOCH = dt.date(2023, 1, 1)

#: Real sets (pokemontcg.io id | name | series | release date) that the market draws from,
#: those of the real data plus the 2025 releases. Beyond them, synthetic sub-sets are made.
_CATALOGUE_TEXT = """\
base1|Base|Base|1999-01-09
basep|Wizards Black Star Promos|Base|1999-07-01
base4|Base Set 2|Base|2000-02-24
base6|Legendary Collection|Other|2002-05-24
ecard1|Expedition Base Set|E-Card|2002-09-15
bp|Best of Game|Other|2002-12-01
ecard2|Aquapolis|E-Card|2003-01-15
ecard3|Skyridge|E-Card|2003-05-12
ex1|Ruby & Sapphire|EX|2003-07-01
ex2|Sandstorm|EX|2003-09-18
np|Nintendo Black Star Promos|NP|2003-10-01
ex3|Dragon|EX|2003-11-24
ex4|Team Magma vs Team Aqua|EX|2004-03-01
ex5|Hidden Legends|EX|2004-06-01
ex6|FireRed & LeafGreen|EX|2004-09-01
pop1|POP Series 1|POP|2004-09-01
ex7|Team Rocket Returns|EX|2004-11-01
ex8|Deoxys|EX|2005-02-01
ex9|Emerald|EX|2005-05-01
ex10|Unseen Forces|EX|2005-08-01
pop2|POP Series 2|POP|2005-08-01
ex11|Delta Species|EX|2005-10-31
ex12|Legend Maker|EX|2006-02-01
pop3|POP Series 3|POP|2006-04-01
ex13|Holon Phantoms|EX|2006-05-01
ex14|Crystal Guardians|EX|2006-08-01
pop4|POP Series 4|POP|2006-08-01
ex15|Dragon Frontiers|EX|2006-11-01
ex16|Power Keepers|EX|2007-02-02
pop5|POP Series 5|POP|2007-03-01
dp1|Diamond & Pearl|Diamond & Pearl|2007-05-01
dpp|DP Black Star Promos|Diamond & Pearl|2007-05-01
dp2|Mysterious Treasures|Diamond & Pearl|2007-08-01
pop6|POP Series 6|POP|2007-09-01
dp3|Secret Wonders|Diamond & Pearl|2007-11-01
dp4|Great Encounters|Diamond & Pearl|2008-02-01
pop7|POP Series 7|POP|2008-03-01
dp5|Majestic Dawn|Diamond & Pearl|2008-05-01
dp6|Legends Awakened|Diamond & Pearl|2008-08-01
pop8|POP Series 8|POP|2008-09-01
dp7|Stormfront|Diamond & Pearl|2008-11-01
pl1|Platinum|Platinum|2009-02-11
pop9|POP Series 9|POP|2009-03-01
pl2|Rising Rivals|Platinum|2009-05-16
pl3|Supreme Victors|Platinum|2009-08-19
pl4|Arceus|Platinum|2009-11-04
hgss1|HeartGold & SoulSilver|HeartGold & SoulSilver|2010-02-10
hsp|HGSS Black Star Promos|HeartGold & SoulSilver|2010-02-10
hgss2|HS—Unleashed|HeartGold & SoulSilver|2010-05-12
hgss3|HS—Undaunted|HeartGold & SoulSilver|2010-08-18
hgss4|HS—Triumphant|HeartGold & SoulSilver|2010-11-03
col1|Call of Legends|HeartGold & SoulSilver|2011-02-09
bwp|BW Black Star Promos|Black & White|2011-03-01
bw1|Black & White|Black & White|2011-04-25
bw2|Emerging Powers|Black & White|2011-08-31
bw3|Noble Victories|Black & White|2011-11-16
bw4|Next Destinies|Black & White|2012-02-08
bw5|Dark Explorers|Black & White|2012-05-09
bw6|Dragons Exalted|Black & White|2012-08-15
dv1|Dragon Vault|Black & White|2012-10-05
bw7|Boundaries Crossed|Black & White|2012-11-07
bw8|Plasma Storm|Black & White|2013-02-06
bw9|Plasma Freeze|Black & White|2013-05-08
bw10|Plasma Blast|Black & White|2013-08-14
xyp|XY Black Star Promos|XY|2013-10-12
bw11|Legendary Treasures|Black & White|2013-11-06
xy1|XY|XY|2014-02-05
xy2|Flashfire|XY|2014-05-07
xy3|Furious Fists|XY|2014-08-13
xy4|Phantom Forces|XY|2014-11-05
xy5|Primal Clash|XY|2015-02-04
dc1|Double Crisis|XY|2015-03-25
xy6|Roaring Skies|XY|2015-05-06
xy7|Ancient Origins|XY|2015-08-12
xy8|BREAKthrough|XY|2015-11-04
xy9|BREAKpoint|XY|2016-02-03
g1|Generations|XY|2016-02-22
xy10|Fates Collide|XY|2016-05-02
xy11|Steam Siege|XY|2016-08-03
xy12|Evolutions|XY|2016-11-02
sm1|Sun & Moon|Sun & Moon|2017-02-03
smp|SM Black Star Promos|Sun & Moon|2017-02-03
sm2|Guardians Rising|Sun & Moon|2017-05-05
sm3|Burning Shadows|Sun & Moon|2017-08-05
sm35|Shining Legends|Sun & Moon|2017-10-06
sm4|Crimson Invasion|Sun & Moon|2017-11-03
sm5|Ultra Prism|Sun & Moon|2018-02-02
sm6|Forbidden Light|Sun & Moon|2018-05-04
sm7|Celestial Storm|Sun & Moon|2018-08-03
sm75|Dragon Majesty|Sun & Moon|2018-09-07
sm8|Lost Thunder|Sun & Moon|2018-11-02
sm9|Team Up|Sun & Moon|2019-02-01
det1|Detective Pikachu|Sun & Moon|2019-04-05
sm10|Unbroken Bonds|Sun & Moon|2019-05-03
sm11|Unified Minds|Sun & Moon|2019-08-02
sm115|Hidden Fates|Sun & Moon|2019-08-23
sma|Hidden Fates Shiny Vault|Sun & Moon|2019-08-23
sm12|Cosmic Eclipse|Sun & Moon|2019-11-01
swshp|SWSH Black Star Promos|Sword & Shield|2019-11-15
swsh1|Sword & Shield|Sword & Shield|2020-02-07
swsh2|Rebel Clash|Sword & Shield|2020-05-01
swsh3|Darkness Ablaze|Sword & Shield|2020-08-14
swsh35|Champion's Path|Sword & Shield|2020-09-25
swsh4|Vivid Voltage|Sword & Shield|2020-11-13
swsh45|Shining Fates|Sword & Shield|2021-02-19
swsh45sv|Shining Fates Shiny Vault|Sword & Shield|2021-02-19
swsh5|Battle Styles|Sword & Shield|2021-03-19
swsh6|Chilling Reign|Sword & Shield|2021-06-18
swsh7|Evolving Skies|Sword & Shield|2021-08-27
cel25|Celebrations|Sword & Shield|2021-10-08
cel25c|Celebrations: Classic Collection|Sword & Shield|2021-10-08
swsh8|Fusion Strike|Sword & Shield|2021-11-12
swsh9|Brilliant Stars|Sword & Shield|2022-02-25
swsh9tg|Brilliant Stars Trainer Gallery|Sword & Shield|2022-02-25
swsh10|Astral Radiance|Sword & Shield|2022-05-27
swsh10tg|Astral Radiance Trainer Gallery|Sword & Shield|2022-05-27
pgo|Pokémon GO|Sword & Shield|2022-07-01
swsh11|Lost Origin|Sword & Shield|2022-09-09
swsh11tg|Lost Origin Trainer Gallery|Sword & Shield|2022-09-09
swsh12|Silver Tempest|Sword & Shield|2022-11-11
swsh12tg|Silver Tempest Trainer Gallery|Sword & Shield|2022-11-11
svp|Scarlet & Violet Black Star Promos|Scarlet & Violet|2023-01-01
swsh12pt5|Crown Zenith|Sword & Shield|2023-01-20
swsh12pt5gg|Crown Zenith Galarian Gallery|Sword & Shield|2023-01-20
sv1|Scarlet & Violet|Scarlet & Violet|2023-03-31
sv2|Paldea Evolved|Scarlet & Violet|2023-06-09
sv3|Obsidian Flames|Scarlet & Violet|2023-08-11
sv3pt5|151|Scarlet & Violet|2023-09-22
sv4|Paradox Rift|Scarlet & Violet|2023-11-03
sv4pt5|Paldean Fates|Scarlet & Violet|2024-01-26
sv5|Temporal Forces|Scarlet & Violet|2024-03-22
sv6|Twilight Masquerade|Scarlet & Violet|2024-05-24
sv6pt5|Shrouded Fable|Scarlet & Violet|2024-08-02
sv7|Stellar Crown|Scarlet & Violet|2024-09-13
sv8|Surging Sparks|Scarlet & Violet|2024-11-08
sv8pt5|Prismatic Evolutions|Scarlet & Violet|2025-01-17
sv9|Journey Together|Scarlet & Violet|2025-03-28
sv10|Destined Rivals|Scarlet & Violet|2025-05-30
"""

#: Share of each rarity among the card prints of a series, from the real data (rarities
#: with at least 4% of a series' prints; the sampler renormalises).
_RARITY_SHARES: dict[str, dict[str, float]] = {
    "Base": {"Rare Holo": 0.82, "Promo": 0.18},
    "Other": {"Uncommon": 0.45, "Rare": 0.25, "Rare Holo": 0.25, "Promo": 0.05},
    "E-Card": {"Rare": 0.43, "Uncommon": 0.39, "Rare Holo": 0.17},
    "EX": {"Uncommon": 0.33, "Rare Holo": 0.27, "Rare": 0.24, "Rare Holo EX": 0.14},
    "NP": {"Promo": 1.0},
    "POP": {"Rare": 0.82, "Uncommon": 0.18},
    "Diamond & Pearl": {
        "Rare Holo": 0.39, "Rare": 0.22, "Promo": 0.14, "Rare Holo LV.X": 0.12, "Uncommon": 0.12
    },
    "Platinum": {
        "Rare": 0.35, "Rare Holo": 0.23, "Rare Holo LV.X": 0.19, "Uncommon": 0.14,
        "Rare Secret": 0.09,
    },
    "HeartGold & SoulSilver": {
        "Rare Holo": 0.25, "Rare": 0.17, "Uncommon": 0.16, "Rare Prime": 0.16, "Promo": 0.13,
        "LEGEND": 0.09,
    },
    "Black & White": {
        "Rare Ultra": 0.21, "Uncommon": 0.18, "Rare Holo EX": 0.16, "Rare Holo": 0.14,
        "Promo": 0.12, "Rare Secret": 0.09, "Rare": 0.06,
    },
    "XY": {"Rare Ultra": 0.37, "Promo": 0.29, "Rare Holo EX": 0.18, "Rare Secret": 0.07},
    "Sun & Moon": {
        "Rare Ultra": 0.32, "Rare Rainbow": 0.25, "Rare Secret": 0.14, "Promo": 0.12,
        "Rare Holo GX": 0.09, "Rare Shiny GX": 0.05,
    },
    "Sword & Shield": {
        "Rare Rainbow": 0.29, "Rare Ultra": 0.27, "Rare Secret": 0.11, "Promo": 0.11,
        "Rare Holo VMAX": 0.08, "Rare Holo V": 0.06,
    },
    "Scarlet & Violet": {
        "Illustration Rare": 0.32, "Special Illustration Rare": 0.27, "Hyper Rare": 0.13,
        "Ultra Rare": 0.10, "Shiny Rare": 0.07, "Promo": 0.06,
    },
}  # fmt: skip

#: Median real price (USD) of each rarity: the centre of a card's mature price level.
_RARITY_MEDIAN_USD: dict[str, float] = {
    "Uncommon": 9.1, "Rare": 12.8, "Rare Holo": 19.4, "Promo": 12.3, "Rare Ultra": 19.9,
    "Rare Rainbow": 14.4, "Rare Holo EX": 31.4, "Rare Secret": 23.8, "Illustration Rare": 9.1,
    "Special Illustration Rare": 25.4, "Rare Holo LV.X": 40.3, "Rare Holo GX": 8.0,
    "Hyper Rare": 11.6, "Ultra Rare": 8.5, "Rare Shiny GX": 13.8, "Rare Holo VMAX": 8.6,
    "Shiny Rare": 7.6, "Rare Prime": 24.2, "Rare Holo V": 12.5, "LEGEND": 62.6,
}  # fmt: skip

#: Variant shares where the real data has more than holofoil (every other rarity: holofoil).
_VARIANT_SHARES: dict[str, dict[str, float]] = {
    "Uncommon": {"reverse_holofoil": 0.86, "normal": 0.13, "holofoil": 0.01},
    "Rare": {"reverse_holofoil": 0.74, "normal": 0.17, "holofoil": 0.09},
    "Rare Holo": {"holofoil": 0.59, "reverse_holofoil": 0.41},
    "Promo": {"holofoil": 0.97, "reverse_holofoil": 0.03},
}

#: How a rarity shows in a card name (`Mewtwo-EX`, `Charizard ex`).
_NAME_SUFFIX: dict[str, str] = {
    "Rare Holo EX": "-EX", "Rare Holo GX": "-GX", "Rare Shiny GX": "-GX", "Rare Holo V": " V",
    "Rare Holo VMAX": " VMAX", "Rare Holo LV.X": " LV.X", "LEGEND": " LEGEND",
    "Special Illustration Rare": " ex", "Ultra Rare": " ex", "Hyper Rare": " ex",
}  # fmt: skip

_POKEMON = (
    "Pikachu", "Charizard", "Blastoise", "Venusaur", "Mewtwo", "Mew", "Gengar", "Umbreon",
    "Espeon", "Eevee", "Snorlax", "Gyarados", "Dragonite", "Lugia", "Ho-Oh", "Rayquaza",
    "Groudon", "Kyogre", "Lucario", "Garchomp", "Darkrai", "Arceus", "Zekrom", "Reshiram",
    "Greninja", "Sylveon", "Ninetales", "Raichu", "Jolteon", "Flareon", "Vaporeon", "Leafeon",
    "Glaceon", "Scyther", "Ditto", "Magneton", "Alakazam", "Machamp", "Tyranitar", "Typhlosion",
    "Feraligatr", "Meganium", "Blaziken", "Swampert", "Sceptile", "Gardevoir", "Absol",
    "Latias", "Latios", "Deoxys", "Giratina", "Dialga", "Palkia", "Zoroark", "Hydreigon",
    "Mimikyu", "Zacian", "Zamazenta", "Eternatus", "Koraidon", "Miraidon", "Iron Valiant",
    "Roaring Moon", "Pecharunt", "Terapagos", "Unown", "Articuno", "Zapdos", "Moltres",
    "Jigglypuff", "Psyduck", "Bulbasaur", "Charmander", "Squirtle", "Pichu", "Togepi",
)  # fmt: skip

#: Mean number of card prints per set (real: 2,881 prints over 135 sets).
CARDS_PER_SET = 20

# --- dynamics, fitted to the real weekly data by bench/calibrate_sample_market.py ------------
#: Split-normal spread (log USD) of a card's mature level around its rarity's median: the
#: real price distribution is right-skewed (median $12, upper quartile $27, 99th pct. ~$260).
_LEVEL_SD_LOW, _LEVEL_SD_HIGH = 0.50, 1.15
#: Log shift of all levels: the walks, drifts and release premia of the paths widen and lift
#: the distribution of levels, and this brings the simulated median back to the real one.
_LEVEL_SHIFT = -0.46
#: Post-release premium (log) and its decay time (days): real cards fall ~0.5-1%/week during
#: their first half year.
_RELEASE_PREMIUM, _RELEASE_DECAY_DAYS = 0.25, 90.0
#: Annual drift (log) of a mature card and its spread between cards (real: +3%/year).
_DRIFT_MEAN, _DRIFT_SD = 0.03, 0.10
#: Daily volatility of a card's own random walk at $12, and the elasticity to price below and
#: above $12 of it and of the sale noise (real weekly sd: 0.105 under $5, about 0.07 above; the
#: dearest cards are the least liquid, so their weeks move less often). Jump sizes do not
#: depend on price: the real share of weekly moves above 0.25 is about 1.2% in every tier.
_CARD_VOL, _CARD_VOL_ELASTICITY = 0.005, (-1.0, 0.1)
#: Daily volatility of the set and market common factors (real cross-card mean weekly return
#: has sd 0.004).
_SET_VOL, _MARKET_VOL = 0.003, 0.0015
#: Daily jump probability, jump size scale (log) and the sd of its log-normal multiplier (a
#: heavy tail). Fitted to the real weekly moves above 0.25: 1.2% of weeks, mean size 0.49,
#: 99.9th pct. of |return| about 0.84 above $5; these large moves carry most of the weekly
#: variance of cards above $20 (real sd 0.074 at $20-100 and 0.068 above $100).
_JUMP_PROB, _JUMP_SD, _JUMP_TAIL = 0.004, 0.27, 0.55
#: The share of a jump that reverts and its half-life (days). Real jumps mostly stay: 4 weeks
#: later only 10% of a weekly move above 0.25 is undone (`jump_reversal` 0.096), much of it
#: sale noise on cheap cards, and weekly returns have a lag-1 autocorrelation of only -0.08.
_JUMP_REVERT, _JUMP_HALF_LIFE = 0.06, 10.0
#: A day has a jump when its standard normal draw is below this (probability `_JUMP_PROB`).
_JUMP_THRESHOLD = NormalDist().inv_cdf(_JUMP_PROB)
#: Days after which a reverting jump is forgotten (its weight is below 0.1%).
_JUMP_MEMORY = int(np.ceil(_JUMP_HALF_LIFE * np.log2(1000)))
#: Liquidity: mean daily sales (log) at $12, elasticity to price, and spread between cards
#: (real: 53% of weeks without sales, 20% of cards never stale, cheap cards trade more).
_SALES_LOG_MEAN, _SALES_ELASTICITY, _SALES_SD = np.log(0.08), -0.3, 1.5
#: Noise (log) of one sale around the latent value; n sales average it down by sqrt(n).
_SALE_NOISE = 0.02


def _key(*parts: object) -> np.ndarray:
    """A stable 128-bit Philox key of some values (`hash()` is salted per process)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).digest()
    return np.frombuffer(digest, dtype=np.uint64).copy()


def _rng(*parts: object) -> np.random.Generator:
    """A counter-based generator for one stream: the same draws for the same parts."""
    return np.random.Generator(np.random.Philox(key=_key(*parts)))


@dataclass(frozen=True)
class _SetSpec:
    set_id: str
    name: str
    series: str
    release_date: dt.date


def _catalogue() -> list[_SetSpec]:
    """The real sets, oldest first."""
    rows = (line.split("|") for line in _CATALOGUE_TEXT.splitlines())
    return [_SetSpec(i, n, s, dt.date.fromisoformat(r)) for i, n, s, r in rows]


def _choose_sets(n_sets: int, rng: np.random.Generator) -> list[_SetSpec]:
    """`n_sets` distinct sets: a random choice of real sets, then synthetic sub-sets of real
    sets (`sv3pt5x1`, "151 Collection 1", released 2 weeks after it) once they run out."""
    real = _catalogue()
    if n_sets <= len(real):
        chosen = sorted(rng.choice(len(real), size=n_sets, replace=False))
        return [real[i] for i in chosen]
    # "<real id>x<round>" is never a real id (no real id ends in "x" and a digit), so the
    # synthetic ids are unique and still look like pokemontcg.io ids.
    synthetic = [
        _SetSpec(
            f"{base.set_id}x{round_}",
            f"{base.name} Collection {round_}",
            base.series,
            base.release_date + dt.timedelta(days=14 * round_),
        )
        for round_ in range(1, -(-n_sets // len(real)))
        for base in real
    ]
    return real + synthetic[: n_sets - len(real)]


def _pick(rng: np.random.Generator, shares: dict[str, float], size: int) -> np.ndarray:
    """`size` draws of the keys of `shares`, with probabilities proportional to the values."""
    weights = np.array(list(shares.values()))
    return rng.choice(np.array(list(shares)), size=size, p=weights / weights.sum())


@dataclass(frozen=True)
class _SetMarket:
    """One set's cards and the static parameters of their price paths."""

    spec: _SetSpec
    cards: tuple[Card, ...]
    log_level: np.ndarray  # mature log price of each card
    drift: np.ndarray  # daily log drift
    scale: np.ndarray  # relative size of the card's moves and sale noise (cheap cards: larger)
    beta: np.ndarray  # exposure to the set factor
    sales_rate: np.ndarray  # mean daily sales


def _build_set(spec: _SetSpec, n_cards: int, rng: np.random.Generator) -> _SetMarket:
    """The cards of one set, with rarities, variants and levels drawn as in the real data."""
    rarities = _pick(rng, _RARITY_SHARES[spec.series], n_cards)
    numbers = np.sort(rng.choice(np.arange(1, max(2 * n_cards, 100) + 1), n_cards, replace=False))
    names = rng.choice(np.array(_POKEMON), size=n_cards)
    cards = []
    for number, rarity, name in zip(numbers, rarities, names, strict=True):
        variant = str(_pick(rng, _VARIANT_SHARES.get(rarity, {"holofoil": 1.0}), 1)[0])
        cards.append(
            Card(
                card_id=f"{spec.set_id}-{number}_{variant}",
                name=f"{name}{_NAME_SUFFIX.get(rarity, '')}",
                set_id=spec.set_id,
                set_name=spec.name,
                series=spec.series,
                rarity=str(rarity),
                variant=variant,
                release_date=spec.release_date,
            )
        )
    z = rng.standard_normal(n_cards)
    log_level = (
        np.log([_RARITY_MEDIAN_USD[r] for r in rarities])
        + _LEVEL_SHIFT
        + np.where(z < 0, _LEVEL_SD_LOW * z, _LEVEL_SD_HIGH * z)
    )
    relative = log_level - np.log(12.0)
    return _SetMarket(
        spec=spec,
        cards=tuple(cards),
        log_level=log_level,
        drift=rng.normal(_DRIFT_MEAN, _DRIFT_SD, n_cards) / 365.0,
        scale=np.exp(
            np.where(relative < 0, _CARD_VOL_ELASTICITY[0], _CARD_VOL_ELASTICITY[1]) * relative
        ),
        beta=rng.uniform(0.5, 1.5, n_cards),
        sales_rate=np.exp(
            _SALES_LOG_MEAN
            + _SALES_ELASTICITY * relative
            + _SALES_SD * rng.standard_normal(n_cards)
        ),
    )


class SampleMarket:
    """The offline sample market: a `PriceSource` of simulated, realistic daily card prices.

    Deterministic for `(seed, n_cards, epoch)`: about `n_cards / 20` sets of about 20 card
    prints each, with daily paths from `epoch` (or the set's release) onwards.
    """

    name = "sample"

    def __init__(self, seed: int = 7, n_cards: int = 300, epoch: dt.date = DEFAULT_EPOCH) -> None:
        if n_cards < 1:
            raise ValueError(f"n_cards must be at least 1, got {n_cards}")
        self.seed = seed
        self.n_cards = n_cards
        self.epoch = epoch
        rng = _rng(seed, "catalogue", n_cards)
        n_sets = max(1, round(n_cards / CARDS_PER_SET))
        specs = _choose_sets(n_sets, rng)
        # Every set gets at least one card; the rest is spread unevenly, as in real sets.
        sizes = 1 + rng.multinomial(n_cards - n_sets, rng.dirichlet(np.full(n_sets, 3.0)))
        self._sets = {
            spec.set_id: _build_set(spec, int(size), rng)
            for spec, size in zip(specs, sizes, strict=True)
        }

    def list_sets(self, as_of: dt.date) -> list[str]:
        """The ids of the sets released on or before `as_of`, oldest first."""
        return [s for s, m in self._sets.items() if m.spec.release_date <= as_of]

    def cards(self, set_id: str) -> list[Card]:
        """The card prints of one set."""
        return list(self._set(set_id).cards)

    def collect(self, set_id: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Daily prices of every released card print of `set_id` for `start..end` (inclusive),
        as a history table ordered by date then card."""
        if start > end:
            raise ValueError(f"start {start} is after end {end}")
        market = self._set(set_id)
        # The market has no price before its first day, as a set has none before its release:
        # a backfill reaching further back (`--history-days 1500`) gets the days there are.
        n_total = (end - self.epoch).days + 1
        paths = _simulate(self.seed, market, self.epoch, max(n_total, 1))
        first = max((start - self.epoch).days, 0)
        released = max((market.spec.release_date - self.epoch).days, first)
        days = np.arange(released, n_total)
        n_days, n_cards = len(days), len(market.cards)
        frame = pd.DataFrame(
            {
                "card_id": np.tile([c.card_id for c in market.cards], n_days),
                "name": np.tile([c.name for c in market.cards], n_days),
                "set_id": set_id,
                "set_name": market.spec.name,
                "series": market.spec.series,
                "rarity": np.tile([c.rarity for c in market.cards], n_days),
                "variant": np.tile([c.variant for c in market.cards], n_days),
                "release_date": pd.Timestamp(market.spec.release_date),
                "date": np.repeat(
                    np.datetime64(self.epoch, "D") + days.astype("timedelta64[D]"), n_cards
                ),
                "market_price": paths.price[days].ravel(),
                "low_price": paths.low[days].ravel(),
                "high_price": paths.high[days].ravel(),
                "volume": paths.volume[days].ravel(),
            }
        )
        return normalise_history(frame)

    def _set(self, set_id: str) -> _SetMarket:
        try:
            return self._sets[set_id]
        except KeyError:
            raise SourceError(f"unknown set {set_id!r} in the sample market") from None


@dataclass(frozen=True)
class _Paths:
    """Daily arrays (day from the epoch × card) of one set."""

    price: np.ndarray
    low: np.ndarray
    high: np.ndarray
    volume: np.ndarray


def _walk(rng: np.random.Generator, shape: tuple[int, ...], vol: float | np.ndarray) -> np.ndarray:
    """A random walk along axis 0 (row t is the draw of day t, whatever the length)."""
    return np.cumsum(rng.standard_normal(shape) * vol, axis=0)


def _simulate(seed: int, market: _SetMarket, epoch: dt.date, n_days: int) -> _Paths:
    """The daily paths of a set's cards for the `n_days` days from `epoch`.

    Each stream draws one row per day, so the first k rows are the same for any `n_days`.
    """
    set_id, n_cards = market.spec.set_id, len(market.cards)
    shape = (n_days, n_cards)
    day = np.arange(n_days)[:, None]
    age = day - (market.spec.release_date - epoch).days
    latent = (
        market.log_level
        + _RELEASE_PREMIUM * np.exp(-np.maximum(age, 0) / _RELEASE_DECAY_DAYS)
        + market.drift * day
        + _walk(_rng(seed, set_id, "card"), shape, _CARD_VOL * market.scale)
        + market.beta * _walk(_rng(seed, set_id, "set"), (n_days, 1), _SET_VOL)
        + _walk(_rng(seed, "market"), (n_days, 1), _MARKET_VOL)
        + _jumps(_rng(seed, set_id, "jumps"), _rng(seed, set_id, "jump_tail"), shape)
    )
    volume = _rng(seed, set_id, "sales").poisson(market.sales_rate, size=shape)
    noise = _rng(seed, set_id, "noise").standard_normal((n_days, n_cards, 3))
    # The market price moves on sale days (and on the first day, a listing) and is carried
    # forward otherwise: the stale days.
    sale_noise = _SALE_NOISE * market.scale / np.sqrt(np.maximum(volume, 1))
    sale_price = latent + sale_noise * noise[..., 0]
    moved = volume > 0
    moved[0] = True
    last_sale = np.maximum.accumulate(np.where(moved, day, 0), axis=0)
    price = np.maximum(np.round(np.exp(sale_price[last_sale, np.arange(n_cards)]), 2), 0.01)
    low = np.round(price * np.exp(-0.05 - 0.15 * np.abs(noise[..., 1])), 2)
    high = np.round(price * np.exp(0.10 + 0.30 * np.abs(noise[..., 2])), 2)
    return _Paths(price=price, low=low, high=high, volume=volume)


def _jumps(
    rng: np.random.Generator, tail_rng: np.random.Generator, shape: tuple[int, int]
) -> np.ndarray:
    """Jumps in log price, of the same size at any price (the real share of weekly moves above
    0.25 is about the same in every price tier): a normal size times a log-normal multiplier
    (a heavy tail), of which a permanent part stays and a part decays away."""
    draws = rng.standard_normal((*shape, 2))
    tail = np.exp(_JUMP_TAIL * tail_rng.standard_normal(shape))
    size = np.where(draws[..., 0] < _JUMP_THRESHOLD, _JUMP_SD * draws[..., 1] * tail, 0.0)
    out = np.cumsum((1.0 - _JUMP_REVERT) * size, axis=0)
    kernel = _JUMP_REVERT * 0.5 ** (np.arange(_JUMP_MEMORY) / _JUMP_HALF_LIFE)
    # Jumps are rare (a few per card and year): adding each one's decaying part is cheap, and
    # the sums for a day only involve that day's past, in the same order for any length.
    for t, c in zip(*np.nonzero(size), strict=True):
        span = min(_JUMP_MEMORY, shape[0] - t)
        out[t : t + span, c] += size[t, c] * kernel[:span]
    return out


# --- calibration statistics ----------------------------------------------------------------
#: The price tiers (USD, lower exclusive, upper inclusive) whose weekly volatility is compared.
PRICE_TIERS: dict[str, tuple[float, float]] = {
    "lt5": (0.0, 5.0),
    "5_20": (5.0, 20.0),
    "20_100": (20.0, 100.0),
    "gt100": (100.0, np.inf),
}
#: A weekly |log return| above this is a jump.
JUMP_THRESHOLD = 0.25


def to_weekly(history: pd.DataFrame) -> pd.DataFrame:
    """Weekly rows (weeks ending Sunday) of a daily history table: the last market price of
    each card and week, and the week's total volume."""
    week = pd.to_datetime(history["date"]).dt.to_period("W-SUN").dt.end_time.dt.normalize()
    grouped = history.assign(date=week).sort_values(["card_id", "date"], kind="stable")
    return (
        grouped.groupby(["card_id", "date"], sort=True)
        .agg(market_price=("market_price", "last"), volume=("volume", "sum"))
        .reset_index()
    )


def weekly_statistics(weekly: pd.DataFrame) -> dict[str, float]:
    """The statistics the sample market is calibrated on, of a weekly table (`card_id`,
    `date`, `market_price`, `volume`; rows without a positive price are ignored).

    Returns price quantiles (`price_q25` ... `price_q99`), the sd of weekly log returns per
    price tier of the week's start (`vol_lt5`, `vol_5_20`, `vol_20_100`, `vol_gt100`), the share
    of weeks without sales (`stale_share`) and with |log return| > 0.25 (`jump_share`), the
    mean absolute percentage error of repeating the last price 1 and 4 weeks ahead
    (`naive_mape_1w`, `naive_mape_4w`) and of the mean of the last 3 prices
    (`rolling3_mape_1w`, `rolling3_mape_4w`), the lag-1 autocorrelation of weekly returns
    (`return_acf1`), and the mean share of a jump undone 4 weeks later (`jump_reversal`, each
    ratio clipped to [-1, 2] as a stale price over a jump gives huge ratios).
    """
    frame = weekly.loc[weekly["market_price"] > 0, ["card_id", "date", "market_price", "volume"]]
    frame = frame.sort_values(["card_id", "date"], kind="stable").reset_index(drop=True)
    price = frame["market_price"].astype("float64")
    by_card = price.groupby(frame["card_id"])
    log_return = np.log(price / by_card.shift(1))
    start_price = by_card.shift(1)
    has_return = log_return.notna()
    stats: dict[str, float] = {
        f"price_q{int(q * 100)}": float(price.quantile(q)) for q in (0.25, 0.5, 0.75, 0.9, 0.99)
    }
    for label, (lower, upper) in PRICE_TIERS.items():
        in_tier = (start_price > lower) & (start_price <= upper)
        stats[f"vol_{label}"] = float(log_return[in_tier].std())
    stats["stale_share"] = float((frame["volume"][has_return] == 0).mean())
    stats["jump_share"] = float((log_return[has_return].abs() > JUMP_THRESHOLD).mean())
    rolling3 = by_card.transform(lambda s: s.rolling(3).mean())
    for weeks in (1, 4):
        naive = by_card.shift(weeks)
        stats[f"naive_mape_{weeks}w"] = float(((naive - price).abs() / price).mean())
        past_mean = rolling3.groupby(frame["card_id"]).shift(weeks)
        stats[f"rolling3_mape_{weeks}w"] = float(((past_mean - price).abs() / price).mean())
    stats["return_acf1"] = float(log_return.corr(log_return.groupby(frame["card_id"]).shift(1)))
    later = np.log(by_card.shift(-4) / price)
    jumps = log_return.abs() > JUMP_THRESHOLD
    stats["jump_reversal"] = float((-later[jumps] / log_return[jumps]).clip(-1, 2).mean())
    return stats
