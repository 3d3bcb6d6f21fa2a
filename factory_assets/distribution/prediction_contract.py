"""A prediction product's ODCS contract generated from its use case's declaration.

Pure (no Dagster). A use case without a hand-written contract in ``data_contracts/predictions/``
gets one from its declaration (owner, description, tier, keys) and the key columns' types of the
rows it scores: the product is contracted the first night it exists, with no file copied by hand.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import yaml

from factory_assets.assembly.specs import UseCaseSpec
from factory_assets.lib.contracts import (WAREHOUSE_SERVER, WAREHOUSE_SERVER_DATABASE, WAREHOUSE_SERVER_DESCRIPTION,
                                          DataContract, parse_contract)

_TYPES = {pl.Date: ("date", "DATE"), pl.Boolean: ("boolean", "BOOLEAN"), pl.String: ("string", "VARCHAR"),
          pl.Float64: ("number", "DOUBLE"), pl.Float32: ("number", "FLOAT"), pl.Int64: ("integer", "BIGINT"),
          pl.Int32: ("integer", "INTEGER"), pl.Int16: ("integer", "SMALLINT"), pl.Int8: ("integer", "TINYINT")}


def _types(dtype: pl.DataType) -> tuple[str, str]:
    if isinstance(dtype, pl.Datetime):
        return "timestamp", "TIMESTAMP"
    for known, types in _TYPES.items():
        if dtype == known:
            return types
    return "string", "VARCHAR"


def prediction_contract_document(spec: UseCaseSpec, rows_schema: dict[str, pl.DataType]) -> dict:
    """The ODCS document of ``predictions.<use case>`` for rows with ``rows_schema`` (table ``<use case>``
    on the warehouse server, schema ``predictions``)."""
    team = spec.owner.removeprefix("team:").split("@")[0]
    keys = [c for c in rows_schema if c not in ("prediction", "model_version", "feature_snapshot_id",
                                                "features_as_of", "scored_at")]
    properties = []
    for name, dtype in rows_schema.items():
        logical, physical = _types(dtype)
        prop = {"name": name, "logicalType": logical, "physicalType": physical, "required": True,
                "classification": "internal"}
        if name == "prediction" and spec.template == "binary_classification":
            prop["logicalTypeOptions"] = {"minimum": 0, "maximum": 1}
        if name == "prediction" and spec.template == "forecasting":
            prop["logicalTypeOptions"] = {"minimum": 0}
        properties.append(prop)
    return {
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": f"urn:ai-factory:prediction:{spec.name}",
        "name": f"{spec.name}_predictions", "version": "1.1.0", "status": "active", "domain": spec.business_unit,
        "dataProduct": f"{spec.name}_predictions",
        "description": {"purpose": f"Nightly predictions of use case {spec.name} by its champion: "
                                   f"{spec.description.strip()}",
                        "usage": f"Uses declared: {', '.join(spec.uses) or 'none'} (risk tier {spec.risk_tier}).",
                        "limitations": "Generated from the use case's declaration; write "
                                       f"data_contracts/predictions/{spec.name}.odcs.yaml to take it over."},
        "team": {"name": team, "members": [{"username": spec.owner, "role": "owner"}]},
        "slaProperties": [{"property": "frequency", "value": 1, "unit": "d"},
                          {"property": "latency", "value": 1, "unit": "d",
                           "element": f"{spec.name}_predictions.scored_date"}],
        "customProperties": [{"property": "useCase", "value": spec.name},
                             {"property": "generatedFrom", "value": "use-case declaration"}],
        # the warehouse as an ODCS duckdb server, so `datacontract test` can check the product too
        "servers": [{"server": WAREHOUSE_SERVER, "type": "duckdb", "description": WAREHOUSE_SERVER_DESCRIPTION,
                     "database": WAREHOUSE_SERVER_DATABASE, "schema": "predictions"}],
        "schema": [{"name": f"{spec.name}_predictions", "physicalName": spec.name,
                    "physicalType": "table", "properties": properties,
                    "quality": [{"metric": "duplicateValues", "mustBe": 0, "arguments": {"properties": keys}}]}],
    }


def write_prediction_contract(spec: UseCaseSpec, rows_schema: dict[str, pl.DataType], folder: Path) -> DataContract:
    """Write the generated contract under ``folder`` and return it, parsed like a hand-written one."""
    doc = prediction_contract_document(spec, rows_schema)
    path = Path(folder) / f"{spec.name}.odcs.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Generated from the use case's declaration and its scored rows; do not edit.\n"
                    + yaml.safe_dump(doc, sort_keys=False))
    return parse_contract(doc, path)
