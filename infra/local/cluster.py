"""The local replicated Kafka cluster: several KRaft nodes, each a broker and a controller.

`nearhome infra up --brokers 3` runs three nodes on 127.0.0.1, every one a voter of the controller
quorum, so that one of them may die (SIGKILL, the OOM killer) without losing an acknowledged write
or refusing a new one: topics have three replicas and an acks=all write needs two of them in sync.

Ports: node n (from 1) serves clients on `base + 2(n - 1)` and its controller peers on the port
after. With the default base, 9092, nodes 1, 2 and 3 are on 9092, 9094 and 9096 (controllers on
9093, 9095 and 9097), so the services' default KAFKA_BOOTSTRAP_SERVERS (127.0.0.1:9092) reaches
node 1 and, through it, the whole cluster; the single broker's ports are node 1's.

A `ClusterPlan` says where a cluster lives (its folder, its ports, the jars it runs): the CLI's is
`<state>/kafka-<n>-brokers/` on the default ports (`local_plan`); a test makes one in a temporary
folder on ports of its own and drives it with `start_cluster`, `kill_node` and `stop_cluster`.
"""

import asyncio
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from string import Template

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from infra.local import kafka
from infra.local.errors import BrokerError, InfraError
from infra.local.processes import (
    exit_status,
    has_exited,
    is_running,
    kill_process,
    read_pid_file,
    run_command,
    start_detached,
    stop_process,
    write_pid_file,
)
from infra.local.state import StateLayout, recipe
from infra.local.status import ComponentStatus, Origin, Progress
from infra.local.topics import min_insync_replicas
from services.platform.connections import PLAINTEXT, KafkaSecurity
from services.platform.network import port_accepts

HOST = "127.0.0.1"
DEFAULT_BASE_PORT = 9092
PORTS_PER_NODE = 2
MAX_BROKERS = 5
# Three copies of every partition, however many brokers there are (a cluster has three or more).
CLUSTER_REPLICATION = 3
NODE_HEAP_MIB = 384

CLUSTER_START_TIMEOUT_S = 120.0
NODE_START_ATTEMPTS = 2
NODE_STOP_TIMEOUT_S = 30.0
_FORMAT_TIMEOUT_S = 120.0
_PROBE_TIMEOUT_S = 3.0
_RETRY_INTERVAL_S = 0.5
_CLUSTER_FOLDER = re.compile(r"^kafka-(\d+)-brokers$")
_CLUSTER_ID = re.compile(r"^cluster\.id=(\S+)$", re.MULTILINE)


def check_broker_count(brokers: int) -> None:
    """`InfraError` unless `brokers` is a size `up` can run: 1, or 3 to `MAX_BROKERS`."""
    if brokers == 1 or CLUSTER_REPLICATION <= brokers <= MAX_BROKERS:
        return
    if brokers == 2:
        raise InfraError(
            "--brokers 2 cannot survive the loss of a broker (two controller voters need both "
            "for a quorum, and no topic fits three replicas): use 1, or 3"
        )
    raise InfraError(f"--brokers {brokers}: use 1 (a single broker) or 3 to {MAX_BROKERS}")


def node_ports(base_port: int, node_id: int) -> tuple[int, int]:
    """Node `node_id`'s (from 1) client port and controller port."""
    broker = base_port + PORTS_PER_NODE * (node_id - 1)
    return broker, broker + 1


@dataclass(frozen=True, slots=True)
class ClusterNode:
    """One node: its id, its ports and its folder (configuration, data, logs and pid file)."""

    node_id: int
    broker_port: int
    controller_port: int
    folder: Path

    @property
    def name(self) -> str:
        return f"broker {self.node_id}"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.broker_port}"

    @property
    def controller_address(self) -> str:
        return f"{HOST}:{self.controller_port}"

    @property
    def voter(self) -> str:
        """This node in `controller.quorum.voters`: `<id>@<host>:<controller port>`."""
        return f"{self.node_id}@{self.controller_address}"

    @property
    def config(self) -> Path:
        return self.folder / "server.properties"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def logs(self) -> Path:
        return self.folder / "logs"

    @property
    def console_log(self) -> Path:
        return self.logs / "console.log"

    @property
    def server_log(self) -> Path:
        return self.logs / "server.log"

    @property
    def pid_file(self) -> Path:
        return self.folder / "broker.pid"

    @property
    def markers(self) -> tuple[str, str]:
        """What this node's JVM command line holds, to tell it from a reused pid."""
        return (kafka.BROKER_MAIN, str(self.config))


