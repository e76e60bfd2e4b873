"""The price table: input and output price per 1,000 tokens of each provider model, as
versioned data (``prices.json`` next to this module), and what a call costs.

Every entry records the date and the page its prices were taken from; the table is
data the team keeps current (a prompt whose model has no price cannot be registered).
Lambda's prices per GB-second and per request (``lambda_prices.json``, the same way)
turn the inference functions' metrics into a cost estimate (``flywheel cost report``).

Examples
--------
>>> from flywheel.llm.providers import Usage
>>> table = default_prices()
>>> table.cost(Usage(input_tokens=1000, output_tokens=500), "local.stand-in")
Decimal('0.002')
>>> table.currency
'USD'
"""

from __future__ import annotations

import functools
import json
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationError, field_validator

from flywheel.errors import ConfigError
from flywheel.llm.prompts import Provider, spec_error
from flywheel.models import Frozen

if TYPE_CHECKING:
    from flywheel.llm.providers import Usage

__all__ = [
    "LambdaPrice",
    "LambdaPriceTable",
    "ModelPrice",
    "PriceTable",
    "default_lambda_prices",
    "default_prices",
    "load_prices",
]

_THOUSAND = Decimal(1000)


class ModelPrice(Frozen):
    """What one provider model costs per 1,000 input and output tokens."""

    provider: Provider
    model_id: str = Field(min_length=1, max_length=2048)
    input_per_1k: Decimal = Field(ge=0, max_digits=18, decimal_places=12)
    output_per_1k: Decimal = Field(ge=0, max_digits=18, decimal_places=12)
    as_of: date
    source: str = Field(min_length=1, max_length=500)
    #: ``false`` for a model that ignores or refuses a sampling ``temperature`` (a
    #: reasoning model): the self-consistency check is then not applicable to its answers.
    sampling: bool = True


class PriceTable(Frozen):
    """Prices by provider and model id, in one currency; ``version`` grows with each edit.

    Examples
    --------
    >>> default_prices().price("anthropic.claude-3-haiku-20240307-v1:0").input_per_1k
    Decimal('0.00025')
    """

    version: int = Field(ge=1)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    prices: tuple[ModelPrice, ...] = Field(min_length=1)

    @field_validator("prices")
    @classmethod
    def _unique(cls, prices: tuple[ModelPrice, ...]) -> tuple[ModelPrice, ...]:
        seen: set[tuple[str, str]] = set()
        for price in prices:
            key = (str(price.provider), price.model_id)
            if key in seen:
                raise ValueError(f"{price.provider} model {price.model_id!r} is priced twice")
            seen.add(key)
        return prices

    def find(self, model_id: str, provider: Provider | None = None) -> ModelPrice | None:
        """The price of ``model_id`` (of ``provider``, when given), or ``None``.

        Raises
        ------
        ConfigError
            No ``provider`` given and two providers price ``model_id``.
        """
        found = [
            p
            for p in self.prices
            if p.model_id == model_id and (provider is None or p.provider is provider)
        ]
        if len(found) > 1:
            raise ConfigError(
                f"model_id: {model_id!r} is priced for several providers; name the provider",
                field="model_id",
            )
        return found[0] if found else None

    def price(self, model_id: str, provider: Provider | None = None) -> ModelPrice:
        """The price of ``model_id``; a :class:`ConfigError` naming it when there is none."""
        found = self.find(model_id, provider)
        if found is None:
            owner = f"{provider} " if provider is not None else ""
            raise ConfigError(
                f"model_id: {owner}model {model_id!r} has no price in the price table "
                f"(version {self.version}); add it before a prompt may use it",
                field="model_id",
            )
        return found

    def cost(self, usage: Usage, model_id: str, provider: Provider | None = None) -> Decimal:
        """What ``usage`` of ``model_id`` costs, in :attr:`currency` (exact, not rounded)."""
        price = self.price(model_id, provider)
        return (
            Decimal(usage.input_tokens) * price.input_per_1k
            + Decimal(usage.output_tokens) * price.output_per_1k
        ) / _THOUSAND


def parse_prices(data: Any) -> PriceTable:
    """Validate a price table mapping; a :class:`ConfigError` names the first bad field."""
    if not isinstance(data, dict):
        raise ConfigError("prices: a price table is a mapping", field="prices")
    try:
        return PriceTable.model_validate(data)
    except ValidationError as err:
        raise spec_error(err) from None


def load_prices(path: str | Path) -> PriceTable:
    """Read and validate a price table from a JSON file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigError(f"prices: could not read a JSON price table from {path}",
                          field="prices") from None  # fmt: skip
    return parse_prices(data)


@functools.cache
def default_prices() -> PriceTable:
    """The price table shipped with Flywheel (``flywheel/llm/prices.json``), read once."""
    text = resources.files("flywheel.llm").joinpath("prices.json").read_text(encoding="utf-8")
    return parse_prices(json.loads(text))


class LambdaPrice(Frozen):
    """What Lambda charges per GB-second of duration and per request, on one architecture."""

    architecture: str = Field(pattern=r"^(x86_64|arm64)$")
    per_gb_second: Decimal = Field(ge=0, max_digits=18, decimal_places=14)
    per_request: Decimal = Field(ge=0, max_digits=18, decimal_places=14)
    as_of: date
    source: str = Field(min_length=1, max_length=500)


class LambdaPriceTable(Frozen):
    """Lambda's on-demand prices by architecture, in one currency.

    Examples
    --------
    >>> table = default_lambda_prices()
    >>> table.price("x86_64").per_gb_second, table.currency
    (Decimal('0.0000166667'), 'USD')
    >>> table.cost(gb_seconds=Decimal(1000), requests=1_000_000)
    Decimal('0.2166667000')
    """

    version: int = Field(ge=1)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    prices: tuple[LambdaPrice, ...] = Field(min_length=1)

    def price(self, architecture: str = "x86_64") -> LambdaPrice:
        """The price on ``architecture``; a :class:`ConfigError` when there is none."""
        for price in self.prices:
            if price.architecture == architecture:
                return price
        raise ConfigError(
            f"architecture: Lambda on {architecture!r} has no price (version {self.version})",
            field="architecture",
        )

    def cost(self, *, gb_seconds: Decimal, requests: int, architecture: str = "x86_64") -> Decimal:
        """Duration and requests at the on-demand price (exact, not rounded)."""
        price = self.price(architecture)
        return gb_seconds * price.per_gb_second + requests * price.per_request


@functools.cache
def default_lambda_prices() -> LambdaPriceTable:
    """Lambda's prices shipped with Flywheel (``flywheel/llm/lambda_prices.json``)."""
    text = (
        resources.files("flywheel.llm").joinpath("lambda_prices.json").read_text(encoding="utf-8")
    )
    try:
        return LambdaPriceTable.model_validate(json.loads(text))
    except ValidationError as err:
        raise spec_error(err) from None
