"""A local Keycloak server (a real OpenID Connect provider) for the identity tests.

Its server distribution comes from Maven Central (`keycloak-pom.xml`, fetched with `mvn -C`, so a
download whose checksum does not match fails) and is unpacked and built once (`kc.sh build`, the
Quarkus augmentation) into `<state>/keycloak/`. Starting a server from nothing costs most of its
time creating the database schema and importing the realms, so that too is done once, for each
set of realm files: a first server imports them (`--import-realm`), is stopped, and its H2
database file is kept as a template. Every server after that starts on a copy of the template in
a folder of its own (its `data/`), so servers never share state and may run side by side; it is
the realms exactly as the files say, whatever an earlier server did to its copy.

A machine's very first server for a set of realm files (CI's, on a fresh machine: its only one)
imports them itself and serves, with no template made: a template costs a second start, which
pays only from the next session on. The next session, finding it has been done once here, makes
the template.

The template's server also leaves, as it exits, a class-data archive of the classes it loaded
(`-XX:ArchiveClassesAtExit`, kept beside the template): every server after it maps them instead of
loading, verifying and linking them one by one from the jars, which is most of a start's time
(about 25 s to about 15 s on a busy 2-core machine). The archive changes only how fast classes
load; if the JVM finds it unusable it says so in the log and loads them from the jars as before.
(Its log's first lines, "[error][cds] Mismatched values for property jdk.module...", are about the
JDK's own base archive, dumped without kc.sh's `--add-opens`: the JVM maps ours all the same.)

Keycloak 26 needs Java 21 or later: `JAVA_HOME` if it is one, else the newest JDK under
/usr/lib/jvm.
"""

import argparse
import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.resources import as_file
from pathlib import Path

import httpx

from infra.local.errors import InfraError
from infra.local.processes import require_program, tail, tail_of_file
from infra.local.state import StateLayout, recipe, state_layout

Progress = Callable[[str], None]

MINIMUM_JAVA = 21
JVM_FOLDER = Path("/usr/lib/jvm")
HOST = "127.0.0.1"
# The temporary administrator of the `master` realm (a local, throwaway server: never a real one).
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "nearhome-local-admin"  # noqa: S105 - a local test server's, on 127.0.0.1 only

# Build-time options, fixed by `kc.sh build` (changing them builds again): the development
# database (H2 in a file), no health or metrics endpoints (so no management port to collide on).
BUILD_OPTIONS = ("--db=dev-file", "--health-enabled=false", "--metrics-enabled=false")
HEAP = "-Xms64m -Xmx512m"
# C1 only: most of a start is class loading and one-off code, which C2 would compile for nothing.
JVM_EXTRA = "-XX:TieredStopAtLevel=1"

START_TIMEOUT_S = 300.0
# A first start creates the schema and imports the realms: minutes on a busy 2-core machine.
TEMPLATE_TIMEOUT_S = 900.0
STOP_TIMEOUT_S = 30.0
# The first server writes its class-data archive (over 100 MB) as it exits: seconds, more when busy.
ARCHIVING_STOP_TIMEOUT_S = 180.0
_MAVEN_TIMEOUT_S = 900.0
_BUILD_TIMEOUT_S = 600.0
_POLL_S = 0.25
_PROGRESS_EVERY_S = 10.0
_LOG_LINES = 25
_READY_MARKER = ".nearhome-ready"
_CLASS_ARCHIVE = "classes.jsa"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_TEMPLATES_KEPT = 3
_RUN_KEPT_S = 24 * 3600.0


class KeycloakError(InfraError):
    """Keycloak could not be fetched, built, started or stopped."""


def _quiet(_message: str) -> None:
    pass


# --- Java -----------------------------------------------------------------------------------------


def java_major(version: str) -> int | None:
    """The feature release of a `JAVA_VERSION`: "25.0.3" is 25, "1.8.0_402" is 8."""
    found = re.match(r"(\d+)(?:\.(\d+))?", version.strip().strip('"'))
    if found is None:
        return None
    major = int(found.group(1))
    if major == 1 and found.group(2) is not None:
        return int(found.group(2))
    return major


