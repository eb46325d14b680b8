"""The pipeline's steps, one module each; the Lambda handlers in `functions/` call these."""
