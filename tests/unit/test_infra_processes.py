"""When a stopped process really is gone: every thread ended, not only the first one."""

import subprocess
import sys
import time

from infra.local.processes import has_exited, is_running

# The main thread ends (pthread_exit) while a second thread sleeps on: the first thread is then a
# zombie with an empty command line, as a JVM's can be while its other threads shut a broker down.
LEADER_EXITS_FIRST = (
    "import ctypes, threading, time\n"
    "threading.Thread(target=time.sleep, args=(2,)).start()\n"
    "ctypes.CDLL(None).pthread_exit(None)\n"
)
MARKER = "pthread_exit"


def test_a_process_whose_first_thread_ended_has_not_exited_while_another_thread_runs():
    child = subprocess.Popen([sys.executable, "-c", LEADER_EXITS_FIRST])
    try:
        time.sleep(0.5)
        assert not is_running(child.pid, MARKER), "the first thread is a zombie by now"
        assert not has_exited(child.pid, MARKER)
        child.wait(timeout=10)
        assert has_exited(child.pid, MARKER)
    finally:
        child.kill()
        child.wait()


def test_a_live_process_with_the_markers_has_not_exited_and_a_reused_pid_has():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)  # sleeper"])
    try:
        time.sleep(0.2)
        assert not has_exited(child.pid, "sleeper")
        assert has_exited(child.pid, "another program's marker")
    finally:
        child.kill()
        child.wait()
    assert has_exited(child.pid, "sleeper")
