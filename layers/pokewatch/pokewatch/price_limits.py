"""The bounds of a price PokeWatch takes, from a source or from an API request.

Kept apart from `observations` (whose pydantic models cost the API's cold start ~15 ms to build)
so that the API can import the bound alone.
"""

#: Prices are below this (USD): above any card ever sold, so a larger one is a unit or parsing
#: error; served prices are float32, which a price of 1e39 would turn into infinity.
MAX_PRICE_USD = 10_000_000.0
