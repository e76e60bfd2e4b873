"""Models built by the user's own code: ``entrypoint: "mypkg.models:build"`` in a config.

The callable is imported (the current directory is searched first, as with
``python -m``), called with the config's ``hyperparameters`` as keyword arguments,
and must return an *unfitted* scikit-learn-compatible estimator or pipeline.
Flywheel seeds it (every ``random_state`` among its parameters), fits it, converts
it to ONNX and proves parity as for a built-in estimator (ADR 70).  Problems are a
:class:`~flywheel.errors.ConfigError` or :class:`~flywheel.errors.TrainingError`
whose message starts with ``entrypoint:``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.errors import ConfigError, TrainingError
from flywheel.registry.models import EntrypointLineage, Task
from flywheel.training import _onnx_trees
from flywheel.training.conversion import OnnxConversion, convert_to_onnx
from flywheel.training.estimators import build_estimator, model_step

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from flywheel.training.config import TrainingConfig

#: ONNX ``TensorProto.DOUBLE``: what a float64 conversion's numeric outputs must be.
_DOUBLE = 11


@contextlib.contextmanager
def _current_directory_on_path() -> Iterator[None]:
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        if added:
            sys.path.remove(cwd)


def _import_module(module_name: str, spec: str) -> Any:
    with _current_directory_on_path():
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            missing = err.name or module_name
            if module_name == missing or module_name.startswith(f"{missing}."):
                raise ConfigError(
                    f"entrypoint: no module named {missing!r} (from {spec}); install the "
                    "package or run from the folder that holds it",
                    field="entrypoint",
                ) from None
            raise ConfigError(
                f"entrypoint: importing {module_name} failed: it needs module {missing!r}",
                field="entrypoint",
            ) from err
        except Exception as err:  # the user's module raised while importing
            raise ConfigError(
                f"entrypoint: importing {module_name} raised {type(err).__name__}",
                field="entrypoint",
            ) from err


def load_entrypoint(spec: str) -> Callable[..., Any]:
    """Import the callable named by ``spec`` (``package.module:callable``).

    Raises
    ------
    ConfigError
        The module cannot be imported, has no such attribute, or it is not callable
        (``field="entrypoint"``).

    Examples
    --------
    >>> load_entrypoint("sklearn.linear_model:LinearRegression").__name__
    'LinearRegression'
    >>> load_entrypoint("sklearn.linear_model:nothing_here")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    flywheel.errors.ConfigError: entrypoint: sklearn.linear_model has no attribute 'nothing_here'
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(
            f"entrypoint: {spec!r} is not of the form package.module:callable", field="entrypoint"
        )
    target: Any = _import_module(module_name, spec)
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(
                f"entrypoint: {module_name} has no attribute {attribute!r}", field="entrypoint"
            )
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(
            f"entrypoint: {spec} is not callable ({type(target).__name__})", field="entrypoint"
        )
    built: Callable[..., Any] = target
    return built


def _call(spec: str, build: Callable[..., Any], params: Mapping[str, Any]) -> Any:
    try:
        signature = inspect.signature(build)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        for name in params:
            if not takes_any and name not in signature.parameters:
                raise ConfigError(
                    f"hyperparameters.{name}: {spec} takes no parameter {name!r}",
                    field=f"hyperparameters.{name}",
                )
        try:
            signature.bind(**params)
        except TypeError:
            raise ConfigError(
                f"entrypoint: {spec} needs arguments the config does not give "
                "(set them under hyperparameters)",
                field="entrypoint",
            ) from None
    try:
        return build(**params)
    except Exception as err:  # the user's code: report the type, keep its text in the chain
        raise ConfigError(
            f"entrypoint: {spec} raised {type(err).__name__} when called", field="entrypoint"
        ) from err


def _check_model(spec: str, model: Any, task: Task) -> None:
    kind = type(model).__name__
    for method in ("fit", "predict"):
        if not callable(getattr(model, method, None)):
            raise ConfigError(
                f"entrypoint: {spec} returned a {kind}, which has no {method}(); return an "
                "unfitted scikit-learn estimator or pipeline",
                field="entrypoint",
            )
    if task is Task.CLASSIFICATION and not callable(getattr(model, "predict_proba", None)):
        raise ConfigError(
            f"entrypoint: {spec} returned a {kind} without predict_proba(); a classification "
            "model must give class probabilities",
            field="entrypoint",
        )
    if task is Task.REGRESSION and _is_classifier(model):
        raise ConfigError(
            f"entrypoint: {spec} returned a classifier ({kind}); the config's task is regression",
            field="entrypoint",
        )


def _is_classifier(model: Any) -> bool:
    from sklearn.base import is_classifier

    try:
        return bool(is_classifier(model))
    except (AttributeError, TypeError):  # not a scikit-learn object: no tags to read
        return False


