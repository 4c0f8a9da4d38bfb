"""Tests for hubtasks.tools: real installs of helm 3/4 and envtest unpacking, plus precedence."""

from __future__ import annotations

import gzip
import os
import subprocess
import threading
from pathlib import Path

import pytest

from hubtasks import tools
from hubtasks.model import HubtasksError

FAKE_HELM = """#!/bin/sh
# A stand-in helm that only answers `helm version --short`.
echo "v3.99.0+gfake"
"""


def clean_env(**overrides: str) -> dict[str, str]:
    """The process environment without hubtasks' own overrides, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if k not in ("HUBTASKS_HELM", "KUBEBUILDER_ASSETS")}
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
    assert tools.cache_dir(env) == Path(expected)


def test_helm_installed_with_right_major(helm_bins: dict[int, Path]) -> None:
    for major, path in helm_bins.items():
        assert path.is_file() and os.access(path, os.X_OK)
        assert tools.helm_major(path) == major


def test_ensure_helm_second_call_is_a_no_op(helm_bins: dict[int, Path]) -> None:
    for major, path in helm_bins.items():
        before = path.stat()
        siblings = sorted(path.parent.parent.iterdir())
        again = tools.ensure_helm(major, env=clean_env(PATH="/nonexistent"))
        assert again == path
        assert (again.stat().st_ino, again.stat().st_mtime_ns) == (
            before.st_ino,
            before.st_mtime_ns,
        )
        assert sorted(path.parent.parent.iterdir()) == siblings


def test_concurrent_installs_into_a_fresh_cache(tmp_path: Path) -> None:
    env = clean_env(HUBTASKS_CACHE=str(tmp_path / "cache"), PATH="/nonexistent")
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(tools.ensure_helm(3, env=env)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and results[0] == results[1]
    assert tools.helm_major(results[0]) == 3
    # Only the finished folder and its lock file remain: no half-written temp folders.
    assert sorted(p.name for p in (tmp_path / "cache" / "tools").iterdir()) == [
        ".helm-v3.17.3.lock",
        "helm-v3.17.3",
    ]


def test_helm_on_path_takes_precedence(tmp_path: Path, helm_bins: dict[int, Path]) -> None:
    fake = write_exe(tmp_path / "bin" / "helm", FAKE_HELM)
    env = clean_env(PATH=str(fake.parent))
    assert tools.helm_path(env=env) == fake
    assert tools.helm_path(3, env=env) == fake
    # A helm of another major on PATH does not hide the cached one.
    assert tools.helm_path(4, env=env) == helm_bins[4]


def test_hubtasks_helm_takes_precedence_over_path(tmp_path: Path) -> None:
    chosen = write_exe(tmp_path / "chosen" / "helm", FAKE_HELM)
    on_path = write_exe(tmp_path / "bin" / "helm", FAKE_HELM)
    env = clean_env(PATH=str(on_path.parent), HUBTASKS_HELM=str(chosen))
    assert tools.helm_path(3, env=env) == chosen


def test_hubtasks_helm_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    env = clean_env(HUBTASKS_HELM=str(tmp_path / "nope"))
    with pytest.raises(HubtasksError, match="HUBTASKS_HELM"):
        tools.helm_path(env=env)


def test_unsupported_helm_major(tmp_path: Path) -> None:
    with pytest.raises(HubtasksError, match="helm 2 is not supported"):
        tools.ensure_helm(2, env=clean_env(PATH=str(tmp_path)))


def test_envtest_assets_found_and_runnable() -> None:
    assets = tools.envtest_assets(env=clean_env())
    for name in tools.ENVTEST_BINARIES:
        out = subprocess.run(
            [str(assets / name), "--version"], capture_output=True, text=True, check=True
        )
        assert "v1.20.2" in out.stdout


def test_unpack_envtest_checks_sha256(tmp_path: Path) -> None:
    source = tmp_path / "shared" / "envtest"
    source.mkdir(parents=True)
    for gz_name in tools.ENVTEST_SHA256:
        (source / gz_name).write_bytes(gzip.compress(b"#!/bin/sh\necho tampered\n"))
    with pytest.raises(HubtasksError, match="sha256"):
        tools.unpack_envtest(source, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dest-")] == []


def test_unpack_envtest_from_shared(tmp_path: Path) -> None:
    source = next(tools.shared_envtest_dirs(), None)
    if source is None:
        pytest.skip("no shared/envtest folder beside the repository")
    dest = tools.unpack_envtest(source, tmp_path / "v1.20.2")
    assert sorted(p.name for p in dest.iterdir()) == sorted(tools.ENVTEST_BINARIES)
    assert all(os.access(dest / name, os.X_OK) for name in tools.ENVTEST_BINARIES)


def test_kubebuilder_assets_take_precedence(tmp_path: Path) -> None:
    for name in (*tools.ENVTEST_BINARIES, "etcd"):
        write_exe(tmp_path / name, "#!/bin/sh\n")
    env = clean_env(KUBEBUILDER_ASSETS=str(tmp_path), HUBTASKS_CACHE=str(tmp_path / "cache"))
    assert tools.envtest_assets(env=env) == tmp_path
    assert tools.etcd_path(env=env) == tmp_path / "etcd"
    assert not (tmp_path / "cache").exists()


def test_sops_runs() -> None:
    out = subprocess.run(
        [str(tools.sops_path()), "--version"], capture_output=True, text=True, check=False
    )
    assert "sops 3." in out.stdout


def test_etcd_and_age_available() -> None:
    etcd = subprocess.run(
        [str(tools.etcd_path()), "--version"], capture_output=True, text=True, check=True
    )
    assert "etcd Version: 3." in etcd.stdout
    keygen = tools.ensure_age()
    assert (keygen.parent / "age").exists() or tools.which("age")
    key = subprocess.run([str(keygen)], capture_output=True, text=True, check=True)
    assert "AGE-SECRET-KEY-" in key.stdout
