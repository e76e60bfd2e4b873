"""The price table: versioned data, exact costs, and a price for every model a prompt uses."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from flywheel.errors import ConfigError
from flywheel.llm.prices import default_prices, load_prices, parse_prices
from flywheel.llm.prompts import Provider, load_prompt_file
from flywheel.llm.providers import Usage

ROOT = Path(__file__).resolve().parents[3]
PRICES = ROOT / "shared" / "flywheel" / "llm" / "prices.json"


def _entry(**overrides: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "provider": "bedrock",
        "model_id": "m",
        "input_per_1k": "0.001",
        "output_per_1k": "0.002",
        "as_of": "2025-01-15",
        "source": "https://example.com/pricing",
    }
    entry.update(overrides)
    return entry


def test_every_model_an_example_prompt_uses_has_a_price() -> None:
    table = default_prices()
    for path in sorted((ROOT / "examples" / "prompts").glob("*.yaml")):
        spec = load_prompt_file(path)
        assert table.find(spec.model_id, spec.provider) is not None, path.name


def test_the_shipped_table_is_versioned_and_every_entry_names_its_date_and_source() -> None:
    raw = json.loads(PRICES.read_text())
    table = default_prices()

    assert table.version == raw["version"] >= 1
    assert table.currency == "USD"
    assert len(table.prices) == len(raw["prices"])
    for price in table.prices:
        assert price.source
        assert price.as_of.year >= 2024
    # The stand-in answers for every provider on the local runtime: it is priced too.
    assert table.find("local.stand-in", Provider.LOCAL) is not None


def test_a_call_costs_its_tokens_at_the_models_prices_exactly() -> None:
    table = parse_prices({"version": 1, "currency": "USD", "prices": [_entry()]})

    cost = table.cost(Usage(input_tokens=1234, output_tokens=567), "m")

    assert cost == Decimal("0.002368")  # 1.234 * 0.001 + 0.567 * 0.002, no float rounding
    assert table.cost(Usage(input_tokens=0, output_tokens=0), "m") == 0


def test_a_model_without_a_price_is_named() -> None:
    with pytest.raises(ConfigError, match="'nope' has no price") as caught:
        default_prices().cost(Usage(input_tokens=1, output_tokens=1), "nope")
    assert caught.value.field == "model_id"


def test_one_model_id_priced_by_two_providers_needs_the_provider() -> None:
    table = parse_prices(
        {
            "version": 2,
            "currency": "USD",
            "prices": [_entry(), _entry(provider="openai_compatible", input_per_1k="0.5")],
        }
    )

    with pytest.raises(ConfigError, match="several providers"):
        table.price("m")
    assert table.price("m", Provider.OPENAI_COMPATIBLE).input_per_1k == Decimal("0.5")


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"version": 1, "currency": "USD", "prices": [_entry(), _entry()]}, "priced twice"),
        ({"version": 1, "currency": "usd", "prices": [_entry()]}, "currency:"),
        ({"version": 0, "currency": "USD", "prices": [_entry()]}, "version:"),
        ({"version": 1, "currency": "USD", "prices": [_entry(input_per_1k="-1")]}, "input_per_1k"),
        ({"version": 1, "currency": "USD", "prices": [_entry(source="")]}, "source:"),
        ({"version": 1, "currency": "USD", "prices": []}, "prices:"),
    ],
)
def test_a_bad_table_is_refused_naming_the_field(table: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        parse_prices(table)


def test_a_table_file_that_is_not_json_is_one_error(tmp_path: Path) -> None:
    bad = tmp_path / "prices.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="could not read a JSON price table"):
        load_prices(bad)
    assert load_prices(PRICES) == default_prices()
