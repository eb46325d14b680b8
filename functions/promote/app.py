"""The promote step of the pipeline (see pokewatch.pipeline.promote)."""

from pokewatch.lambda_step import step_handler
from pokewatch.pipeline.promote import promote_model
from pokewatch.steps import ValidatedModel

lambda_handler = step_handler("promote", ValidatedModel, promote_model)
