"""The local Kafka broker: its jars from Maven Central, its storage, its process."""

import asyncio
import base64
import hashlib
import re
import shutil
import uuid
from collections.abc import Iterable, Sequence
from importlib.resources import as_file
from pathlib import Path
from string import Template

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from infra.local.errors import BrokerError, PortTakenError
from infra.local.processes import (
    cgroup_memory_report,
    exit_status,
    has_exited,
    is_running,
    memory_available_mib,
    read_pid_file,
    require_program,
    run_command,
    start_detached,
    stop_process,
    tail,
    tail_of_file,
    write_pid_file,
)
from infra.local.state import StateLayout, recipe
from infra.local.status import ComponentStatus, Origin, Progress
from services.platform.connections import PLAINTEXT, KafkaSecurity, kafka_setup_error
from services.platform.network import port_accepts

LOCAL_BOOTSTRAP = "127.0.0.1:9092"
_LOCAL_ADDRESSES = frozenset({"127.0.0.1:9092", "localhost:9092"})
_HOST = "127.0.0.1"
_BROKER_PORT = 9092
_CONTROLLER_PORT = _BROKER_PORT + 1

BROKER_START_TIMEOUT_S = 90.0
BROKER_START_ATTEMPTS = 2
BROKER_STOP_TIMEOUT_S = 30.0
_MAVEN_TIMEOUT_S = 900.0
_FORMAT_TIMEOUT_S = 120.0
_PROBE_TIMEOUT_S = 3.0
_RETRY_INTERVAL_S = 0.5

_SINGLE_BROKER_HEAP_MIB = 512

BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"
_JARS_RESOLVED_MARKER = ".resolved-from-pom"
_SERVER_LOG_SCAN_LINES = 400
# The levels in the broker's log4j pattern ("[date] LEVEL message (logger)").
_COMPLAINT = re.compile(r"^\[[^\]]*\] (WARN|ERROR|FATAL) ")


def normalise_bootstrap(bootstrap: str) -> str:
    """`bootstrap` without blanks or empty entries (aiokafka would try to reach an empty host)."""
    return ",".join(address.strip() for address in bootstrap.split(",") if address.strip())


def is_local_bootstrap(bootstrap: str) -> bool:
    """Whether `bootstrap` names the broker `nearhome infra` runs itself."""
    return normalise_bootstrap(bootstrap) in _LOCAL_ADDRESSES


async def ensure_broker(
    bootstrap: str,
    layout: StateLayout,
    progress: Progress,
    *,
    security: KafkaSecurity = PLAINTEXT,
) -> ComponentStatus:
    """Make a broker answer at `bootstrap`, starting the local one if that is where it should be.

    A configured broker is asked as the services connect to it (`security`); the local one is
    always PLAINTEXT."""
    bootstrap = normalise_bootstrap(bootstrap)
    if not is_local_bootstrap(bootstrap):
        if not await broker_answers(bootstrap, security=security):
            cause = await kafka_setup_error(bootstrap, security)
            if cause is not None:
                raise BrokerError(str(cause))
            raise BrokerError(
                f"KAFKA_BOOTSTRAP_SERVERS={bootstrap} does not answer; start that broker, "
                f"or unset KAFKA_BOOTSTRAP_SERVERS to use a local one at {LOCAL_BOOTSTRAP}"
            )
        progress(f"using the configured broker at {bootstrap}")
        return ComponentStatus("broker", bootstrap, up=True, origin=Origin.CONFIGURED)

    pid = recorded_broker_pid(layout)
    if pid is not None:
        progress(f"broker already running (pid {pid})")
        await wait_for_broker(layout, pid, progress)
    elif await broker_answers(LOCAL_BOOTSTRAP):
        progress(f"a broker not started by nearhome infra answers at {LOCAL_BOOTSTRAP}: using it")
        return ComponentStatus("broker", LOCAL_BOOTSTRAP, up=True, origin=Origin.ALREADY_RUNNING)
    else:
        await refuse_taken_ports(
            (
                (_BROKER_PORT, "the local Kafka broker"),
                (_CONTROLLER_PORT, "the local Kafka controller"),
            )
        )
        pid = await start_broker_and_wait(layout, progress)
    return ComponentStatus("broker", LOCAL_BOOTSTRAP, up=True, origin=Origin.STARTED_HERE, pid=pid)