@dataclass(frozen=True, slots=True)
class ClusterPlan:
    """A cluster of `brokers` nodes in `folder`, its ports from `base_port`, running the jars in
    `libs`, each JVM's heap capped at `heap_mib`."""

    folder: Path
    libs: Path
    brokers: int
    base_port: int = DEFAULT_BASE_PORT
    heap_mib: int = NODE_HEAP_MIB

    @property
    def nodes(self) -> tuple[ClusterNode, ...]:
        return tuple(self.node(node_id) for node_id in range(1, self.brokers + 1))

    def node(self, node_id: int) -> ClusterNode:
        if not 1 <= node_id <= self.brokers:
            raise ValueError(f"no node {node_id} in a cluster of {self.brokers}")
        broker_port, controller_port = node_ports(self.base_port, node_id)
        return ClusterNode(node_id, broker_port, controller_port, self.folder / f"node-{node_id}")

    def node_at(self, address: str) -> ClusterNode:
        """The node serving clients at `address` (`host:port`)."""
        for node in self.nodes:
            if node.address == address:
                return node
        raise ValueError(f"no node of this cluster at {address}")

    @property
    def ports(self) -> tuple[int, ...]:
        """Every port the cluster listens on, client and controller."""
        return tuple(
            port for node in self.nodes for port in (node.broker_port, node.controller_port)
        )

    @property
    def bootstrap(self) -> str:
        """Every node's client address: a client knowing them all connects with one down."""
        return ",".join(node.address for node in self.nodes)

    @property
    def voters(self) -> str:
        return ",".join(node.voter for node in self.nodes)

    @property
    def replication(self) -> int:
        return min(CLUSTER_REPLICATION, self.brokers)

    @property
    def min_insync(self) -> int:
        return min_insync_replicas(self.replication)

    @property
    def log_config(self) -> Path:
        return self.folder / "log4j2.xml"


def local_plan(layout: StateLayout, brokers: int) -> ClusterPlan:
    """The cluster `nearhome infra up --brokers <brokers>` runs: in the state folder, on the
    default ports."""
    return ClusterPlan(layout.kafka_cluster_dir(brokers), layout.kafka_libs, brokers)


def render_node_config(plan: ClusterPlan, node: ClusterNode) -> str:
    """`node`'s server.properties, from kafka-cluster.properties.template."""
    template = Template(recipe("kafka-cluster.properties.template").read_text("utf-8"))
    return template.substitute(
        node_id=node.node_id,
        voters=plan.voters,
        broker_address=node.address,
        controller_address=node.controller_address,
        data_dir=node.data,
        replication=plan.replication,
        min_insync=plan.min_insync,
    )


def cluster_size_of(folder: Path) -> int | None:
    """The size a cluster folder (`kafka-<n>-brokers`) is named for; None for any other folder."""
    match = _CLUSTER_FOLDER.match(folder.name)
    return int(match.group(1)) if match else None


def node_pid(node: ClusterNode) -> int | None:
    """The pid in `node`'s pid file, if that process is still this node."""
    pid = read_pid_file(node.pid_file)
    if pid is None or not is_running(pid, *node.markers):
        return None
    return pid


def running_nodes(plan: ClusterPlan) -> dict[int, int]:
    """The nodes of `plan` running now, node id to pid."""
    return {node.node_id: pid for node in plan.nodes if (pid := node_pid(node)) is not None}


def recorded_cluster(layout: StateLayout) -> ClusterPlan | None:
    """The local cluster `up --brokers` started in `layout` of which a node still runs, if any."""
    for folder in layout.kafka_cluster_dirs():
        size = cluster_size_of(folder)
        if size is None:
            continue
        plan = local_plan(layout, size)
        if running_nodes(plan):
            return plan
    return None


def running_size(layout: StateLayout) -> int | None:
    """How many brokers the Kafka that `up` started in `layout` has (1: the single broker), if any
    of it runs."""
    if kafka.recorded_broker_pid(layout) is not None:
        return 1
    plan = recorded_cluster(layout)
    return None if plan is None else plan.brokers


def size_change_advice(running: int, wanted: int, layout: StateLayout) -> str:
    """What to do when `up --brokers <wanted>` finds `running` brokers of its own running."""

    def folder(brokers: int) -> Path:
        return layout.kafka_dir if brokers == 1 else layout.kafka_cluster_dir(brokers)

    what = "a single broker" if running == 1 else f"a cluster of {running} brokers"
    return (
        f"{what} started by nearhome infra is running, not {wanted}: run `nearhome infra down`, "
        f"then `nearhome infra up --brokers {wanted}` (or leave out --brokers to keep using it). "
        f"Each size keeps its own topics and data ({folder(running)} and {folder(wanted)})"
    )


