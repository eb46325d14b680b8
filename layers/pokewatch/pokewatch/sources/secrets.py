"""API keys of the price sources, read through Powertools Parameters.

A setting such as `POKEWATCH_POKEMONTCG_API_KEY_PARAMETER` names where the key lives:

- `secret:<name>` or a Secrets Manager ARN (`arn:aws:secretsmanager:...`): the secret string;
- anything else: an SSM parameter name (a SecureString is decrypted).

Powertools caches values for `KEY_CACHE_SECONDS`, so a warm Lambda does not read the key on
every invocation and a rotated key is picked up within minutes. Key values are never logged;
errors name the parameter, not its value.
"""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import (
    GetParameterError,
    TransformParameterError,
)

from pokewatch.sources.base import SourceError

SECRET_PREFIX = "secret:"
SECRETS_MANAGER_ARN = "arn:aws:secretsmanager:"
KEY_CACHE_SECONDS = 300


def read_api_key(name: str) -> str:
    """The API key stored under `name` (SSM parameter, `secret:<name>` or a secret's ARN)."""
    try:
        if name.startswith(SECRET_PREFIX):
            value = parameters.get_secret(name[len(SECRET_PREFIX) :], max_age=KEY_CACHE_SECONDS)
        elif name.startswith(SECRETS_MANAGER_ARN):
            value = parameters.get_secret(name, max_age=KEY_CACHE_SECONDS)
        else:
            value = parameters.get_parameter(name, decrypt=True, max_age=KEY_CACHE_SECONDS)
    except (GetParameterError, TransformParameterError) as e:
        # The Powertools message names the parameter and the AWS error, never the value.
        raise SourceError(f"cannot read the API key {name!r}: {e}") from None
    if not isinstance(value, str) or not value.strip():
        raise SourceError(f"the API key {name!r} is empty or not a string")
    return value.strip()


class ApiKey:
    """A key read on first use (not at import or construction), then kept by the instance."""

    def __init__(self, parameter: str | None) -> None:
        self.parameter = parameter
        self._value: str | None = None

    def get(self) -> str | None:
        """The key, or None when no parameter is configured."""
        if self.parameter and self._value is None:
            self._value = read_api_key(self.parameter)
        return self._value

    def known(self) -> list[str]:
        """The key values read so far, for redaction (never triggers a read)."""
        return [self._value] if self._value else []

    def __repr__(self) -> str:
        return f"ApiKey(parameter={self.parameter!r})"
