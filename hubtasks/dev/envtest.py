"""Test-only tools: Debian packages (age, etcd) and the envtest control-plane binaries.

The binaries come from `$KUBEBUILDER_ASSETS`, else `shared/envtest/*.gz` beside the repo
(sha256-checked, unpacked into the cache), else they are built from Debian's source package
(`scripts/build-envtest.sh`, root) and cached.
"""

from __future__ import annotations

import gzip
import os
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from hubtasks import proc
from hubtasks.binaries import cache_dir, which
from hubtasks.dev.install import install_dir, sha256_of
from hubtasks.files import FileLock
from hubtasks.model import HubtasksError

Env = Mapping[str, str]
REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_ENVTEST = REPO_ROOT / "scripts" / "build-envtest.sh"
APT_TIMEOUT = 1800.0
BUILD_TIMEOUT = 3 * 3600.0
ENVTEST_VERSION = "v1.20.2"
ENVTEST_BINARIES = ("kube-apiserver", "kube-controller-manager")
# Copied from shared/envtest/README.md; pinned here so an edited README cannot vouch for a file.
ENVTEST_SHA256 = {
    "kube-apiserver.gz": "3661381204a8145c37cdb10b842b677a42501557ef08c5d3c7c1ffcdce009bfa",
    "kube-controller-manager.gz": (
        "c84ef1dfd68368496cf4399d9239ec9d5798ee78a7b1222c15030b1626c4285a"
    ),
}

_apt_updated = threading.Event()


def _env(env: Env | None) -> Env:
    return os.environ if env is None else env


def _run(argv: Sequence[str], *, what: str, env: Env, timeout: float = APT_TIMEOUT) -> None:
    proc.checked(proc.run(argv, env=env, timeout=timeout), what)


def apt_install(packages: Sequence[str], *, env: Env | None = None) -> None:
    """Install Debian packages as root, running `apt-get update` once per process first."""
    e = _env(env)
    if os.geteuid() != 0 or not which("apt-get", e):
        raise HubtasksError(f"install them first: sudo apt-get install -y {' '.join(packages)}")
    apt_env = {**e, "DEBIAN_FRONTEND": "noninteractive"}
    wait = ["-o", "DPkg::Lock::Timeout=300"]  # another apt run (or worker) may hold the lock
    with FileLock(cache_dir(e) / "apt.lock"):
        if not _apt_updated.is_set():
            _run(["apt-get", *wait, "update", "-qq"], what="apt-get update", env=apt_env)
            _apt_updated.set()
        argv = ["apt-get", *wait, "install", "-y", "-qq", "--no-install-recommends", *packages]
        _run(argv, what=f"apt-get install {' '.join(packages)}", env=apt_env)


def ensure_age(*, env: Env | None = None) -> Path:
    """`age-keygen` (with `age` beside it), installing Debian's `age` package when missing."""
    if not (which("age-keygen", _env(env)) and which("age", _env(env))):
        apt_install(["age"], env=env)
    found = which("age-keygen", _env(env))
    if not found:
        raise HubtasksError("age-keygen is still not on PATH after installing Debian's `age`")
    return found


def etcd_path(*, env: Env | None = None) -> Path:
    """etcd from $KUBEBUILDER_ASSETS, /usr/bin or PATH, else installed from `etcd-server`."""
    assets = _env(env).get("KUBEBUILDER_ASSETS")
    for candidate in (Path(assets) / "etcd" if assets else None, Path("/usr/bin/etcd")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = which("etcd", _env(env))
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
            actual = sha256_of(source / gz_name)
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
    work = cache_dir(_env(env)) / "envtest" / "build"
    build_env = {**_env(env), "WORK": str(work)}

    def fill(tmp: Path) -> None:
        _run(["bash", str(BUILD_ENVTEST), str(tmp)], what="build envtest", env=build_env,
             timeout=BUILD_TIMEOUT)

    dest.parent.mkdir(parents=True, exist_ok=True)
    return install_dir(dest, fill)


def envtest_assets(*, env: Env | None = None, search: Sequence[Path] = ()) -> Path:
    """A folder with kube-apiserver and kube-controller-manager v1.20.2 (envtest layout)."""
    assets = _env(env).get("KUBEBUILDER_ASSETS")
    if assets and _has_envtest(Path(assets)):
        return Path(assets)
    dest = cache_dir(_env(env)) / "envtest" / ENVTEST_VERSION
    if _has_envtest(dest):
        return dest
    for source in shared_envtest_dirs(search):
        return unpack_envtest(source, dest)
    return build_envtest(dest, env=env)


# ---------------------------------------------------------------- everything


def install_test_tools(*, env: Env | None = None) -> dict[str, Path]:
    """What local clusters and the tests need beyond the deploy tools (may need root)."""
    return {"age-keygen": ensure_age(env=env), "etcd": etcd_path(env=env),
            "envtest": envtest_assets(env=env)}