async def broker_status(
    bootstrap: str, layout: StateLayout, *, security: KafkaSecurity = PLAINTEXT
) -> ComponentStatus:
    bootstrap = normalise_bootstrap(bootstrap)
    if not is_local_bootstrap(bootstrap):
        up = await broker_answers(bootstrap, security=security)
        return ComponentStatus("broker", bootstrap, up=up, origin=Origin.CONFIGURED)
    pid = recorded_broker_pid(layout)
    up = await broker_answers(LOCAL_BOOTSTRAP)
    origin = Origin.STARTED_HERE if pid is not None else Origin.ALREADY_RUNNING
    return ComponentStatus("broker", LOCAL_BOOTSTRAP, up=up, origin=origin, pid=pid)


async def start_broker_and_wait(layout: StateLayout, progress: Progress) -> int:
    """Start the local broker and wait until it answers, starting it again if it dies on the way.

    A broker that exits while starting with nothing in its logs was most likely killed from
    outside (the kernel's out-of-memory killer on a busy machine): a second start usually works,
    and one that fails again says why as well as the first did.
    """
    attempt = 1
    while True:
        pid = await start_local_broker(layout, progress)
        try:
            await wait_for_broker(layout, pid, progress)
        except BrokerExitedError as error:
            if attempt >= BROKER_START_ATTEMPTS:
                raise
            attempt += 1
            progress(f"{error.summary}; starting it again (attempt {attempt})")
            continue
        return pid


async def start_local_broker(layout: StateLayout, progress: Progress) -> int:
    """Resolve the jars, format the storage (both only once) and start the broker detached."""
    for folder in (layout.kafka_dir, layout.kafka_data, layout.kafka_logs):
        folder.mkdir(parents=True, exist_ok=True)
    await ensure_kafka_jars(layout, progress)
    write_broker_config(layout)
    await format_storage_once(layout, progress)
    progress("starting the Kafka broker…")
    pid = start_detached(
        _java_command(layout, BROKER_MAIN, str(layout.broker_config)),
        log_path=layout.broker_console_log,
        cwd=layout.kafka_dir,
    )
    write_pid_file(layout.broker_pid_file, pid)
    return pid


async def stop_local_broker(layout: StateLayout) -> int | None:
    """Stop the broker `up` started, if it is running; return its pid, or None if there was none."""
    pid = recorded_broker_pid(layout)
    if pid is not None:
        await stop_process(pid, *_broker_markers(layout), timeout_s=BROKER_STOP_TIMEOUT_S)
    layout.broker_pid_file.unlink(missing_ok=True)
    return pid


def recorded_broker_pid(layout: StateLayout) -> int | None:
    """The pid in the broker's pid file, if that process is still our broker."""
    pid = read_pid_file(layout.broker_pid_file)
    if pid is None or not is_running(pid, *_broker_markers(layout)):
        return None
    return pid


def _broker_markers(layout: StateLayout) -> tuple[str, str]:
    return (BROKER_MAIN, str(layout.broker_config))


