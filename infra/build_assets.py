"""Build the Lambda layers and the training image's build context, from a checkout or an
installed Flywheel, without Docker; then check every function against Lambda's limits.

``python -m infra.build_assets [--out DIR] [--skip-image] [--check-only] [--force]``

Each pip layer (``infra.catalog.LAYERS``) gets its pinned requirements installed for
Lambda (CPython 3.12, manylinux x86_64 wheels only, ``--no-deps``) into
``<out>/<layer>/python``; the ``domain`` layer is a copy of the ``flywheel`` package
without the developer toolkit. The training image's context is ``<out>/training``: its
Dockerfile, the pinned wheels in ``python/``, and copies of ``flywheel`` and ``functions``.
Sources are found where Python imports them (:class:`Sources`), so a wheel in a team's
virtual environment builds the same bytes as a checkout. ``<out>/manifest.json`` records
what was built; synth refuses a build whose code or requirements have changed since.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from infra.catalog import (
    DOMAIN_EXCLUDES,
    FUNCTIONS,
    IMAGE_LIMIT_BYTES,
    IMAGES,
    LAYERS,
    PIP_PLATFORMS,
    PYTHON_VERSION,
    ZIP_UNZIPPED_LIMIT_BYTES,
)

__all__ = [
    "ASSETS_DIR_ENV",
    "AssetsError",
    "Sources",
    "build_problems",
    "default_build_dir",
    "main",
]

#: The ``infra`` package: the layer requirements and the training Dockerfile live in it.
INFRA_DIR = Path(__file__).resolve().parent
#: Overrides where the build goes (and where synth looks for it).
ASSETS_DIR_ENV = "FLYWHEEL_ASSETS_DIR"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
MIB = 1024 * 1024

#: Directory names removed anywhere in a build (never imported at run time).
PRUNE_DIR_NAMES = frozenset({"__pycache__", "tests"})
#: File suffixes removed anywhere: bytecode (Lambda's /opt is read-only and our host's
#: CPython would compile for the wrong version anyway), type stubs, C/Cython sources.
PRUNE_SUFFIXES = (".pyc", ".pyo", ".pyi", ".pxd", ".pyx", ".c", ".cc", ".cpp", ".h", ".hpp")
#: Per-build subtrees that the functions never import (paths relative to ``python/``).
PRUNE: dict[str, tuple[str, ...]] = {
    # Only onnxruntime.InferenceSession is used for serving; these tool packages are what
    # pull in protobuf/flatbuffers/sympy, which the layer deliberately does not ship.
    "onnxruntime": (
        "onnxruntime/transformers",
        "onnxruntime/quantization",
        "onnxruntime/tools",
        "onnxruntime/datasets",
        "onnxruntime/backend",
    ),
    "training": (
        "onnxruntime/transformers",
        "onnxruntime/datasets",
        "pyarrow/include",
        "pyarrow/src",
    ),
}
#: Never part of the function code or the image's copy of it.
CODE_EXCLUDES = frozenset({"__pycache__", "tests"})
_BYTECODE = (".pyc", ".pyo")


class AssetsError(RuntimeError):
    """Assets that are missing or were built from other sources; the message says what to run."""


@dataclass(frozen=True)
class Sources:
    """Where the code and the build recipes are: the packages Python imports.

    In a checkout (editable install) that is ``shared/flywheel``, ``functions/`` and
    ``infra/``; in an installed Flywheel, the same three packages in site-packages.

    Examples
    --------
    >>> sources = Sources.located()
    >>> sources.domain.name, sources.functions.name, sources.dockerfile("training").name
    ('flywheel', 'functions', 'Dockerfile')
    """

    domain: Path
    functions: Path
    infra: Path = INFRA_DIR

    @classmethod
    def located(cls) -> Sources:
        """The ``flywheel`` and ``functions`` packages this interpreter imports."""
        return cls(domain=_package_dir("flywheel"), functions=_package_dir("functions"))

    @property
    def is_checkout(self) -> bool:
        """Whether these are a Flywheel checkout's sources (``shared/flywheel`` next to infra)."""
        root = self.infra.parent
        return self.domain == root / "shared" / "flywheel" and (root / "pyproject.toml").is_file()

    def requirements(self, key: str) -> Path:
        spec = LAYERS[key].requirements if key in LAYERS else IMAGES[key].requirements
        if spec is None:
            raise KeyError(f"{key} has no requirements (it is a copy of the domain package)")
        return self.infra / spec

    def dockerfile(self, image: str) -> Path:
        return self.infra / IMAGES[image].dockerfile

    def code_files(self) -> list[tuple[str, Path]]:
        """Every file the build copies (domain without the toolkit, functions, Dockerfiles),
        as ``(label, path)`` sorted by label: what :func:`code_digest` hashes."""
        files = [(f"flywheel/{rel}", path) for rel, path in _tree(self.domain, domain=True)]
        files += [(f"functions/{rel}", path) for rel, path in _tree(self.functions)]
        files += [(f"dockerfile/{key}", self.dockerfile(key)) for key in IMAGES]
        return sorted(files)


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise AssetsError(f"the {name} package cannot be imported: install Flywheel first")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def _tree(root: Path, *, domain: bool = False) -> list[tuple[str, Path]]:
    """Files under ``root`` that ship (no caches, no tests; the domain without the toolkit)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in CODE_EXCLUDES and not (domain and here == root and d in DOMAIN_EXCLUDES)
        )
        for name in filenames:
            if name.endswith(_BYTECODE) or (domain and here == root and name in DOMAIN_EXCLUDES):
                continue
            path = here / name
            found.append((path.relative_to(root).as_posix(), path))
    return found


def default_build_dir(sources: Sources | None = None) -> Path:
    """``FLYWHEEL_ASSETS_DIR``; else ``layers/build`` in a checkout, ``build/flywheel-assets``
    under the working directory (a team's repository) for an installed Flywheel."""
    configured = os.environ.get(ASSETS_DIR_ENV)
    if configured:
        return Path(configured)
    sources = sources or Sources.located()
    if sources.is_checkout:
        return sources.infra.parent / "layers" / "build"
    return Path.cwd() / "build" / "flywheel-assets"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def code_digest(sources: Sources) -> str:
    """SHA-256 over every copied file's label and content (see :meth:`Sources.code_files`)."""
    digest = hashlib.sha256()
    for label, path in sources.code_files():
        digest.update(f"{label}\0{_sha256(path)}\n".encode())
    return digest.hexdigest()


def read_manifest(build_dir: Path) -> dict[str, Any]:
    path = build_dir / MANIFEST
    if not path.is_file():
        return {}
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded if loaded.get("format") == MANIFEST_FORMAT else {}


def build_problems(build_dir: Path, sources: Sources) -> list[str]:
    """What keeps ``build_dir`` from being deployed with ``sources``; empty when it is fresh."""
    manifest = read_manifest(build_dir)
    problems = [
        f"layer {key} is not built" for key in LAYERS if not (build_dir / key / "python").is_dir()
    ]
    for key in IMAGES:
        context = build_dir / key
        if not all((context / p).exists() for p in ("Dockerfile", "python", "flywheel")):
            problems.append(f"the {key} image's context is not built")
    if problems:
        return problems
    if not manifest:
        return [f"{build_dir / MANIFEST} is missing"]
    if manifest.get("code_sha256") != code_digest(sources):
        problems.append("the flywheel or functions code changed since the build")
    built = manifest.get("requirements_sha256", {})
    for key in [k for k, v in LAYERS.items() if v.requirements] + list(IMAGES):
        if built.get(key) != _sha256(sources.requirements(key)):
            problems.append(f"the requirements of {key} changed since the build")
    return problems


@dataclass(frozen=True)
class Sized:
    key: str
    path: Path
    bytes: int


def tree_size(path: Path, *, skip_dirs: frozenset[str] = frozenset()) -> int:
    """Apparent size in bytes of every regular file under ``path`` (what Lambda counts)."""
    if not path.exists():
        return 0
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if d not in skip_dirs]
        for name in filenames:
            if skip_dirs and name.endswith(_BYTECODE):
                continue
            full = Path(dirpath, name)
            if not full.is_symlink():
                total += full.stat().st_size
    return total