def seed_model(model: Any, seed: int) -> tuple[str, ...]:
    """Set every ``random_state`` among ``model``'s parameters (nested steps too) to ``seed``.

    Returns the parameter names that were set.

    Examples
    --------
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> pipeline = make_pipeline(StandardScaler(), RandomForestClassifier())
    >>> seed_model(pipeline, 7)
    ('randomforestclassifier__random_state',)
    >>> pipeline[-1].random_state
    7
    """
    get_params = getattr(model, "get_params", None)
    if not callable(get_params):
        return ()
    names = tuple(
        sorted(
            name
            for name in get_params(deep=True)
            if name == "random_state" or name.endswith("__random_state")
        )
    )
    if names:
        model.set_params(**dict.fromkeys(names, seed))
    return names


def build_model(config: TrainingConfig) -> Any:
    """The unfitted, seeded model ``config`` asks for: a built-in estimator or the entrypoint's.

    Raises
    ------
    ConfigError
        The entrypoint cannot be imported or called, or returns something that is not
        a model for ``config.task`` (``entrypoint: ...``).

    Examples
    --------
    >>> from flywheel.training.config import parse_config
    >>> model = build_model(parse_config({
    ...     "model": "iris", "task": "classification", "dataset": {"source": "sklearn:iris"},
    ...     "entrypoint": "sklearn.ensemble:RandomForestClassifier",
    ...     "hyperparameters": {"n_estimators": 5}, "seed": 3,
    ... }))
    >>> (type(model).__name__, model.n_estimators, model.random_state)
    ('RandomForestClassifier', 5, 3)
    """
    if config.entrypoint is None:
        assert config.estimator is not None  # the config's validator guarantees one of them
        return build_estimator(
            config.estimator, config.task, dict(config.hyperparameters), seed=config.seed
        )
    spec = config.entrypoint
    model = _call(spec, load_entrypoint(spec), dict(config.hyperparameters))
    _check_model(spec, model, config.task)
    seed_model(model, config.seed)
    return model


def fit_error(config: TrainingConfig, err: Exception) -> TrainingError:
    """The one-line error for a model that failed to fit (naming ``entrypoint`` or ``estimator``).

    Examples
    --------
    >>> from flywheel.training.config import parse_config
    >>> config = parse_config({
    ...     "model": "iris", "task": "classification", "dataset": {"source": "sklearn:iris"},
    ...     "entrypoint": "mypkg.models:build",
    ... })
    >>> fit_error(config, ValueError("bad")).field
    'entrypoint'
    """
    if config.entrypoint is None:
        return TrainingError(
            f"estimator: {config.estimator} failed to fit; check the combination of "
            "hyperparameters and the data",
            field="estimator",
        )
    return TrainingError(
        f"entrypoint: the model from {config.entrypoint} failed to fit ({type(err).__name__})",
        field="entrypoint",
    )


