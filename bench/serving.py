"""Serving benchmark: handler latency and cold start, with their baselines, in one run.

Run: ``.venv/bin/python bench/serving.py [--config examples/breast-cancer.yaml] [--quick]``

The model is trained by the real pipeline from the config (default: the README's
breast-cancer HistGradientBoosting), registered on a local moto server (S3 +
DynamoDB over HTTP), and served by the real Lambda handler.

Latency (one process, warm, ``perf_counter`` around each call):

- ``raw onnxruntime``: ``json.loads`` → ``records_to_matrix`` (the same
  type/NaN checks) → ``session.run`` → ``json.dumps``; no framework;
- ``handler``: the deployed entry point, ``handler(event, context)``:
  Powertools resolver, Logger with correlation id, body parsed into a
  ``PredictRequest``, schema validation, ONNX Runtime, capture hand-off, one EMF
  document, response serialized by ``PredictResponse``;
- ``Powertools floor``: that stack around a route answering a constant; the
  ``validation middleware`` row is the same with Powertools' OpenAPI validation,
  Tracer and Metrics decorators (the handler's stack before ADR 0021);
- ``scikit-learn``: the raw path with ``predict_proba`` of the same fitted
  estimator in place of ONNX Runtime (a lower bound for any scikit-learn handler).

Where a 1-row request goes: each stage of the handler timed on its own in the same
process (the deployed service's objects, the same request), plus the capture
writer's background batch cost per request; their sum against the whole handler
shows what the stages cost together (cache and GIL interference). The same stages
are then timed inside running handler calls (wrapped in place) for comparison.

Cold start (a fresh interpreter per sample, spawn → first answer, median):

- ``import numpy, onnxruntime``: the floor;
- ``runtime path``: imports + read bytes + SHA-256 + session + first prediction;
- ``handler``: imports of the handler module + boto3 clients + registry read
  (DynamoDB) + artifact fetch (S3) + SHA-256 + session + first request.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from flywheel.serving.models import PredictResponse

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "shared")]
os.environ.setdefault("OMP_NUM_THREADS", "1")

MODEL = "bench-model"
POWERTOOLS = {
    "POWERTOOLS_SERVICE_NAME": "flywheel-inference",
    "POWERTOOLS_METRICS_NAMESPACE": "Flywheel/bench",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    # The deployed inference function's memory (infra/catalog.py): its CPU share, and
    # so its onnxruntime thread count (flywheel.serving.predictor.default_intra_op_threads).
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
}


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def _time(fn: Any, repeat: int, warmup: int) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    p50, p99 = _percentiles(samples)
    return p50 * 1e6, p99 * 1e6


def _setup(config_path: Path) -> dict[str, Any]:
    """Train, start moto, register and promote; return what the measurements need."""
    import socket

    from flywheel.local import server as moto_server
    from flywheel.local.provision import default_names
    from flywheel.sdk import Flywheel
    from flywheel.settings import Settings
    from flywheel.training.config import load_config

    # moto in its own process, so its CPU time never lands in the measured one
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home = Path(tempfile.mkdtemp(prefix="flywheel-bench-"))
    endpoint = moto_server.ensure_running(port, home)
    names = default_names("bench")
    env = {
        **POWERTOOLS,
        **names,
        # The local backend: the runtime's endpoint and credentials, any actor.
        "FLYWHEEL_BACKEND": "local",
        "FLYWHEEL_ENDPOINT_URL": endpoint,
        "FLYWHEEL_MODEL_NAME": MODEL,
        "FLYWHEEL_MODEL_VERSION": "1",
    }
    os.environ.update(env)
    import boto3

    from flywheel.local.provision import provision
    from flywheel.settings import LOCAL_CREDENTIALS

    session = boto3.Session(
        region_name="us-east-1",
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=LOCAL_CREDENTIALS["AWS_SESSION_TOKEN"],
    )
    provision(
        session.client("dynamodb", endpoint_url=endpoint),
        session.client("s3", endpoint_url=endpoint),
        names,
        kms=session.client("kms", endpoint_url=endpoint),
    )
    config = load_config(config_path).model_copy(update={"model": MODEL})
    sdk = Flywheel.connect(Settings(), actor="bench")
    print(f"training {config.estimator} on {config.dataset.source} ...", file=sys.stderr)
    trained = sdk.train(config)
    version = trained.version
    # Four eyes: someone other than the trainer approves.
    Flywheel.connect(Settings(), actor="bench-approver").approve(
        MODEL, version.version, reason="bench"
    )
    sdk.promote(MODEL, version.version, reason="bench")
    return {"home": home, "sdk": sdk, "version": version, "env": env, "config": config}


def _records(version: Any, rows: int) -> list[dict[str, float]]:
    from flywheel.training.datasets import load_dataset

    data = load_dataset("sklearn:breast_cancer")
    names = version.input_schema.feature_names
    return [dict(zip(names, map(float, row), strict=True)) for row in data.X[:rows]]


def _estimator(config: Any) -> Any:
    """The same estimator, fitted the same way, for the scikit-learn baseline."""
    from flywheel.training.datasets import load_dataset
    from flywheel.training.estimators import build_estimator
    from flywheel.training.trainer import split_indices

    data = load_dataset(config.dataset.source)
    train_idx, _ = split_indices(
        data.y, task=config.task, test_size=config.test_size, seed=config.seed
    )
    estimator = build_estimator(
        config.estimator, config.task, dict(config.hyperparameters), seed=config.seed
    )
    return estimator.fit(data.X[train_idx], data.y[train_idx])


def latency(setup: dict[str, Any], repeat: int) -> list[tuple[str, int, float, float]]:
    import onnxruntime as ort

    from flywheel.serving import records_to_matrix
    from flywheel.serving.predictor import default_intra_op_threads
    from functions.inference import handler as lambda_handler
    from tests.serving_support import FakeContext, raw_event

    version = setup["version"]
    data = setup["sdk"].artifacts.get(version.artifact)
    options = ort.SessionOptions()
    options.intra_op_num_threads = default_intra_op_threads()  # as the handler's session
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    schema = version.input_schema
    classes = list(version.output_schema.classes)
    estimator = _estimator(setup["config"])
    # The attributes Powertools reads, not the runtime's class.
    context = cast("LambdaContext", FakeContext())
    handlers = {
        "handler": lambda_handler.handler,
        "Powertools floor (same stack, no model)": _floor_handler(),
        "floor with validation middleware + Tracer + Metrics": _validating_handler(),
    }
    results = []
    for rows in (1, 100):
        records = _records(version, rows)
        body = json.dumps({"records": records})

        def raw(body: str = body) -> str:
            matrix = records_to_matrix(json.loads(body)["records"], schema)
            labels, probabilities = session.run(None, {"input": matrix})
            return json.dumps(
                {"predictions": labels.tolist(), "probabilities": probabilities.tolist()}
            )

        def sklearn(body: str = body) -> str:
            matrix = records_to_matrix(json.loads(body)["records"], schema)
            probabilities = estimator.predict_proba(matrix)
            labels = [classes[i] for i in probabilities.argmax(axis=1)]
            return json.dumps({"predictions": labels, "probabilities": probabilities.tolist()})

        event = raw_event(body, model=MODEL)
        matrix = records_to_matrix(records, schema)

        def ort_call(matrix: Any = matrix) -> None:
            session.run(None, {"input": matrix})

        def sklearn_call(matrix: Any = matrix) -> None:
            estimator.predict_proba(matrix)

        def invoke(entry: Any, event: dict[str, Any] = event) -> Any:
            def call() -> None:
                response = entry(event, context)
                assert response["statusCode"] == 200, response

            return call

        count = repeat if rows == 1 else max(repeat // 10, 100)
        sink = io.StringIO()
        with redirect_stdout(sink):  # EMF lines go to stdout, as in Lambda
            timed = (
                ("raw onnxruntime", raw),
                *((name, invoke(entry)) for name, entry in handlers.items()),
                ("model call only: onnxruntime", ort_call),
            )
            for name, fn in timed:
                results.append((name, rows, *_time(fn, count, warmup=100)))
                sink.seek(0)
                sink.truncate()
        results.append(("scikit-learn", rows, *_time(sklearn, count, warmup=20)))
        results.append(
            ("model call only: scikit-learn", rows, *_time(sklearn_call, count, warmup=20))
        )
    return results


def breakdown(setup: dict[str, Any], repeat: int) -> list[tuple[str, float, float | None]]:
    """Where one 1-row request's time goes: each stage of the handler timed on its own.

    The stages run the deployed objects (the handler module's service, its model,
    validator, metrics and capture writer) on the same request, after warm-up.
    ``capture batch write`` is the background writer's cost per request: one batch
    of ``capture_max_rows`` entries encoded, gzipped and put to S3, divided by its
    size (it runs on another thread but holds the GIL while in Python).
    """
    from flywheel.serving import http
    from flywheel.serving.capture import CaptureEntry, CaptureWriter
    from flywheel.serving.metrics import MetricLabels, scores
    from flywheel.serving.service import _response
    from functions.inference import handler as lambda_handler
    from tests.serving_support import FakeContext, raw_event

    body = json.dumps({"records": _records(setup["version"], 1)})
    event = raw_event(body, model=MODEL)
    # The attributes Powertools reads, not the runtime's class.
    context = cast("LambdaContext", FakeContext())
    stages: list[tuple[str, float]] = []
    sink = io.StringIO()
    with redirect_stdout(sink):
        for _ in range(200):
            lambda_handler.handler(event, context)
        service = lambda_handler._service()
        served = service.primary
        request = http.parse_predict_request(body)
        matrix = served.validator.matrix(request.rows())
        prediction = served.model.predict(matrix)
        variant = service.current_variant()
        labels = MetricLabels(service.name, served.version.version, variant)
        answer = _response(service.name, served, variant, "r", prediction)
        entry = CaptureEntry(
            request_id="r",
            model=service.name,
            version=served.version.version,
            variant=variant.value,
            timestamp=time.time(),
            latency_ms=0.1,
            records=request.rows(),
            prediction=prediction,
            body=body,
        )
        assert service.capture is not None
        writer = CaptureWriter(
            service.capture.sink, max_rows=service.capture.max_rows, background=False
        )
        batch = service.capture.max_rows

        def write_batch() -> None:
            for _ in range(batch):
                writer.submit(entry)
            writer.flush()

        timed: list[tuple[str, Any, int]] = [
            ("Powertools resolver + Logger (constant answer, no parsing)", _bare_handler(), 0),
            ("parse the body (PredictRequest)", lambda: http.parse_predict_request(body), 1),
            ("schema validation -> matrix", lambda: served.validator.matrix(request.rows()), 1),
            ("model call + output checks (ONNX Runtime)", lambda: served.model.predict(matrix), 1),
            (
                "response: build + serialize",
                lambda: _response(service.name, served, variant, "r", prediction).model_dump_json(),
                1,
            ),
            (
                "EMF document",
                lambda: service.metrics.request_served(
                    labels, rows=1, latency_ms=0.1, scores=scores(prediction), capture_lost=0
                ),
                1,
            ),
            ("capture hand-off (submit)", lambda: writer.submit(entry), 1),
        ]
        for name, fn, kind in timed:
            if kind == 0:

                def call(fn: Any = fn) -> None:
                    fn(event, context)

                stages.append((name, _time(call, repeat, warmup=100)[0]))
            else:
                stages.append((name, _time(fn, repeat, warmup=100)[0]))
            sink.seek(0)
            sink.truncate()
            writer.flush()
        write_batch()
        started = time.perf_counter()
        rounds = 5
        for _ in range(rounds):
            write_batch()
        per_request = (time.perf_counter() - started) / (rounds * batch) * 1e6
        stages.append((f"capture batch write ({batch} entries), per request", per_request))
        stages.append(
            (
                "handler (whole)",
                _time(lambda: lambda_handler.handler(event, context), repeat, warmup=100)[0],
            )
        )
        del answer
        inside = _in_handler(lambda: lambda_handler.handler(event, context), repeat, sink)
    return [(name, alone, inside.get(name)) for name, alone in stages]


def _in_handler(call: Any, repeat: int, sink: io.StringIO) -> dict[str, float]:
    """p50 of the same stages timed inside running handler calls (wrapped in place)."""
    from flywheel.adapters.emf_metrics import EmfServingMetrics
    from flywheel.serving import http
    from flywheel.serving.predictor import OnnxModel
    from flywheel.serving.validation import RecordValidator

    targets = {
        "parse the body (PredictRequest)": (http, "parse_predict_request"),
        "schema validation -> matrix": (RecordValidator, "matrix"),
        "model call + output checks (ONNX Runtime)": (OnnxModel, "predict"),
        "EMF document": (EmfServingMetrics, "request_served"),
    }
    samples: dict[str, list[float]] = {name: [] for name in targets}
    originals = {name: getattr(owner, attr) for name, (owner, attr) in targets.items()}

    def timed(name: str, original: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                samples[name].append(time.perf_counter() - started)

        return wrapper

    try:
        for name, (owner, attr) in targets.items():
            setattr(owner, attr, timed(name, originals[name]))
        for i in range(repeat):
            call()
            if i % 200 == 0:
                sink.seek(0)
                sink.truncate()
    finally:
        for name, (owner, attr) in targets.items():
            setattr(owner, attr, originals[name])
    return {name: statistics.median(values) * 1e6 for name, values in samples.items()}


def _bare_handler() -> Any:
    """The deployed Powertools stack around a route that answers a constant string."""
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

    app = APIGatewayRestResolver()
    logger = Logger()

    @app.post("/v1/models/<name>/predict")
    def predict(name: str) -> Response[str]:  # noqa: ARG001 - the route's parameter
        return Response(200, "application/json", '{"predictions":["x"]}')

    @logger.inject_lambda_context
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        logger.set_correlation_id(event["requestContext"]["requestId"])
        return app.resolve(event, context)

    return handler


def _constant_answer(name: str, body: Any) -> PredictResponse:
    """What the framework-floor routes answer: no model, one label per record."""
    from flywheel.serving.models import PredictResponse, Variant

    return PredictResponse.model_construct(
        model=name,
        version=1,
        variant=Variant.CHAMPION,
        request_id="r",
        predictions=["x"] * len(body.rows()),
        probabilities=None,
    )


def _floor_handler() -> Any:
    """The deployed stack (resolver, Logger with correlation id, body parsed into a
    ``PredictRequest``) around a route that answers a constant: what the framework
    alone costs."""
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

    from flywheel.serving.http import parse_predict_request

    app = APIGatewayRestResolver()
    logger = Logger()

    @app.post("/v1/models/<name>/predict")
    def predict(name: str) -> Response[str]:
        body = parse_predict_request(app.current_event.decoded_body)
        return Response(200, "application/json", _constant_answer(name, body).model_dump_json())

    @logger.inject_lambda_context
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        logger.set_correlation_id(event["requestContext"]["requestId"])
        return app.resolve(event, context)

    return handler


def _validating_handler() -> Any:
    """The same constant route on Powertools' OpenAPI validation middleware, with Tracer
    and Metrics decorators: the stack the handler used before ADR 0021."""
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver
    from aws_lambda_powertools.logging import correlation_paths

    from flywheel.serving.models import PredictRequest, PredictResponse

    app = APIGatewayRestResolver(enable_validation=True)
    logger, tracer, metrics = Logger(), Tracer(), Metrics()

    def predict(name: str, body: PredictRequest) -> PredictResponse:
        metrics.add_metric(name="Latency", unit="Milliseconds", value=0.1)
        return _constant_answer(name, body)

    # Real objects, not the strings of postponed annotations: Powertools reads them.
    predict.__annotations__ = {"name": str, "body": PredictRequest, "return": PredictResponse}
    app.post("/v1/models/<name>/predict")(predict)

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return app.resolve(event, context)

    return handler


_COLD_HANDLER = """
import json, sys, time
from functions.inference import handler as h
from tests.serving_support import FakeContext, raw_event
imported = time.perf_counter()
event = raw_event(sys.argv[1], model=sys.argv[2])
response = h.handler(event, FakeContext())
done = time.perf_counter()
assert response["statusCode"] == 200, response
sys.stderr.write(json.dumps({"imports": imported, "done": done}) + "\\n")
"""

_COLD_RUNTIME = """
import sys, time
from pathlib import Path
from flywheel.registry.models import InputSchema, OutputSchema
from flywheel.serving import OnnxModel
data = Path(sys.argv[1]).read_bytes()
model = OnnxModel.load(
    data,
    expected_sha256=sys.argv[2],
    input_schema=InputSchema.model_validate_json(sys.argv[3]),
    output_schema=OutputSchema.model_validate_json(sys.argv[4]),
)
model.predict_records([__import__("json").loads(sys.argv[5])])
"""


def _spawn(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return elapsed, result.stderr


def cold_start(setup: dict[str, Any], samples: int) -> list[tuple[str, float, str]]:
    version = setup["version"]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")},
        **setup["env"],
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'shared'}",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    record = json.dumps(_records(version, 1)[0])
    artifact = setup["sdk"].artifacts.get(version.artifact)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(artifact)
        runs: dict[str, list[float]] = {"bare": [], "runtime": [], "handler": []}
        breakdown: list[tuple[float, float]] = []
        snap: list[tuple[float, float]] = []
        for _ in range(samples):
            runs["bare"].append(_spawn(["-c", "import numpy, onnxruntime"], env)[0])
            runs["runtime"].append(
                _spawn(
                    [
                        "-c",
                        _COLD_RUNTIME,
                        str(path),
                        version.artifact.sha256,
                        version.input_schema.model_dump_json(),
                        version.output_schema.model_dump_json(),
                        record,
                    ],
                    env,
                )[0]
            )
            started = time.perf_counter()
            elapsed, stderr = _spawn(
                ["-c", _COLD_HANDLER, json.dumps({"record": json.loads(record)}), MODEL], env
            )
            runs["handler"].append(elapsed)
            marks = json.loads(stderr.strip().splitlines()[-1])
            breakdown.append((marks["imports"], marks["done"] - marks["imports"]))
            del started
            # SnapStart: the init phase (imports + model load) runs when a version is
            # published; a restored environment starts at the first request.
            elapsed, stderr = _spawn(
                ["-c", _COLD_HANDLER, json.dumps({"record": json.loads(record)}), MODEL],
                {**env, "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"},
            )
            marks = json.loads(stderr.strip().splitlines()[-1])
            snap.append(
                (elapsed - (marks["done"] - marks["imports"]), marks["done"] - marks["imports"])
            )
    first_request = statistics.median(b[1] for b in breakdown) * 1000
    total = statistics.median(runs["handler"]) * 1000
    return [
        ("import numpy, onnxruntime (floor)", statistics.median(runs["bare"]) * 1000, ""),
        (
            "runtime path: imports + bytes + SHA-256 + session + predict",
            statistics.median(runs["runtime"]) * 1000,
            "",
        ),
        (
            "handler: imports + boto3 + registry + S3 fetch + verify + session + 1st request",
            total,
            f"of which init + 1st request {first_request:.0f} ms, imports+interpreter "
            f"{total - first_request:.0f} ms",
        ),
        (
            "SnapStart init at publish: imports + boto3 + registry + S3 + verify + session",
            statistics.median(s[0] for s in snap) * 1000,
            "runs once per published version, before the snapshot",
        ),
        (
            "SnapStart first request after restore (restore itself: AWS, not measurable here)",
            statistics.median(s[1] for s in snap) * 1000,
            "what a resumed environment still does on its first request",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "breast-cancer.yaml")
    parser.add_argument("--repeat", type=int, default=3000, help="timed calls for 1 row")
    parser.add_argument("--cold", type=int, default=7, help="fresh processes per cold start")
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.cold = 300, 2
    setup = _setup(args.config)
    try:
        rows = latency(setup, args.repeat)
        stages = breakdown(setup, args.repeat)
        colds = cold_start(setup, args.cold)
    finally:
        from flywheel.local import server as moto_server

        moto_server.stop(setup["home"])
    config = setup["config"]
    print(
        f"\nmodel: {config.estimator} ({config.dataset.source}, "
        f"{len(setup['version'].input_schema.features)} features); "
        f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}\n"
    )
    print("| path (warm, one process) | rows | p50 µs | p99 µs |")
    print("|---|---:|---:|---:|")
    by_key = {}
    for name, n, p50, p99 in rows:
        by_key[(name, n)] = p50
        print(f"| {name} | {n} | {p50:,.0f} | {p99:,.0f} |")
    print()
    for n in (1, 100):
        p50s = {
            name: value
            for (name, rows_, value) in ((k[0], k[1], v) for k, v in by_key.items())
            if rows_ == n
        }
        model_ratio = p50s["model call only: scikit-learn"] / p50s["model call only: onnxruntime"]
        print(
            f"- {n} row(s): handler / raw = {p50s['handler'] / p50s['raw onnxruntime']:.1f}x "
            f"(goal <= 2x at 1 row); Powertools floor / raw = "
            f"{p50s['Powertools floor (same stack, no model)'] / p50s['raw onnxruntime']:.1f}x; "
            f"scikit-learn path / handler = {p50s['scikit-learn'] / p50s['handler']:.1f}x; "
            f"model call scikit-learn / onnxruntime = {model_ratio:.0f}x (goal >= 20x)"
        )
    raw = by_key[("raw onnxruntime", 1)]
    print("\n| where one 1-row request goes (p50) | alone µs | / raw | inside the handler µs |")
    print("|---|---:|---:|---:|")
    for name, micros, inside in stages:
        within = "" if inside is None else f"{inside:,.1f}"
        print(f"| {name} | {micros:,.1f} | {micros / raw:.2f} | {within} |")
    parts = sum(micros for name, micros, _ in stages if name != "handler (whole)")
    print(f"| sum of the stages | {parts:,.1f} | {parts / raw:.2f} | |")
    print("\n| cold start (fresh process, median) | ms | note |")
    print("|---|---:|---|")
    for name, ms, note in colds:
        print(f"| {name} | {ms:,.0f} | {note} |")


if __name__ == "__main__":
    main()
