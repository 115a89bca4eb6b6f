"""The local replicated cluster's pure parts: ports, node configuration, sizes, topic settings,
what `status` shows, and what `up` says when asked for another size than the one running.

No JVM runs here: a process standing in for a node is a `sleep` whose command line carries the
node's markers (tests/faults/test_three_brokers.py runs a real cluster).
"""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from contracts.topics import PROVIDER_EVENTS
from infra.local import cluster, kafka
from infra.local.cli import app
from infra.local.errors import InfraError
from infra.local.processes import write_pid_file
from infra.local.state import StateLayout
from infra.local.status import ComponentStatus, InfraStatus, Origin
from infra.local.topics import min_insync_replicas, topic_configs


def _plan(tmp_path: Path, brokers: int = 3, base_port: int = 9092) -> cluster.ClusterPlan:
    return cluster.ClusterPlan(tmp_path / "cluster", tmp_path / "libs", brokers, base_port)


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_node_n_serves_on_base_plus_twice_n_minus_one_and_controls_on_the_next_port() -> None:
    assert [cluster.node_ports(9092, n) for n in (1, 2, 3)] == [
        (9092, 9093),
        (9094, 9095),
        (9096, 9097),
    ]
    assert cluster.node_ports(20_000, 2) == (20_002, 20_003)


def test_the_default_cluster_is_reached_at_the_services_default_address(tmp_path: Path) -> None:
    plan = _plan(tmp_path)

    assert plan.nodes[0].address == kafka.LOCAL_BOOTSTRAP
    assert plan.bootstrap == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert plan.voters == "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
    assert plan.ports == (9092, 9093, 9094, 9095, 9096, 9097)
    assert plan.node_at("127.0.0.1:9096").node_id == 3
    assert (plan.replication, plan.min_insync) == (3, 2)


def test_every_node_has_a_folder_of_its_own(tmp_path: Path) -> None:
    plan = _plan(tmp_path)

    folders = [node.folder for node in plan.nodes]
    assert folders == [tmp_path / "cluster" / f"node-{n}" for n in (1, 2, 3)]
    assert len({node.pid_file for node in plan.nodes}) == 3
    with pytest.raises(ValueError, match="no node 4"):
        plan.node(4)


def test_a_node_config_makes_it_a_voting_broker_and_controller_with_replicated_topics(
    tmp_path: Path,
) -> None:
    plan = _plan(tmp_path, base_port=30_000)
    node = plan.node(2)

    text = cluster.render_node_config(plan, node)

    assert "${" not in text
    config = _properties(text)
    assert config["process.roles"] == "broker,controller"
    assert config["node.id"] == "2"
    assert config["controller.quorum.voters"] == (
        "1@127.0.0.1:30001,2@127.0.0.1:30003,3@127.0.0.1:30005"
    )
    assert config["listeners"] == "PLAINTEXT://127.0.0.1:30002,CONTROLLER://127.0.0.1:30003"
    assert config["advertised.listeners"] == config["listeners"]
    assert config["log.dirs"] == str(node.data)
    assert {
        key: config[key]
        for key in (
            "default.replication.factor",
            "min.insync.replicas",
            "offsets.topic.replication.factor",
            "transaction.state.log.replication.factor",
            "transaction.state.log.min.isr",
            "group.initial.rebalance.delay.ms",
            "auto.create.topics.enable",
        )
    } == {
        "default.replication.factor": "3",
        "min.insync.replicas": "2",
        "offsets.topic.replication.factor": "3",
        "transaction.state.log.replication.factor": "3",
        "transaction.state.log.min.isr": "2",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
    }
    assert "controller.quorum.bootstrap.servers" not in config  # static voters, not dynamic


def test_five_brokers_still_keep_three_copies(tmp_path: Path) -> None:
    plan = _plan(tmp_path, brokers=5)

    config = _properties(cluster.render_node_config(plan, plan.node(5)))

    assert config["default.replication.factor"] == "3"
    assert config["min.insync.replicas"] == "2"
    assert config["listeners"].startswith("PLAINTEXT://127.0.0.1:9100,")


@pytest.mark.parametrize("brokers", [1, 3, 4, 5])
def test_sizes_up_can_run(brokers: int) -> None:
    cluster.check_broker_count(brokers)


@pytest.mark.parametrize(
    ("brokers", "said"), [(2, "cannot survive the loss"), (0, "use 1"), (6, "use 1")]
)
def test_sizes_up_refuses_say_what_to_use(brokers: int, said: str) -> None:
    with pytest.raises(InfraError, match=said):
        cluster.check_broker_count(brokers)


def test_up_refuses_two_brokers_before_starting_anything() -> None:
    result = CliRunner().invoke(app, ["up", "--brokers", "2"], env={"NEARHOME_STATE_DIR": ""})

    assert result.exit_code == 1
    assert "--brokers 2 cannot survive the loss of a broker" in result.output


@pytest.mark.parametrize(("replication", "insync"), [(1, 1), (2, 1), (3, 2)])
def test_a_write_needs_all_replicas_but_one(replication: int, insync: int) -> None:
    assert min_insync_replicas(replication) == insync