def trim(python_dir: Path, key: str) -> int:
    """Remove what is never imported; return the bytes saved. ``.so`` files are kept as is."""
    before = tree_size(python_dir)
    for rel in PRUNE.get(key, ()):
        shutil.rmtree(python_dir / rel, ignore_errors=True)
    for dirpath, dirnames, filenames in os.walk(python_dir, topdown=True):
        keep = []
        for d in dirnames:
            if d in PRUNE_DIR_NAMES or (d == "include" and not _has_code(Path(dirpath, d))):
                shutil.rmtree(Path(dirpath, d))
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            if name.endswith(PRUNE_SUFFIXES):
                Path(dirpath, name).unlink()
    return before - tree_size(python_dir)


def _has_code(path: Path) -> bool:
    return any(p.suffix in {".py", ".so"} or ".so." in p.name for p in path.rglob("*"))


def pip_install(requirements: Path, target: Path) -> None:
    """Install the pinned wheels for Lambda's Python and platform into ``target``."""
    cmd = [
        sys.executable, "-m", "pip", "install",
        "--quiet", "--disable-pip-version-check", "--no-compile", "--no-deps",
        "--only-binary=:all:", "--implementation", "cp",
        "--python-version", PYTHON_VERSION,
        *[arg for platform in PIP_PLATFORMS for arg in ("--platform", platform)],
        "--target", str(target),
        "-r", str(requirements),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)