async def start_cluster(plan: ClusterPlan, progress: Progress) -> dict[int, int]:
    """Format the nodes' storage (only what is not formatted yet), start every node not already
    running, and return (node id to pid) once every node is registered with the cluster.

    The jars must already be in `plan.libs` (`kafka.ensure_kafka_jars`)."""
    if not any(plan.libs.glob("kafka_*.jar")):
        raise BrokerError(f"no Kafka jars in {plan.libs}: run `nearhome infra up` once first")
    for node in plan.nodes:
        node.data.mkdir(parents=True, exist_ok=True)
        node.logs.mkdir(parents=True, exist_ok=True)
        node.config.write_text(render_node_config(plan, node))
    # The JVMs read it for as long as they run: a copy in the cluster's folder.
    plan.log_config.write_bytes(recipe("log4j2.xml").read_bytes())
    await format_storage(plan, progress)
    pids = running_nodes(plan)
    missing = [node for node in plan.nodes if node.node_id not in pids]
    await kafka.refuse_taken_ports(
        (port, f"{node.name} of the local Kafka cluster")
        for node in missing
        for port in (node.broker_port, node.controller_port)
    )
    if missing:
        progress(f"starting {', '.join(node.name for node in missing)} of {plan.brokers}…")
    for node in missing:
        pids[node.node_id] = _start_node(plan, node)
    await wait_for_cluster(plan, pids, progress)
    return pids


def _java(plan: ClusterPlan, node: ClusterNode, main_class: str, *args: str) -> list[str]:
    return kafka.java_command(
        libs=plan.libs,
        log_config=plan.log_config,
        logs_dir=node.logs,
        heap_mib=plan.heap_mib,
        main_class=main_class,
        args=args,
        # Several JVMs share the machine's cores while they start.
        quick_start=True,
    )


def _start_node(plan: ClusterPlan, node: ClusterNode) -> int:
    pid = start_detached(
        _java(plan, node, kafka.BROKER_MAIN, str(node.config)),
        log_path=node.console_log,
        cwd=node.folder,
    )
    write_pid_file(node.pid_file, pid)
    return pid


async def format_storage(plan: ClusterPlan, progress: Progress) -> None:
    """Format every node whose storage is not formatted yet, all with the cluster's id (a node
    formatted before gives it; else a new one), the voters from the configuration."""
    unformatted = [node for node in plan.nodes if not (node.data / "meta.properties").is_file()]
    if not unformatted:
        return
    cluster_id = existing_cluster_id(plan) or kafka.new_cluster_id()
    progress(f"formatting the storage of {', '.join(node.name for node in unformatted)}…")
    for node in unformatted:
        # Without meta.properties no broker ever ran there: whatever is left is an interrupted
        # format.
        shutil.rmtree(node.data, ignore_errors=True)
        node.data.mkdir(parents=True)
    await asyncio.gather(
        *(
            run_command(
                _java(
                    plan,
                    node,
                    kafka.STORAGE_TOOL_MAIN,
                    "format",
                    "--config",
                    str(node.config),
                    "--cluster-id",
                    cluster_id,
                ),
                action=f"formatting the storage of {node.name}",
                timeout_s=_FORMAT_TIMEOUT_S,
            )
            for node in unformatted
        )
    )


def existing_cluster_id(plan: ClusterPlan) -> str | None:
    """The cluster id a formatted node of `plan` records, if any node is formatted."""
    for node in plan.nodes:
        try:
            text = (node.data / "meta.properties").read_text()
        except FileNotFoundError:
            continue
        if match := _CLUSTER_ID.search(text):
            return match.group(1)
    return None


async def cluster_is_whole(plan: ClusterPlan) -> bool:
    """Whether every node of `plan` answers and knows every other as registered (each learns of
    the others from the metadata log at its own pace: one may still count two of three)."""
    wanted = {node.node_id for node in plan.nodes}
    for node in plan.nodes:
        if await registered_brokers(node.address) != wanted:
            return False
    return True