async def ensure_kafka_jars(layout: StateLayout, progress: Progress) -> None:
    """Copy Kafka and its dependencies from Maven into the state folder, unless already there.

    The folder records the hash of the pom it came from, so editing the pom (a new Kafka version)
    resolves the jars again instead of mixing two versions on one classpath.
    """
    pom = recipe("pom.xml")
    wanted = hashlib.sha256(pom.read_bytes()).hexdigest()
    marker = layout.kafka_libs / _JARS_RESOLVED_MARKER
    if marker.is_file() and marker.read_text().strip() == wanted:
        return
    progress("resolving Kafka jars with Maven (first run only)…")
    mvn = require_program("mvn", "install Maven 3 (apt-get install maven)")
    partial = layout.kafka_libs.with_name(f"{layout.kafka_libs.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    with as_file(pom) as pom_file:
        await run_command(
            [
                mvn,
                "--batch-mode",
                "--quiet",
                "--file",
                str(pom_file),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={partial}",
                "-DincludeScope=runtime",
            ],
            action="resolving Kafka jars with Maven",
            timeout_s=_MAVEN_TIMEOUT_S,
        )
    (partial / _JARS_RESOLVED_MARKER).write_text(f"{wanted}\n")
    shutil.rmtree(layout.kafka_libs, ignore_errors=True)
    partial.rename(layout.kafka_libs)


def write_broker_config(layout: StateLayout) -> None:
    template = Template(recipe("kafka-server.properties.template").read_text("utf-8"))
    layout.broker_config.write_text(template.substitute(data_dir=layout.kafka_data))
    # The JVM reads its log configuration for as long as it runs: a copy in the state folder
    # outlives any temporary file `as_file` could give for package data.
    layout.broker_log_config.write_bytes(recipe("log4j2.xml").read_bytes())


async def format_storage_once(layout: StateLayout, progress: Progress) -> None:
    if (layout.kafka_data / "meta.properties").is_file():
        return
    progress("formatting Kafka storage (first run only)…")
    # Without meta.properties no broker ever ran here: whatever is left is an interrupted format.
    shutil.rmtree(layout.kafka_data, ignore_errors=True)
    layout.kafka_data.mkdir(parents=True)
    await run_command(
        _java_command(
            layout,
            STORAGE_TOOL_MAIN,
            "format",
            "--standalone",
            "--config",
            str(layout.broker_config),
            "--cluster-id",
            new_cluster_id(),
        ),
        action="formatting Kafka storage",
        timeout_s=_FORMAT_TIMEOUT_S,
    )


def new_cluster_id() -> str:
    """A random cluster id in Kafka's form: 16 random bytes, URL-safe base64 without padding."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka never issues ids starting with "-": they read as a command-line flag.
        if not cluster_id.startswith("-"):
            return cluster_id


def _java_command(layout: StateLayout, main_class: str, *args: str) -> list[str]:
    return java_command(
        libs=layout.kafka_libs,
        log_config=layout.broker_log_config,
        logs_dir=layout.kafka_logs,
        heap_mib=_SINGLE_BROKER_HEAP_MIB,
        main_class=main_class,
        args=args,
    )


def java_command(  # noqa: PLR0913 - every part of the command line is the caller's
    *,
    libs: Path,
    log_config: Path,
    logs_dir: Path,
    heap_mib: int,
    main_class: str,
    args: Sequence[str],
    quick_start: bool = False,
) -> list[str]:
    """The JVM command line running Kafka's `main_class` with the jars in `libs`, logging (by
    `log_config`) under `logs_dir`, its heap capped at `heap_mib`. `quick_start`: the client
    compiler only and one GC thread, so that several JVMs start quickly on two cores."""
    java = require_program("java", "install a Java 17+ runtime (apt-get install default-jre)")
    tuning = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"] if quick_start else []
    return [
        java,
        f"-Xmx{heap_mib}m",
        *tuning,
        f"-Dlog4j2.configurationFile={log_config}",
        f"-Dkafka.logs.dir={logs_dir}",
        "-cp",
        f"{libs}/*",
        main_class,
        *args,
    ]


async def wait_for_broker(layout: StateLayout, pid: int, progress: Progress) -> None:
    """Return once the local broker answers a metadata request; `BrokerError` if it never does."""
    if await broker_answers(LOCAL_BOOTSTRAP):
        return
    progress(f"waiting for the broker to answer at {LOCAL_BOOTSTRAP}…")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BROKER_START_TIMEOUT_S
    while not await broker_answers(LOCAL_BOOTSTRAP):
        if await _has_exited(pid, layout):
            raise BrokerExitedError(pid, await exit_status(pid), layout)
        if loop.time() >= deadline:
            raise BrokerError(
                f"the broker (pid {pid}) did not answer at {LOCAL_BOOTSTRAP} within "
                f"{BROKER_START_TIMEOUT_S:.0f} s; see {layout.broker_server_log} "
                f"and {layout.broker_console_log}"
            )
        await asyncio.sleep(_RETRY_INTERVAL_S)


async def _has_exited(pid: int, layout: StateLayout) -> bool:
    """Whether the broker started as `pid` is gone for sure, so another may be started.

    Not `not is_running(...)`: a JVM whose first thread has ended still runs the broker; and a
    broker still listening on the controller port has not exited, whatever /proc said a moment
    ago. A second broker started beside a live one, on the same folder, corrupts its metadata log.
    """
    # The controller listens on the port after the broker's (`write_broker_config`).
    host, broker_port = split_address(LOCAL_BOOTSTRAP)
    return has_exited(pid, *_broker_markers(layout)) and not await port_accepts(
        host, broker_port + 1
    )


class BrokerExitedError(BrokerError):
    """The broker's process ended before it answered: how it ended, and what it last logged."""

    def __init__(self, pid: int, how: str | None, layout: StateLayout) -> None:
        self.summary = f"the broker (pid {pid}) exited while starting ({how or 'how is unknown'})"
        super().__init__(
            f"{self.summary}{likely_cause(how)}; {machine_headroom(layout.root)}. "
            f"See {layout.broker_server_log} and {layout.broker_console_log}.\n"
            f"{last_broker_words(layout.broker_console_log, layout.broker_server_log)}"
        )


