"""The plan step of the pipeline (see pokewatch.pipeline.plan)."""

from pokewatch.lambda_step import step_handler
from pokewatch.pipeline.plan import plan_run
from pokewatch.steps import RunRequest

lambda_handler = step_handler("plan", RunRequest, plan_run)
