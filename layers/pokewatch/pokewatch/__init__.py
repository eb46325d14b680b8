"""PokeWatch: Pokémon card prices, fair-price model and signals (the shared Lambda layer)."""

__version__ = "0.1.0"