def _release_version(java_home: Path) -> int | None:
    """The major version a JDK's or JRE's `release` file states, if it has one."""
    try:
        text = (java_home / "release").read_text(errors="replace")
    except OSError:
        return None
    found = re.search(r'^JAVA_VERSION="?([^"\n]+)"?', text, re.MULTILINE)
    return None if found is None else java_major(found.group(1))


def find_java_home(minimum: int = MINIMUM_JAVA) -> Path:
    """`JAVA_HOME` if it is Java `minimum` or later, else the newest such JDK in /usr/lib/jvm."""
    configured = os.environ.get("JAVA_HOME")
    seen: list[str] = []
    if configured:
        home = Path(configured)
        version = _release_version(home)
        if version is not None and version >= minimum and (home / "bin" / "java").is_file():
            return home
        seen.append(f"JAVA_HOME={configured} (Java {version or 'unknown'})")
    candidates: list[tuple[int, Path]] = []
    if JVM_FOLDER.is_dir():
        for home in sorted(JVM_FOLDER.iterdir()):
            version = _release_version(home)
            if version is None or not (home / "bin" / "java").is_file():
                continue
            seen.append(f"{home} (Java {version})")
            if version >= minimum:
                candidates.append((version, home))
    if candidates:
        return max(candidates)[1]
    found = "; found: " + ", ".join(seen) if seen else f"; none found in {JVM_FOLDER}"
    raise KeycloakError(
        f"Keycloak needs Java {minimum} or later{found}. Install one (apt-get install "
        f"openjdk-{minimum}-jdk-headless, or a Temurin JDK 21 or 25) and set JAVA_HOME to it"
    )


# --- the distribution -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeycloakPaths:
    """Where Keycloak lives in the state folder."""

    root: Path

    @classmethod
    def of(cls, layout: StateLayout) -> "KeycloakPaths":
        return cls(layout.root / "keycloak")

    @property
    def lock_file(self) -> Path:
        return self.root / "keycloak.lock"

    @property
    def distribution(self) -> Path:
        return self.root / "dist"

    @property
    def templates(self) -> Path:
        return self.root / "templates"

    @property
    def runs(self) -> Path:
        return self.root / "runs"


@contextlib.contextmanager
def _exclusive(paths: KeycloakPaths, progress: Progress) -> Iterator[None]:
    """One fetch, build or template at a time, across processes (two test sessions at once)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with paths.lock_file.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("waiting for another process preparing Keycloak…")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _distribution_key() -> str:
    digest = hashlib.sha256(recipe("keycloak-pom.xml").read_bytes())
    digest.update("\0".join(BUILD_OPTIONS).encode())
    return digest.hexdigest()


def _server_home(distribution: Path) -> Path:
    homes = [path for path in distribution.glob("keycloak-*") if (path / "bin" / "kc.sh").is_file()]
    if len(homes) != 1:
        raise KeycloakError(f"{distribution} holds no single Keycloak server ({homes})")
    return homes[0]


def ensure_distribution(paths: KeycloakPaths, java_home: Path, progress: Progress) -> Path:
    """The built Keycloak server's home folder, fetched, unpacked and built first if need be."""
    wanted = _distribution_key()
    marker = paths.distribution / _READY_MARKER
    if marker.is_file() and marker.read_text().strip() == wanted:
        return _server_home(paths.distribution)
    partial = paths.root / "dist.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    _fetch(partial / "download", progress)
    archives = list((partial / "download").glob("keycloak-quarkus-dist-*.zip"))
    if len(archives) != 1:
        raise KeycloakError(f"Maven left no single distribution zip in {partial}: {archives}")
    progress(f"unpacking {archives[0].name}…")
    _unpack(archives[0], partial)
    shutil.rmtree(partial / "download")
    home = _server_home(partial)
    progress("building the Keycloak server (kc.sh build, first run only; a minute or two)…")
    _run(
        [str(home / "bin" / "kc.sh"), "build", *BUILD_OPTIONS],
        action="building Keycloak",
        timeout_s=_BUILD_TIMEOUT_S,
        env=_environment(java_home),
    )
    (partial / _READY_MARKER).write_text(f"{wanted}\n")
    shutil.rmtree(paths.distribution, ignore_errors=True)
    partial.rename(paths.distribution)
    return _server_home(paths.distribution)


