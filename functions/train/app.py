"""The train step of the pipeline (see pokewatch.pipeline.train)."""

from pokewatch.lambda_step import step_handler
from pokewatch.pipeline.train import train_model
from pokewatch.steps import Dataset

lambda_handler = step_handler("train", Dataset, train_model)
