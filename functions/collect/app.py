"""The collect step of the pipeline (see pokewatch.pipeline.collect)."""

from pokewatch.lambda_step import step_handler
from pokewatch.pipeline.collect import collect_set
from pokewatch.steps import CollectItem

lambda_handler = step_handler("collect", CollectItem, collect_set)