async def wait_for_cluster(plan: ClusterPlan, pids: dict[int, int], progress: Progress) -> None:
    """Return once every node of `plan` is registered with the cluster, as every node sees it; a
    node that exits on the way is started once more (as the single broker is), then
    `NodeExitedError`."""
    if await cluster_is_whole(plan):
        return
    progress(f"waiting for the {plan.brokers} brokers to answer at {plan.bootstrap}…")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CLUSTER_START_TIMEOUT_S
    attempts = dict.fromkeys(pids, 1)
    while not await cluster_is_whole(plan):
        for node in plan.nodes:
            pid = pids[node.node_id]
            if not await _node_has_exited(node, pid):
                continue
            error = NodeExitedError(node, pid, await exit_status(pid), plan)
            if attempts[node.node_id] >= NODE_START_ATTEMPTS:
                raise error
            attempts[node.node_id] += 1
            progress(f"{error.summary}; starting it again (attempt {attempts[node.node_id]})")
            pids[node.node_id] = _start_node(plan, node)
        if loop.time() >= deadline:
            raise BrokerError(
                f"the local Kafka cluster (pids {sorted(pids.values())}) did not register all "
                f"{plan.brokers} brokers at {plan.bootstrap} within "
                f"{CLUSTER_START_TIMEOUT_S:.0f} s; see the logs under {plan.folder}/node-*/logs"
            )
        await asyncio.sleep(_RETRY_INTERVAL_S)


async def _node_has_exited(node: ClusterNode, pid: int) -> bool:
    """Whether `node`'s process is gone for sure (see `kafka._has_exited`): only then may another
    be started on its folder."""
    return has_exited(pid, *node.markers) and not await port_accepts(HOST, node.controller_port)


async def registered_brokers(
    bootstrap: str, timeout_s: float = _PROBE_TIMEOUT_S, *, security: KafkaSecurity = PLAINTEXT
) -> set[int] | None:
    """The ids of the brokers the cluster at `bootstrap` has registered and not fenced; None if
    none of its addresses answers."""
    addresses = [kafka.split_address(a) for a in kafka.normalise_bootstrap(bootstrap).split(",")]
    # A quiet TCP check first: aiokafka logs every refused connection as an error.
    if not any([await port_accepts(host, port) for host, port in addresses]):
        return None
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(timeout_s * 1000),
        **security.client_options(),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
    except (KafkaError, OSError, TimeoutError):
        return None
    finally:
        await admin.close()
    return {int(broker["node_id"]) for broker in cluster["brokers"]}


class NodeExitedError(BrokerError):
    """A node's process ended before the cluster registered it: how, and what it last logged."""

    def __init__(self, node: ClusterNode, pid: int, how: str | None, plan: ClusterPlan) -> None:
        self.summary = f"{node.name} (pid {pid}) exited while starting ({how or 'how is unknown'})"
        super().__init__(
            f"{self.summary}{kafka.likely_cause(how)}; {kafka.machine_headroom(plan.folder)}. "
            f"See {node.server_log} and {node.console_log}.\n"
            f"{kafka.last_broker_words(node.console_log, node.server_log)}"
        )


async def stop_cluster(plan: ClusterPlan, timeout_s: float = NODE_STOP_TIMEOUT_S) -> dict[int, int]:
    """Stop every running node of `plan` together (SIGTERM, SIGKILL after `timeout_s`); the
    stopped ones, node id to pid."""
    running = running_nodes(plan)
    await asyncio.gather(
        *(
            stop_process(pid, *plan.node(node_id).markers, timeout_s=timeout_s)
            for node_id, pid in running.items()
        )
    )
    for node in plan.nodes:
        node.pid_file.unlink(missing_ok=True)
    return running


async def kill_node(plan: ClusterPlan, node_id: int) -> int:
    """SIGKILL node `node_id` (as the kernel's OOM killer or a power cut would), wait until its
    ports are closed, and return its pid; `BrokerError` if it is not running."""
    node = plan.node(node_id)
    pid = node_pid(node)
    if pid is None or not await kill_process(pid, *node.markers):
        raise BrokerError(f"{node.name} of {plan.folder} is not running")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + NODE_STOP_TIMEOUT_S
    while await port_accepts(HOST, node.broker_port) or await port_accepts(
        HOST, node.controller_port
    ):
        if loop.time() >= deadline:
            raise BrokerError(f"{node.name}'s ports are still open after SIGKILL")
        await asyncio.sleep(0.1)
    return pid


async def cluster_status(plan: ClusterPlan) -> tuple[ComponentStatus, ...]:
    """One status per node: whether it answers a metadata request, and its pid if it runs."""
    running = running_nodes(plan)
    answers = await asyncio.gather(*(kafka.broker_answers(node.address) for node in plan.nodes))
    return tuple(
        ComponentStatus(
            node.name,
            node.address,
            up=up,
            origin=Origin.STARTED_HERE,
            pid=running.get(node.node_id),
        )
        for node, up in zip(plan.nodes, answers, strict=True)
    )