def likely_cause(how: str | None) -> str:
    if how == "killed by SIGKILL":
        return "; an unexplained SIGKILL usually comes from the kernel's out-of-memory killer"
    return ""


def machine_headroom(root: Path) -> str:
    """Memory available, free disk under `root`, the cgroup's limit and OOM kills: what a
    broker that vanished while starting most likely ran out of."""
    memory = memory_available_mib()
    disk = shutil.disk_usage(root).free // (1024 * 1024)
    memory_text = "unknown" if memory is None else f"{memory} MiB"
    headroom = f"memory available now: {memory_text}, free disk under {root}: {disk} MiB"
    cgroup = cgroup_memory_report()
    return headroom if cgroup is None else f"{headroom}, {cgroup}"


def last_broker_words(console: Path, server_log: Path) -> str:
    """What the JVM printed (crashes, bad flags), then the broker log's warnings or last lines."""
    parts = []
    if console.is_file() and console.stat().st_size > 0:
        parts.append(f"  console.log ends:\n{tail_of_file(console)}")
    recent = recent_lines(server_log, _SERVER_LOG_SCAN_LINES)
    complaints = "\n".join(line for line in recent if _COMPLAINT.search(line))
    if complaints:
        parts.append(f"  server.log's last warnings and errors:\n{tail(complaints)}")
    else:
        parts.append(f"  server.log ends (no warning or error in it):\n{tail_of_file(server_log)}")
    return "\n".join(parts)


def recent_lines(path: Path, count: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-count:]
    except FileNotFoundError:
        return []


async def broker_answers(
    bootstrap: str, timeout_s: float = _PROBE_TIMEOUT_S, *, security: KafkaSecurity = PLAINTEXT
) -> bool:
    """Whether a Kafka broker at `bootstrap` answers a metadata request (connecting as
    `security` says)."""
    bootstrap = normalise_bootstrap(bootstrap)
    addresses = [split_address(address) for address in bootstrap.split(",")]
    # A quiet TCP check first: aiokafka logs every refused connection as an error.
    if not any([await port_accepts(host, port) for host, port in addresses]):
        return False
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(timeout_s * 1000),
        **security.client_options(),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await admin.close()
    return True


async def refuse_taken_ports(ports: Iterable[tuple[int, str]]) -> None:
    """`PortTakenError` if any of `ports` (each with what it is for) on 127.0.0.1 accepts."""
    for port, role in ports:
        if await port_accepts(_HOST, port):
            raise PortTakenError(
                f"port {_HOST}:{port} ({role}) is taken by something that is not "
                "a Kafka broker started by nearhome infra; stop it, or set KAFKA_BOOTSTRAP_SERVERS "
                "to a broker you run yourself"
            )


def split_address(address: str) -> tuple[str, int]:
    host, separator, port = address.rpartition(":")
    if not separator or not port.isdigit():
        return (address, _BROKER_PORT)
    return (host.strip("[]"), int(port))