def build_pip(key: str, requirements: Path, build_dir: Path) -> Sized:
    """``<build_dir>/<key>/python``: the requirements for Lambda, trimmed."""
    python_dir = build_dir / key / "python"
    shutil.rmtree(python_dir, ignore_errors=True)
    python_dir.mkdir(parents=True)
    started = time.monotonic()
    pip_install(requirements, python_dir)
    untrimmed = tree_size(python_dir)
    saved = trim(python_dir, key)
    size = tree_size(python_dir)
    print(
        f"built {key:<12} {size / MIB:8.1f} MiB "
        f"(untrimmed {untrimmed / MIB:.1f} MiB, trimmed {saved / MIB:.1f} MiB) "
        f"in {time.monotonic() - started:.0f} s"
    )
    return Sized(key, build_dir / key, size)


def _copy_code(root: Path, target: Path, *, domain: bool = False) -> None:
    shutil.rmtree(target, ignore_errors=True)
    for rel, path in _tree(root, domain=domain):
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / rel)


def build_domain(build_dir: Path, sources: Sources | None = None) -> Sized:
    """``<build_dir>/domain/python/flywheel``: the domain package without the toolkit."""
    sources = sources or Sources.located()
    out = build_dir / "domain"
    _copy_code(sources.domain, out / "python" / "flywheel", domain=True)
    size = tree_size(out)
    print(
        f"built {'domain':<12} {size / MIB:8.1f} MiB (copy of the flywheel package "
        f"without {', '.join(DOMAIN_EXCLUDES)})"
    )
    return Sized("domain", out, size)


def stage_image_code(image: str, build_dir: Path, sources: Sources) -> Path:
    """Put the Dockerfile and the code into ``<build_dir>/<image>`` (next to ``python/``)."""
    context = build_dir / image
    context.mkdir(parents=True, exist_ok=True)
    shutil.copy2(sources.dockerfile(image), context / "Dockerfile")
    _copy_code(sources.domain, context / "flywheel", domain=True)
    _copy_code(sources.functions, context / "functions")
    return context


def measure(key: str, build_dir: Path) -> Sized:
    out = build_dir / key
    if not (out / "python").is_dir():
        raise AssetsError(f"{out}/python is missing: build without --check-only")
    return Sized(key, out, tree_size(out / "python" if key in IMAGES else out))