def _fetch(folder: Path, progress: Progress) -> None:
    progress("fetching the Keycloak server from Maven Central (first run only)…")
    mvn = require_program("mvn", "install Maven 3 (apt-get install maven)")
    with as_file(recipe("keycloak-pom.xml")) as pom:
        _run(
            [
                mvn,
                "--batch-mode",
                "--quiet",
                "--strict-checksums",
                "--file",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={folder}",
                "-DincludeTypes=zip",
            ],
            action="fetching Keycloak with Maven",
            timeout_s=_MAVEN_TIMEOUT_S,
        )


def _unpack(archive: Path, into: Path) -> None:
    """Unpack `archive` (each member's CRC is checked), keeping the members' Unix permissions."""
    with zipfile.ZipFile(archive) as zipped:
        broken = zipped.testzip()
        if broken is not None:
            raise KeycloakError(f"{archive} is damaged: {broken} fails its CRC check")
        root = into.resolve()
        for member in zipped.infolist():
            target = (into / member.filename).resolve()
            if not target.is_relative_to(root):
                raise KeycloakError(f"{archive} names a path outside its folder: {member.filename}")
            zipped.extract(member, into)
            mode = (member.external_attr >> 16) & 0o777
            if mode and not member.is_dir():
                target.chmod(mode)