def _leaves(model: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every estimator inside pipelines, column transformers and feature unions."""
    if model is None or isinstance(model, str):  # "passthrough", "drop"
        return
    steps = getattr(model, "steps", None)
    if isinstance(steps, list):
        for name, step in steps:
            yield from _leaves(step, name)
        return
    for attribute in ("transformers", "transformer_list"):
        parts = getattr(model, attribute, None)
        if isinstance(parts, list):
            for part in parts:
                yield from _leaves(part[1], part[0])
            return
    yield where, model


def unconvertible_steps(model: Any) -> list[str]:
    """The steps of ``model`` skl2onnx has no converter for, as ``"Type (step 'name')"``.

    Examples
    --------
    >>> from sklearn.base import BaseEstimator, TransformerMixin
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import Pipeline
    >>> class Clip(TransformerMixin, BaseEstimator):
    ...     def fit(self, X, y=None): return self
    ...     def transform(self, X): return X
    >>> unconvertible_steps(Pipeline([("clip", Clip()), ("model", LogisticRegression())]))
    ["Clip (step 'clip')"]
    """
    from skl2onnx._supported_operators import sklearn_operator_name_map

    return [
        f"{type(leaf).__name__} (step {name!r})"
        for name, leaf in _leaves(model, "model")
        if type(leaf) not in sklearn_operator_name_map
    ]


def _tree_behind_steps(model: Any) -> bool:
    steps = getattr(model, "steps", None)
    if not isinstance(steps, list) or len(steps) < 2:
        return False
    before = [step for _, step in steps[:-1] if step is not None and step != "passthrough"]
    return bool(before) and _onnx_trees.is_tree_ensemble(model_step(model))


def _outputs_are_double(onnx_bytes: bytes, task: Task) -> bool:
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    numeric = {_onnx_trees.PROBABILITY_OUTPUT, _onnx_trees.PREDICTION_OUTPUT}
    types = {o.name: o.type.tensor_type.elem_type for o in model.graph.output if o.name in numeric}
    wanted = (
        _onnx_trees.PROBABILITY_OUTPUT
        if task is Task.CLASSIFICATION
        else _onnx_trees.PREDICTION_OUTPUT
    )
    return types.get(wanted) == _DOUBLE


def convert_model(
    model: Any, *, config: TrainingConfig, n_features: int, metadata: Mapping[str, str]
) -> OnnxConversion:
    """Convert a fitted model to ONNX: built-in estimators as ever, an entrypoint's with care.

    An entrypoint's pipeline is refused when skl2onnx has no converter for one of its
    steps; a tree ensemble behind preprocessing steps, or a float64 graph whose outputs
    are float32, is converted in float32 with the reason recorded (``fallback_reason``).

    Raises
    ------
    TrainingError
        Naming ``entrypoint`` (or ``estimator``) and the step that cannot be converted.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> from flywheel.training.config import parse_config
    >>> config = parse_config({
    ...     "model": "line", "task": "regression", "dataset": {"source": "sklearn:diabetes"},
    ...     "entrypoint": "sklearn.linear_model:LinearRegression",
    ... })
    >>> fitted = LinearRegression().fit([[0.0], [1.0]], [1.0, 3.0])
    >>> convert_model(fitted, config=config, n_features=1, metadata={}).precision
    'float64'
    """
    task = config.task
    if config.entrypoint is None:
        return convert_to_onnx(
            model, task=task, n_features=n_features, precision=config.precision, metadata=metadata
        )
    spec = config.entrypoint
    missing = unconvertible_steps(model)
    if missing:
        raise TrainingError(
            f"entrypoint: {spec} cannot be converted to ONNX: skl2onnx has no converter for "
            f"{', '.join(missing)} (register one with skl2onnx.update_registered_converter)",
            field="entrypoint",
        )
    precision = config.precision
    reason: str | None = None
    if precision == "float64" and _tree_behind_steps(model):
        precision = "float32"
        reason = (
            f"the float64 tree writer converts a bare {type(model_step(model)).__name__}, "
            "not one behind preprocessing steps"
        )
    try:
        conversion = convert_to_onnx(
            model, task=task, n_features=n_features, precision=precision, metadata=metadata
        )
        if conversion.precision == "float64" and not _outputs_are_double(
            conversion.onnx_bytes, task
        ):
            reason = f"skl2onnx's float64 graph for {type(model_step(model)).__name__} "
            reason += "returns float32 outputs"
            conversion = convert_to_onnx(
                model, task=task, n_features=n_features, precision="float32", metadata=metadata
            )
    except TrainingError as err:
        cause = f" ({type(err.__cause__).__name__})" if err.__cause__ is not None else ""
        raise TrainingError(
            f"entrypoint: {spec} cannot be converted to ONNX: "
            f"{err.message.removeprefix('estimator: ')}{cause}",
            field="entrypoint",
        ) from err
    if reason is not None and conversion.fallback_reason is None:
        conversion = conversion.model_copy(update={"fallback_reason": reason})
    return conversion


def _distribution(top_level: str) -> tuple[str | None, str | None]:
    for name in metadata.packages_distributions().get(top_level, []):
        with contextlib.suppress(metadata.PackageNotFoundError):
            return name, metadata.version(name)
    module = sys.modules.get(top_level)
    version = getattr(module, "__version__", None)
    return (top_level, version) if isinstance(version, str) else (None, None)


def entrypoint_lineage(config: TrainingConfig) -> EntrypointLineage | None:
    """What lineage records about ``config.entrypoint``: the spec, package version, source hash.

    Examples
    --------
    >>> from flywheel.training.config import parse_config
    >>> lineage = entrypoint_lineage(parse_config({
    ...     "model": "line", "task": "regression", "dataset": {"source": "sklearn:diabetes"},
    ...     "entrypoint": "sklearn.linear_model:LinearRegression",
    ... }))
    >>> (lineage.spec, lineage.package, len(lineage.source_sha256))
    ('sklearn.linear_model:LinearRegression', 'scikit-learn', 64)
    """
    if config.entrypoint is None:
        return None
    module_name = config.entrypoint.partition(":")[0]
    module = _import_module(module_name, config.entrypoint)
    package, version = _distribution(module_name.split(".")[0])
    source_sha256: str | None = None
    with contextlib.suppress(TypeError, OSError):
        source = inspect.getsourcefile(module)
        if source is not None:
            source_sha256 = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    return EntrypointLineage(
        spec=config.entrypoint,
        package=package,
        package_version=version,
        source_sha256=source_sha256,
    )