def report(
    layers: dict[str, Sized], images: dict[str, Sized], functions_dir: Path
) -> tuple[list[dict[str, Any]], bool]:
    """Print every function with its layers against the limit; return (rows, all_ok)."""
    code = tree_size(functions_dir, skip_dirs=CODE_EXCLUDES)
    domain = layers["domain"].bytes
    rows: list[dict[str, Any]] = []
    ok = True
    header = f"{'function':<34} {'package':<7} {'layers / image':<28} {'unzipped':>10} {'limit':>8}"
    print()
    print(header)
    print("-" * len(header))
    for spec in FUNCTIONS.values():
        if spec.packaging == "zip":
            total = code + sum(layers[k].bytes for k in spec.layers)
            limit = ZIP_UNZIPPED_LIMIT_BYTES
            parts = "+".join(spec.layers)
        else:
            assert spec.image is not None
            total = images[spec.image].bytes + domain + code
            limit = IMAGE_LIMIT_BYTES
            parts = f"image:{spec.image} (+base image)"
        fits = total <= limit
        ok &= fits
        name = f"{spec.key}{' (per model)' if spec.per_model else ''}"
        print(
            f"{name:<34} {spec.packaging:<7} {parts:<28} {total / MIB:8.1f} MiB "
            f"{limit / MIB:6.0f} MiB {'ok' if fits else 'OVER'}"
        )
        rows.append(
            {
                "function": spec.key,
                "packaging": spec.packaging,
                "layers": list(spec.layers) if spec.packaging == "zip" else [spec.image],
                "bytes": total,
                "limit_bytes": limit,
                "fits": fits,
            }
        )
    print()
    print(
        f"code asset functions/: {code / MIB:.2f} MiB; "
        + ", ".join(f"layer {k}: {v.bytes / MIB:.1f} MiB" for k, v in layers.items())
    )
    for key, image in images.items():
        as_zip = image.bytes + domain + code
        verdict = "does not fit" if as_zip > ZIP_UNZIPPED_LIMIT_BYTES else "would fit"
        print(
            f"image {key}: dependencies {image.bytes / MIB:.1f} MiB; as a zip function "
            f"(+domain+code) {as_zip / MIB:.1f} MiB, which {verdict} in "
            f"{ZIP_UNZIPPED_LIMIT_BYTES / MIB:.0f} MiB"
        )
    return rows, ok


def _pip_step(
    key: str, requirements: Path, build_dir: Path, built: dict[str, str], *, force: bool
) -> Sized:
    """Install ``key``'s requirements unless the same ones are already built there."""
    digest = _sha256(requirements)
    if not force and built.get(key) == digest and (build_dir / key / "python").is_dir():
        sized = measure(key, build_dir)
        print(f"kept  {key:<12} {sized.bytes / MIB:8.1f} MiB (requirements unchanged)")
        return sized
    built.pop(key, None)
    sized = build_pip(key, requirements, build_dir)
    built[key] = digest
    return sized


def build(
    build_dir: Path, sources: Sources, *, skip_image: bool = False, force: bool = False
) -> tuple[dict[str, Sized], dict[str, Sized]]:
    """Build every layer and (unless ``skip_image``) every image context; write the manifest.

    pip runs only for requirements that changed since the last build (or with ``force``);
    the code copies are made every time.
    """
    build_dir.mkdir(parents=True, exist_ok=True)
    built: dict[str, str] = dict(read_manifest(build_dir).get("requirements_sha256", {}))
    layers: dict[str, Sized] = {}
    images: dict[str, Sized] = {}
    for key, layer in LAYERS.items():
        if layer.requirements is None:
            layers[key] = build_domain(build_dir, sources)
        else:
            layers[key] = _pip_step(key, sources.requirements(key), build_dir, built, force=force)
    for key in IMAGES:
        if skip_image:
            built.pop(key, None)
            continue
        images[key] = _pip_step(key, sources.requirements(key), build_dir, built, force=force)
        stage_image_code(key, build_dir, sources)
    manifest = {
        "format": MANIFEST_FORMAT,
        "flywheel_version": _version(),
        "code_sha256": code_digest(sources),
        "requirements_sha256": built,
    }
    (build_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return layers, images


def _version() -> str:
    try:
        return metadata.version("flywheel-mlops")
    except metadata.PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """The command line; exit status 1 when a function is over its size limit."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument(
        "--out", type=Path, help=f"where to build (default: ${ASSETS_DIR_ENV}, see the docs)"
    )
    parser.add_argument("--check-only", action="store_true", help="measure, do not build")
    parser.add_argument("--skip-image", action="store_true", help="layers only (not deployable)")
    parser.add_argument("--force", action="store_true", help="run pip even if up to date")
    parser.add_argument("--json", type=Path, help="also write the size report as JSON here")
    args = parser.parse_args(argv)
    sources = Sources.located()
    build_dir: Path = args.out or default_build_dir(sources)
    print(f"building into {build_dir}")
    if args.check_only:
        layers = {key: measure(key, build_dir) for key in LAYERS}
        images = {key: measure(key, build_dir) for key in IMAGES}
    else:
        layers, images = build(build_dir, sources, skip_image=args.skip_image, force=args.force)
    if not images:
        print("image sizes not measured (--skip-image)")
        images = {k: Sized(k, build_dir / k, 0) for k in IMAGES}
    rows, ok = report(layers, images, sources.functions)
    if args.json:
        args.json.write_text(json.dumps({"functions": rows}, indent=2) + "\n")
    if not ok:
        print("FAILED: at least one function is over its size limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
