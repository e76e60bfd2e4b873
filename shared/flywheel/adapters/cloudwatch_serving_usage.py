"""The ``ServingUsage`` port on AWS: versions from Lambda, invocations and duration from
CloudWatch (``AWS/Lambda``, per alias and executed version)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from flywheel.adapters.aws_workflows import MODEL_VERSION_VARIABLE
from flywheel.errors import FlywheelError
from flywheel.serving.costs import LambdaVersion, LambdaVersionUsage

if TYPE_CHECKING:
    from datetime import datetime

    from mypy_boto3_cloudwatch.client import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDataQueryTypeDef
    from mypy_boto3_lambda.client import LambdaClient

__all__ = ["CloudWatchServingUsage", "ServingMetricsError"]

#: GetMetricData takes at most 500 queries a request; two per version.
_VERSIONS_PER_REQUEST = 250
_DAY_SECONDS = 86_400


class ServingMetricsError(FlywheelError):
    """Lambda or CloudWatch could not be read (a 5xx: try again)."""

    code = "serving_metrics_unavailable"


class CloudWatchServingUsage:
    """Published versions (``ListVersionsByFunction``: memory, architecture, the pinned
    ``FLYWHEEL_MODEL_VERSION``) and ``Invocations`` / ``Duration`` sums per executed
    version of the alias (``GetMetricData``, daily periods).

    Examples
    --------
    >>> usage = CloudWatchServingUsage(cloudwatch=cw, lambda_client=lam)  # doctest: +SKIP
    >>> usage.versions("flywheel-dev-inference-churn")[0].model_version  # doctest: +SKIP
    3
    """

    def __init__(
        self,
        *,
        cloudwatch: CloudWatchClient | None = None,
        lambda_client: LambdaClient | None = None,
    ) -> None:
        self._cloudwatch: CloudWatchClient = cloudwatch or boto3.client("cloudwatch")
        self._lambda: LambdaClient = lambda_client or boto3.client("lambda")

    def versions(self, function: str) -> list[LambdaVersion]:
        found = []
        try:
            for page in self._lambda.get_paginator("list_versions_by_function").paginate(
                FunctionName=function
            ):
                for config in page.get("Versions", []):
                    number = config.get("Version", "$LATEST")
                    if number == "$LATEST":
                        continue
                    variables = (config.get("Environment") or {}).get("Variables") or {}
                    pinned = variables.get(MODEL_VERSION_VARIABLE, "")
                    found.append(
                        LambdaVersion(
                            version=number,
                            memory_mb=int(config.get("MemorySize", 128)),
                            architecture=(config.get("Architectures") or ["x86_64"])[0],
                            model_version=int(pinned) if pinned.isdigit() else None,
                        )
                    )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return []
            raise ServingMetricsError(f"the versions of {function} could not be read") from err
        except BotoCoreError as err:
            raise ServingMetricsError(f"the versions of {function} could not be read") from err
        return found

    def alias_usage(
        self, function: str, alias: str, versions: list[str], start: datetime, end: datetime
    ) -> list[LambdaVersionUsage]:
        sums: dict[str, list[Decimal]] = {}
        for first in range(0, len(versions), _VERSIONS_PER_REQUEST):
            chunk = versions[first : first + _VERSIONS_PER_REQUEST]
            queries: list[MetricDataQueryTypeDef] = []
            for i, version in enumerate(chunk):
                for prefix, metric in (("i", "Invocations"), ("d", "Duration")):
                    queries.append(
                        {
                            "Id": f"{prefix}{first + i}",
                            "MetricStat": {
                                "Metric": {
                                    "Namespace": "AWS/Lambda",
                                    "MetricName": metric,
                                    "Dimensions": [
                                        {"Name": "FunctionName", "Value": function},
                                        {"Name": "Resource", "Value": f"{function}:{alias}"},
                                        {"Name": "ExecutedVersion", "Value": version},
                                    ],
                                },
                                "Period": _DAY_SECONDS,
                                "Stat": "Sum",
                            },
                            "ReturnData": True,
                        }
                    )
            for result in self._results(function, queries, start, end):
                index = int(result["Id"][1:])
                kind = 0 if result["Id"][0] == "i" else 1
                total = sums.setdefault(versions[index], [Decimal(0), Decimal(0)])
                total[kind] += sum((Decimal(str(v)) for v in result.get("Values", [])), Decimal(0))
        return [
            LambdaVersionUsage(version=v, invocations=int(calls), duration_ms=duration)
            for v, (calls, duration) in sums.items()
            if calls or duration
        ]

    def _results(
        self,
        function: str,
        queries: list[MetricDataQueryTypeDef],
        start: datetime,
        end: datetime,
    ) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        try:
            pages = self._cloudwatch.get_paginator("get_metric_data").paginate(
                MetricDataQueries=queries, StartTime=start, EndTime=end, ScanBy="TimestampAscending"
            )
            for page in pages:
                results.extend(dict(r) for r in page.get("MetricDataResults", []))
        except (ClientError, BotoCoreError) as err:
            raise ServingMetricsError(f"the metrics of {function} could not be read") from err
        return results
