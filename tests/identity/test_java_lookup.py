"""Which Java the local Keycloak runs on: JAVA_HOME if it is 21 or later, else the newest JDK in
/usr/lib/jvm (read from each one's `release` file), else an error naming what to install."""

from pathlib import Path

import pytest

from infra.local import keycloak
from infra.local.keycloak import KeycloakError, find_java_home, java_major

pytestmark = pytest.mark.identity


def _jdk(folder: Path, name: str, version: str) -> Path:
    home = folder / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("#!/bin/sh\n")
    (home / "release").write_text(f'IMPLEMENTOR="Example"\nJAVA_VERSION="{version}"\n')
    return home


def test_the_major_version_of_each_numbering() -> None:
    assert java_major("25.0.3") == 25
    assert java_major("17.0.15") == 17
    assert java_major("21") == 21
    assert java_major("1.8.0_402") == 8
    assert java_major("unknown") is None


def test_java_home_is_used_when_it_is_recent_enough_else_the_newest_jdk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _jdk(tmp_path, "java-17-openjdk-amd64", "17.0.15")
    recent = _jdk(tmp_path, "temurin-21-jdk-amd64", "21.0.9")
    newest = _jdk(tmp_path, "temurin-25-jdk-amd64", "25.0.3")
    monkeypatch.setattr(keycloak, "JVM_FOLDER", tmp_path)
    monkeypatch.setenv("JAVA_HOME", str(recent))
    assert find_java_home() == recent
    monkeypatch.setenv("JAVA_HOME", str(old))
    assert find_java_home() == newest
    monkeypatch.delenv("JAVA_HOME")
    assert find_java_home() == newest


def test_without_java_21_the_error_says_what_was_found_and_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _jdk(tmp_path, "java-17-openjdk-amd64", "17.0.15")
    monkeypatch.setattr(keycloak, "JVM_FOLDER", tmp_path)
    monkeypatch.setenv("JAVA_HOME", str(old))
    with pytest.raises(KeycloakError) as refused:
        find_java_home()
    message = str(refused.value)
    assert "Keycloak needs Java 21 or later" in message
    assert "Java 17" in message
    assert "openjdk-21-jdk-headless" in message