@dataclass(frozen=True, slots=True)
class LocalKafka:
    """What `up` found or started: each broker's status, the address to declare topics at, and
    the replicas a new topic gets (None: as many as the brokers counted then, up to three)."""

    brokers: tuple[ComponentStatus, ...]
    bootstrap: str
    replication: int | None = None


async def ensure_brokers(
    bootstrap: str,
    layout: StateLayout,
    progress: Progress,
    *,
    brokers: int | None = None,
    security: KafkaSecurity = PLAINTEXT,
) -> LocalKafka:
    """Make Kafka answer at `bootstrap`: the configured broker, or the local one or cluster.

    `brokers` is how many local brokers are wanted: None means whatever `up` started and still
    runs, else one. A running Kafka of `up`'s own of another size is refused with what to do."""
    if brokers is not None:
        check_broker_count(brokers)
    bootstrap = kafka.normalise_bootstrap(bootstrap)
    if not kafka.is_local_bootstrap(bootstrap):
        if brokers is not None:
            raise InfraError(
                f"--brokers starts local brokers, but KAFKA_BOOTSTRAP_SERVERS={bootstrap} names "
                "a broker of your own: leave out --brokers, or unset KAFKA_BOOTSTRAP_SERVERS"
            )
        configured = await kafka.ensure_broker(bootstrap, layout, progress, security=security)
        return LocalKafka((configured,), configured.address)
    running = running_size(layout)
    if running is not None and brokers is not None and brokers != running:
        raise InfraError(size_change_advice(running, brokers, layout))
    wanted = brokers or running or 1
    if running is None and await kafka.broker_answers(kafka.LOCAL_BOOTSTRAP):
        return await _somebody_elses(wanted if brokers is not None else None, progress)
    if wanted == 1:
        single = await kafka.ensure_broker(bootstrap, layout, progress)
        return LocalKafka((single,), single.address)
    await kafka.ensure_kafka_jars(layout, progress)
    plan = local_plan(layout, wanted)
    if running is not None:
        listed = ", ".join(f"{n}: {pid}" for n, pid in sorted(running_nodes(plan).items()))
        progress(f"cluster of {wanted} brokers already running (node: pid {listed})")
    pids = await start_cluster(plan, progress)
    statuses = tuple(
        ComponentStatus(
            node.name, node.address, up=True, origin=Origin.STARTED_HERE, pid=pids[node.node_id]
        )
        for node in plan.nodes
    )
    return LocalKafka(statuses, plan.bootstrap, plan.replication)


async def _somebody_elses(wanted: int | None, progress: Progress) -> LocalKafka:
    """A Kafka not started by `up` answers on the local port: use it, if it has the size asked."""
    address = kafka.LOCAL_BOOTSTRAP
    if wanted is not None:
        size = len(await registered_brokers(address) or ())
        if size != wanted:
            raise InfraError(
                f"a Kafka not started by nearhome infra answers at {address} with {size} "
                f"broker{'' if size == 1 else 's'}, not {wanted}: stop it to let "
                f"`up --brokers {wanted}` start its own, or leave out --brokers to use it as it is"
            )
    progress(f"a broker not started by nearhome infra answers at {address}: using it")
    return LocalKafka(
        (ComponentStatus("broker", address, up=True, origin=Origin.ALREADY_RUNNING),), address
    )


async def brokers_status(
    bootstrap: str, layout: StateLayout, *, security: KafkaSecurity = PLAINTEXT
) -> tuple[ComponentStatus, ...]:
    """Each broker's status: the configured one, the local cluster's nodes, or the single broker."""
    if kafka.is_local_bootstrap(bootstrap) and (plan := recorded_cluster(layout)) is not None:
        return await cluster_status(plan)
    return (await kafka.broker_status(bootstrap, layout, security=security),)


async def stop_local_kafka(layout: StateLayout) -> list[tuple[str, int]]:
    """Stop the single broker and every cluster node `up` started in `layout`: (name, pid) of
    each one stopped."""
    stopped = []
    if (pid := await kafka.stop_local_broker(layout)) is not None:
        stopped.append(("the broker", pid))
    for folder in layout.kafka_cluster_dirs():
        size = cluster_size_of(folder)
        if size is None:
            continue
        plan = local_plan(layout, size)
        for node_id, node_pid_ in sorted((await stop_cluster(plan)).items()):
            stopped.append((plan.node(node_id).name, node_pid_))
    return stopped