def test_replicated_topics_are_created_with_their_min_insync_replicas() -> None:
    assert topic_configs(PROVIDER_EVENTS, 3) == {
        "retention.ms": str(PROVIDER_EVENTS.retention_ms),
        "min.insync.replicas": "2",
    }
    assert topic_configs(PROVIDER_EVENTS, 1) == {"retention.ms": str(PROVIDER_EVENTS.retention_ms)}


def test_cluster_folders_are_named_for_their_size(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path)

    assert layout.kafka_cluster_dir(3).name == "kafka-3-brokers"
    assert cluster.cluster_size_of(layout.kafka_cluster_dir(3)) == 3
    assert cluster.cluster_size_of(layout.kafka_dir) is None
    assert cluster.local_plan(layout, 3).folder == layout.kafka_cluster_dir(3)
    assert cluster.local_plan(layout, 3).libs == layout.kafka_libs


def test_a_partly_formatted_cluster_keeps_its_id(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    assert cluster.existing_cluster_id(plan) is None
    plan.node(2).data.mkdir(parents=True)
    (plan.node(2).data / "meta.properties").write_text(
        "#\nnode.id=2\ndirectory.id=abc\nversion=1\ncluster.id=q1Sh-9_ISia_zwGINzRvyQ\n"
    )

    assert cluster.existing_cluster_id(plan) == "q1Sh-9_ISia_zwGINzRvyQ"


def test_status_lists_every_broker_and_is_all_up_only_when_each_is() -> None:
    def broker(n: int, *, up: bool) -> ComponentStatus:
        return ComponentStatus(f"broker {n}", f"127.0.0.1:{9090 + 2 * n}", up, Origin.STARTED_HERE)

    database = ComponentStatus("database", "127.0.0.1:5432", up=True, origin=Origin.STARTED_HERE)
    infra = InfraStatus(broker(1, up=True), database, (broker(2, up=True), broker(3, up=False)))

    lines = infra.describe().splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["broker", "1", "up"],
        ["broker", "2", "up"],
        ["broker", "3", "down"],
        ["database", "up", "127.0.0.1:5432"],
    ]
    assert not infra.all_up
    assert InfraStatus(broker(1, up=True), database).all_up


@pytest.fixture
def stand_ins() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes standing in for brokers (see `_stand_in`), killed afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def _sleeper(started: list[subprocess.Popen[bytes]], pid_file: Path, *args: str) -> int:
    """A sleeping process with `args` on its command line, its pid in `pid_file`."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *args])
    started.append(process)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    write_pid_file(pid_file, process.pid)
    return process.pid


def _stand_in(started: list[subprocess.Popen[bytes]], pid_file: Path, config: Path) -> int:
    """A sleeping process whose command line holds a broker's markers, its pid in `pid_file`."""
    return _sleeper(started, pid_file, kafka.BROKER_MAIN, str(config))


async def test_up_asked_for_three_while_one_runs_says_to_stop_it_first(
    tmp_path: Path, stand_ins: list[subprocess.Popen[bytes]]
) -> None:
    layout = StateLayout(tmp_path)
    _stand_in(stand_ins, layout.broker_pid_file, layout.broker_config)

    assert cluster.running_size(layout) == 1
    with pytest.raises(InfraError) as refused:
        await cluster.ensure_brokers(kafka.LOCAL_BOOTSTRAP, layout, print, brokers=3)

    message = str(refused.value)
    assert "a single broker started by nearhome infra is running, not 3" in message
    assert "`nearhome infra down`, then `nearhome infra up --brokers 3`" in message


async def test_up_asked_for_one_while_three_run_says_to_stop_them_first(
    tmp_path: Path, stand_ins: list[subprocess.Popen[bytes]]
) -> None:
    layout = StateLayout(tmp_path)
    plan = cluster.local_plan(layout, 3)
    for node in plan.nodes:
        _stand_in(stand_ins, node.pid_file, node.config)

    assert cluster.recorded_cluster(layout) == plan
    assert cluster.running_nodes(plan).keys() == {1, 2, 3}
    with pytest.raises(InfraError, match="a cluster of 3 brokers started by nearhome infra"):
        await cluster.ensure_brokers(kafka.LOCAL_BOOTSTRAP, layout, print, brokers=1)


async def test_brokers_are_for_the_local_cluster_only(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="--brokers starts local brokers"):
        await cluster.ensure_brokers("kafka.example:9092", StateLayout(tmp_path), print, brokers=3)


async def test_down_stops_every_node_up_started_and_nothing_else(
    tmp_path: Path, stand_ins: list[subprocess.Popen[bytes]]
) -> None:
    layout = StateLayout(tmp_path)
    plan = cluster.local_plan(layout, 3)
    pids = [_stand_in(stand_ins, node.pid_file, node.config) for node in plan.nodes]
    # A pid file naming a process that is no node of ours: never signalled.
    _sleeper(stand_ins, layout.broker_pid_file)

    stopped = await cluster.stop_local_kafka(layout)

    assert stopped == [("broker 1", pids[0]), ("broker 2", pids[1]), ("broker 3", pids[2])]
    assert [process.poll() is not None for process in stand_ins] == [True, True, True, False]
    assert cluster.recorded_cluster(layout) is None