def _run(
    argv: Sequence[str], *, action: str, timeout_s: float, env: dict[str, str] | None = None
) -> None:
    try:
        done = subprocess.run(  # noqa: S603 - our own arguments
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise KeycloakError(f"{action} did not finish within {timeout_s:.0f} s") from None
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")
        raise KeycloakError(f"{action} failed (exit code {done.returncode}):\n{tail(output)}")


def _environment(java_home: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "JAVA_HOME": str(java_home),
        "PATH": f"{java_home / 'bin'}:{os.environ.get('PATH', '')}",
        "JAVA_OPTS_KC_HEAP": HEAP,
        "JAVA_OPTS_APPEND": JVM_EXTRA,
        **extra,
    }


# --- a server -------------------------------------------------------------------------------------


@dataclass
class KeycloakServer:
    """A Keycloak server running from `home` (a folder of its own) on 127.0.0.1:`port`."""

    home: Path
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    realms: tuple[str, ...]
    started_in_s: float = 0.0
    launched_at: float = field(default_factory=time.monotonic)
    # How long `wait_until_ready` waits by default: longer for a server that imports the realms.
    start_timeout_s: float = START_TIMEOUT_S
    admin_username: str = ADMIN_USERNAME
    admin_password: str = ADMIN_PASSWORD
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def issuer(self, realm: str) -> str:
        """The realm's issuer: its tokens' `iss`, whichever host name the caller used."""
        return f"{self.url}/realms/{realm}"

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM to the server's process group (kc.sh and its JVM); SIGKILL if it lingers
        longer than `timeout_s`."""
        if self._stopped:
            return
        self._stopped = True
        _stop_group(self.process, timeout_s)

    def last_words(self) -> str:
        return tail_of_file(self.log, _LOG_LINES)

    def wait_until_ready(self, progress: Progress = _quiet, timeout_s: float | None = None) -> None:
        """Return once every realm's openid-configuration answers (at once if it did before);
        `KeycloakError`, the server stopped, if it exits first or takes longer than `timeout_s`
        (`start_timeout_s` unless told) from its launch."""
        if self.started_in_s:
            return
        timeout_s = self.start_timeout_s if timeout_s is None else timeout_s
        try:
            _wait_until_ready(self, progress, timeout_s)
        except BaseException:
            self.stop()
            raise
        progress(f"Keycloak answers at {self.url}, {self.started_in_s:.1f} s after its launch")


def _stop_group(process: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _realm_names(realm_files: Sequence[Path]) -> tuple[str, ...]:
    names = []
    for path in realm_files:
        document = json.loads(path.read_text("utf-8"))
        if not isinstance(document, dict) or not isinstance(document.get("realm"), str):
            raise KeycloakError(f"{path} is not a realm (no `realm` name)")
        names.append(document["realm"])
    return tuple(names)


def _template_key(distribution_key: str, java_home: Path, realm_files: Sequence[Path]) -> str:
    """The template's name: its class-data archive is only good for the JVM that wrote it."""
    digest = hashlib.sha256(distribution_key.encode())
    digest.update(b"\0" + str(java_home.resolve()).encode())
    with contextlib.suppress(OSError):
        digest.update(b"\0" + (java_home / "release").read_bytes())
    for path in realm_files:
        digest.update(b"\0" + path.read_bytes())
    return digest.hexdigest()[:24]


def _prune_runs(runs: Path) -> None:
    """Remove the folders of servers gone for a day (a failed start keeps its log meanwhile)."""
    if not runs.is_dir():
        return
    for home in runs.iterdir():
        with contextlib.suppress(OSError):
            if time.time() - home.stat().st_mtime > _RUN_KEPT_S and not _in_use(home):
                shutil.rmtree(home, ignore_errors=True)


def _in_use(home: Path) -> bool:
    log = home / "keycloak.log"
    return log.is_file() and time.time() - log.stat().st_mtime < _RUN_KEPT_S


def _new_home(server: Path, runs: Path) -> Path:
    """A folder that is a Keycloak home of its own: a copy of `bin` (kc.sh finds its home from
    where it lies), the built server's `lib`, `conf`, `providers` and `themes` linked, an empty
    `data`."""
    runs.mkdir(parents=True, exist_ok=True)
    _prune_runs(runs)
    home = Path(tempfile.mkdtemp(prefix="keycloak-", dir=runs))
    shutil.copytree(server / "bin", home / "bin", symlinks=True)
    for name in ("lib", "conf", "providers", "themes"):
        (home / name).symlink_to(server / name)
    (home / "data" / "h2").mkdir(parents=True)
    return home


def _die_with_parent() -> None:
    """In the child, before kc.sh runs: SIGTERM it (which it passes on to its JVM) when the thread
    that started it ends, so that a test run killed outright leaves no server behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _launch(
    home: Path, java_home: Path, port: int, *, import_realms: bool, jvm_options: str = ""
) -> subprocess.Popen[bytes]:
    argv = [
        str(home / "bin" / "kc.sh"),
        "start",
        "--optimized",
        "--cache=local",
        "--http-enabled=true",
        f"--http-host={HOST}",
        f"--http-port={port}",
        # Every URL (the issuer above all) names 127.0.0.1, whichever host a request used.
        f"--hostname=http://{HOST}:{port}",
        "--log=console",
    ]
    if import_realms:
        argv.append("--import-realm")
    environment = _environment(
        java_home,
        KC_BOOTSTRAP_ADMIN_USERNAME=ADMIN_USERNAME,
        KC_BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
    )
    if jvm_options:
        environment["JAVA_OPTS_APPEND"] = f"{JVM_EXTRA} {jvm_options}"
    log = (home / "keycloak.log").open("ab")
    try:
        return subprocess.Popen(  # noqa: S603 - our own arguments
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=home,
            env=environment,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - prctl only, no locks taken
        )
    finally:
        log.close()


def _wait_until_ready(server: KeycloakServer, progress: Progress, timeout_s: float) -> None:
    """Return once every realm's openid-configuration answers; `KeycloakError` if the server
    exits first, or takes longer than `timeout_s`."""
    started = server.launched_at
    said = time.monotonic()
    pending = list(server.realms)
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        while pending:
            realm = pending[0]
            with contextlib.suppress(httpx.HTTPError):
                answer = client.get(f"{server.issuer(realm)}/.well-known/openid-configuration")
                if answer.status_code == 200:
                    pending.pop(0)
                    continue
            now = time.monotonic()
            if server.process.poll() is not None:
                raise KeycloakError(
                    f"Keycloak exited while starting (exit code {server.process.returncode}); "
                    f"its log ({server.log}) ends:\n{server.last_words()}"
                )
            if now - started > timeout_s:
                server.stop()
                raise KeycloakError(
                    f"Keycloak did not answer at {server.url} within {timeout_s:.0f} s; its log "
                    f"({server.log}) ends:\n{server.last_words()}"
                )
            if now - said >= _PROGRESS_EVERY_S:
                said = now
                progress(f"waiting for Keycloak at {server.url} ({now - started:.0f} s)…")
            time.sleep(_POLL_S)
    server.started_in_s = time.monotonic() - started


def _template_path(paths: KeycloakPaths, java_home: Path, realm_files: Sequence[Path]) -> Path:
    key = _template_key(_distribution_key(), java_home, realm_files)
    return paths.templates / key / "keycloakdb.mv.db"


def _imported_once(paths: KeycloakPaths, template: Path) -> Path:
    """A file saying that a server here has imported the realms of `template` (its key) itself."""
    return paths.root / "imported-once" / template.parent.name


def _with_realm_files(home: Path, realm_files: Sequence[Path]) -> Path:
    """`home`, the realm files copied into its `data/import` (what `--import-realm` reads)."""
    for path in realm_files:
        (home / "data" / "import").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, home / "data" / "import" / path.name)
    return home


def _template(  # noqa: PLR0913
    paths: KeycloakPaths,
    server_home: Path,
    java_home: Path,
    realm_files: Sequence[Path],
    *,
    progress: Progress,
    timeout_s: float,
) -> Path:
    """The H2 database file of a server that has imported `realm_files` (made once), and beside
    it the class-data archive that server wrote as it exited (`_CLASS_ARCHIVE`)."""
    template = _template_path(paths, java_home, realm_files)
    key = template.parent.name
    if template.is_file():
        return template
    progress("importing the realms into a template database (once for these realm files)…")
    home = _with_realm_files(_new_home(server_home, paths.runs), realm_files)
    port = free_port()
    archive = home / _CLASS_ARCHIVE
    server = KeycloakServer(
        home,
        port,
        _launch(
            home,
            java_home,
            port,
            import_realms=True,
            jvm_options=f"-XX:ArchiveClassesAtExit={archive}",
        ),
        home / "keycloak.log",
        _realm_names(realm_files),
    )
    try:
        _wait_until_ready(server, progress, timeout_s)
    finally:
        progress("stopping the importing server (it writes its class-data archive)…")
        server.stop(ARCHIVING_STOP_TIMEOUT_S)
    if server.process.returncode not in (0, 143, -signal.SIGTERM):
        raise KeycloakError(
            f"Keycloak did not stop cleanly after importing the realms "
            f"(exit code {server.process.returncode}):\n{server.last_words()}"
        )
    paths.templates.mkdir(parents=True, exist_ok=True)
    # Other sets of realm files' templates (or older versions'): the few most recent are kept.
    others = sorted(paths.templates.iterdir(), key=lambda path: path.stat().st_mtime)
    for stale in others[:-_TEMPLATES_KEPT]:
        shutil.rmtree(stale, ignore_errors=True)
    partial = template.parent.with_name(f"{key}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    shutil.copyfile(home / "data" / "h2" / "keycloakdb.mv.db", partial / template.name)
    if archive.is_file():  # else (the JVM could not write one) servers load their classes as before
        shutil.copyfile(archive, partial / _CLASS_ARCHIVE)
    partial.rename(template.parent)
    shutil.rmtree(home, ignore_errors=True)
    return template


def launch_keycloak(
    realm_files: Sequence[Path],
    *,
    port: int | None = None,
    layout: StateLayout | None = None,
    progress: Progress = _quiet,
    timeout_s: float = START_TIMEOUT_S,
) -> KeycloakServer:
    """Start a Keycloak server with exactly the realms of `realm_files` on 127.0.0.1:`port` (a
    free one if None), without waiting for it (`KeycloakServer.wait_until_ready`): whatever needs
    only its address can start meanwhile. The first call fetches and builds Keycloak, and waits for
    that; its server imports the realms itself as it starts. The next call makes the template
    (importing the realms once more), and waits for that."""
    paths = KeycloakPaths.of(layout or state_layout())
    java_home = find_java_home()
    realm_files = [path.resolve() for path in realm_files]
    with _exclusive(paths, progress):
        server_home = ensure_distribution(paths, java_home, progress)
        template = _template_path(paths, java_home, realm_files)
        imported_once = _imported_once(paths, template)
        first = not template.is_file() and not imported_once.is_file()
        if first:
            imported_once.parent.mkdir(parents=True, exist_ok=True)
            imported_once.touch()
            home = _with_realm_files(_new_home(server_home, paths.runs), realm_files)
        else:
            template = _template(
                paths,
                server_home,
                java_home,
                realm_files,
                progress=progress,
                timeout_s=max(timeout_s, TEMPLATE_TIMEOUT_S),
            )
            home = _new_home(server_home, paths.runs)
            shutil.copyfile(template, home / "data" / "h2" / template.name)
    archive = template.parent / _CLASS_ARCHIVE
    port = port or free_port()
    progress(
        f"starting Keycloak on {HOST}:{port} (Java {_release_version(java_home)})"
        + (", importing the realms (the first time here for these realm files)…" if first else "…")
    )
    return KeycloakServer(
        home,
        port,
        _launch(
            home,
            java_home,
            port,
            import_realms=first,
            jvm_options=f"-XX:SharedArchiveFile={archive}" if archive.is_file() else "",
        ),
        home / "keycloak.log",
        _realm_names(realm_files),
        launched_at=time.monotonic(),
        start_timeout_s=max(timeout_s, TEMPLATE_TIMEOUT_S) if first else timeout_s,
    )


def start_keycloak(
    realm_files: Sequence[Path],
    *,
    port: int | None = None,
    layout: StateLayout | None = None,
    progress: Progress = _quiet,
    timeout_s: float = START_TIMEOUT_S,
) -> KeycloakServer:
    """`launch_keycloak`, and wait until every realm answers."""
    server = launch_keycloak(
        realm_files, port=port, layout=layout, progress=progress, timeout_s=timeout_s
    )
    server.wait_until_ready(progress)
    return server


@contextlib.contextmanager
def running_keycloak(
    realm_files: Sequence[Path],
    *,
    port: int | None = None,
    layout: StateLayout | None = None,
    progress: Progress = _quiet,
    keep_home: bool = False,
) -> Iterator[KeycloakServer]:
    """`start_keycloak`, stopped (and its folder removed, unless `keep_home`) when the block
    ends."""
    server = start_keycloak(realm_files, port=port, layout=layout, progress=progress)
    try:
        yield server
    finally:
        server.stop()
        if not keep_home:
            shutil.rmtree(server.home, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m infra.local.keycloak [--port N] [realm files]`: a server until Ctrl-C, with the
    realm of deploy/keycloak/nearhome-realm.json unless other realm files are named."""
    parser = argparse.ArgumentParser(
        prog="python -m infra.local.keycloak", description=main.__doc__
    )
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("realms", nargs="*", type=Path)
    options = parser.parse_args(argv)
    realm_files = options.realms or [Path("deploy/keycloak/nearhome-realm.json")]

    def say(message: str) -> None:
        print(message, flush=True)  # noqa: T201

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on the way out
    try:
        with running_keycloak(realm_files, port=options.port, progress=say) as server:
            for realm in server.realms:
                say(f"realm {realm}: issuer {server.issuer(realm)}")
            say(f"admin console: {server.url}/admin ({server.admin_username}); Ctrl-C stops it")
            with contextlib.suppress(KeyboardInterrupt):
                server.process.wait()
    except KeycloakError as error:
        say(str(error))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
