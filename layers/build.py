#!/usr/bin/env python3
"""Build Flywheel's Lambda layers without Docker, then check every function against the limit.

For each layer in ``infra.catalog.LAYERS`` this installs the pinned, complete
requirements with pip for Lambda's platform (CPython 3.12, manylinux x86_64 wheels
only, ``--no-deps``) into ``layers/build/<layer>/python``; the ``domain`` layer is a
copy of ``shared/flywheel``. The training image's site-packages are built the same way
into ``layers/build/training/python`` (the Dockerfile only copies them).

Then it trims what Lambda never imports (``tests`` folders, ``__pycache__``, C headers
and Cython sources, type stubs, a few tool subpackages listed in ``PRUNE``), never
touching a shared object (``.so`` files are neither stripped nor removed), and prints
every function with its layers against Lambda's 250 MB unzipped limit (10 GB for
images). The exit status is 1 if anything is over.

Usage::

    .venv/bin/python layers/build.py               # build everything, then check
    .venv/bin/python layers/build.py --check-only  # measure an existing build
    .venv/bin/python layers/build.py --skip-image  # layers only

Needs network access to PyPI (or a mirror configured for pip); no Docker.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infra.catalog import (  # noqa: E402 - the repo root must be importable first
    DOMAIN_EXCLUDES,
    DOMAIN_PACKAGE_DIR,
    FUNCTIONS,
    FUNCTIONS_DIR,
    IMAGE_LIMIT_BYTES,
    IMAGES,
    LAYERS,
    PIP_PLATFORMS,
    PYTHON_VERSION,
    ZIP_UNZIPPED_LIMIT_BYTES,
)

BUILD_DIR = ROOT / "layers" / "build"
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
#: Code asset filters: the same ones infra/assets.py applies to ``functions/``.
CODE_EXCLUDES = frozenset({"__pycache__", "tests"})


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
            if skip_dirs and name.endswith((".pyc", ".pyo")):
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


def build_pip(key: str, requirements: str) -> Sized:
    out = BUILD_DIR / key
    shutil.rmtree(out, ignore_errors=True)
    python_dir = out / "python"
    python_dir.mkdir(parents=True)
    started = time.monotonic()
    pip_install(ROOT / requirements, python_dir)
    untrimmed = tree_size(python_dir)
    saved = trim(python_dir, key)
    size = tree_size(python_dir)
    print(
        f"built {key:<12} {size / MIB:8.1f} MiB "
        f"(untrimmed {untrimmed / MIB:.1f} MiB, trimmed {saved / MIB:.1f} MiB) "
        f"in {time.monotonic() - started:.0f} s"
    )
    return Sized(key, out, size)


def build_domain(build_dir: Path = BUILD_DIR) -> Sized:
    """Copy ``shared/flywheel`` without the developer toolkit (``DOMAIN_EXCLUDES``)."""
    out = build_dir / "domain"
    shutil.rmtree(out, ignore_errors=True)
    source = ROOT / DOMAIN_PACKAGE_DIR
    skipped = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")

    def ignore(directory: str, names: list[str]) -> set[str]:
        excluded = set(DOMAIN_EXCLUDES) if Path(directory) == source else set()
        return set(skipped(directory, names)) | (excluded & set(names))

    shutil.copytree(source, out / "python" / "flywheel", ignore=ignore)
    size = tree_size(out)
    print(
        f"built {'domain':<12} {size / MIB:8.1f} MiB (copy of {DOMAIN_PACKAGE_DIR} "
        f"without {', '.join(DOMAIN_EXCLUDES)})"
    )
    return Sized("domain", out, size)


def measure(key: str) -> Sized:
    out = BUILD_DIR / key
    if not (out / "python").is_dir():
        raise SystemExit(f"{out}/python is missing: run layers/build.py without --check-only")
    return Sized(key, out, tree_size(out))


def report(layers: dict[str, Sized], images: dict[str, Sized]) -> tuple[list[dict], bool]:
    """Print every function with its layers against the limit; return (rows, all_ok)."""
    code_dir = ROOT / FUNCTIONS_DIR
    code = tree_size(code_dir, skip_dirs=CODE_EXCLUDES)
    if not code_dir.is_dir():
        print(f"warning: {FUNCTIONS_DIR}/ does not exist yet; counting its size as 0")
    domain = layers["domain"].bytes
    rows: list[dict] = []
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
        f"code asset {FUNCTIONS_DIR}/: {code / MIB:.2f} MiB; "
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check-only", action="store_true", help="measure, do not build")
    parser.add_argument("--skip-image", action="store_true", help="skip the training image deps")
    parser.add_argument("--json", type=Path, help="also write the size report as JSON here")
    args = parser.parse_args(argv)

    layers: dict[str, Sized] = {}
    images: dict[str, Sized] = {}
    for key, layer in LAYERS.items():
        if args.check_only:
            layers[key] = measure(key)
        elif layer.requirements is None:
            layers[key] = build_domain()
        else:
            layers[key] = build_pip(key, layer.requirements)
    for key, image in IMAGES.items():
        if args.skip_image:
            if (BUILD_DIR / key / "python").is_dir():
                images[key] = measure(key)
            continue
        images[key] = measure(key) if args.check_only else build_pip(key, image.requirements)
    if not images:
        print("image sizes not measured (--skip-image and no previous build)")
        images = {k: Sized(k, BUILD_DIR / k, 0) for k in IMAGES}

    rows, ok = report(layers, images)
    if args.json:
        args.json.write_text(json.dumps({"functions": rows}, indent=2) + "\n")
    if not ok:
        print("FAILED: at least one function is over its size limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
