"""The validate step of the pipeline (see pokewatch.pipeline.validate)."""

from pokewatch.lambda_step import step_handler
from pokewatch.pipeline.validate import validate_model
from pokewatch.steps import TrainedModel

lambda_handler = step_handler("validate", TrainedModel, validate_model)
