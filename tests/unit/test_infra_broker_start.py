"""A broker that dies while starting is started once more, and the error says how it died.

The JVM here is a stand-in `java` on PATH that kills itself with SIGKILL, as the kernel's
out-of-memory killer would: the real broker cannot be made to die on cue.
"""

import hashlib
import stat
from pathlib import Path

import pytest

from infra.local import kafka
from infra.local.state import StateLayout, recipe

_SERVER_LOG = """\
[2026-11-23 10:00:00,000] INFO Registered kafka:type=kafka.Log4jController MBean (x)
[2026-11-23 10:00:01,000] WARN Disk is nearly full under /state (kafka.log.LogManager)
[2026-11-23 10:00:02,000] INFO unstable.feature.versions.enable = false (y)
"""


def _layout_ready_to_start(root: Path) -> StateLayout:
    """A state folder whose jars count as resolved and whose storage counts as formatted."""
    layout = StateLayout(root=root)
    layout.kafka_libs.mkdir(parents=True)
    pom_hash = hashlib.sha256(recipe("pom.xml").read_bytes()).hexdigest()
    (layout.kafka_libs / ".resolved-from-pom").write_text(f"{pom_hash}\n")
    layout.kafka_data.mkdir(parents=True)
    (layout.kafka_data / "meta.properties").write_text("formatted\n")
    layout.kafka_logs.mkdir(parents=True)
    layout.broker_server_log.write_text(_SERVER_LOG)
    return layout


def _java_that_is_killed(folder: Path, starts: Path) -> None:
    folder.mkdir()
    java = folder / "java"
    java.write_text(f'#!/bin/sh\necho started >> "{starts}"\nkill -9 $$\n')
    java.chmod(java.stat().st_mode | stat.S_IXUSR)


async def test_a_broker_killed_while_starting_is_started_once_more_then_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = _layout_ready_to_start(tmp_path / "state")
    starts = tmp_path / "starts"
    _java_that_is_killed(tmp_path / "bin", starts)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    # Nothing answers on port 1, so the wait depends on the process alone (the session's real
    # broker answers on the usual port).
    monkeypatch.setattr(kafka, "LOCAL_BOOTSTRAP", "127.0.0.1:1")
    said: list[str] = []

    with pytest.raises(kafka.BrokerExitedError) as raised:
        await kafka.start_broker_and_wait(layout, said.append)

    assert starts.read_text().splitlines() == ["started", "started"]
    retries = [line for line in said if "starting it again" in line]
    assert len(retries) == 1
    assert "killed by SIGKILL" in retries[0]
    message = str(raised.value)
    assert "exited while starting (killed by SIGKILL)" in message
    assert "out-of-memory killer" in message
    assert "memory available now:" in message
    assert "WARN Disk is nearly full" in message
    assert "Registered kafka" not in message


async def test_a_broker_that_exits_with_a_code_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = _layout_ready_to_start(tmp_path / "state")
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    java = bin_folder / "java"
    java.write_text("#!/bin/sh\necho 'Error: Could not create the Java Virtual Machine.'\nexit 3\n")
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_folder}:/usr/bin:/bin")
    monkeypatch.setattr(kafka, "LOCAL_BOOTSTRAP", "127.0.0.1:1")

    with pytest.raises(kafka.BrokerExitedError) as raised:
        await kafka.start_broker_and_wait(layout, lambda _line: None)

    message = str(raised.value)
    assert "(exit code 3)" in message
    assert "out-of-memory" not in message
    assert "console.log ends:\n    Error: Could not create the Java Virtual Machine." in message
