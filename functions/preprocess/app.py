"""The preprocess step of the pipeline (see pokewatch.pipeline.preprocess)."""

from pokewatch.lambda_step import step_handler
from pokewatch.pipeline.preprocess import build_dataset
from pokewatch.steps import PreprocessInput

lambda_handler = step_handler("preprocess", PreprocessInput, build_dataset)
