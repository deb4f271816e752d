"""Bad input at the command line: one clear line, a non-zero exit, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def _triallens(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TRIALLENS_DATA_DIR=str(data_dir), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "triallens", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _assert_one_clear_line(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_bad_pacs_url(tmp_path: Path) -> None:
    port = _closed_port()
    proc = _triallens(
        tmp_path,
        "triage",
        "--pacs",
        f"http://127.0.0.1:{port}/dicom-web",
        "--study",
        "1.2.3.4",
    )
    _assert_one_clear_line(proc, "error", "pacs")


def test_unsupported_pacs_scheme(tmp_path: Path) -> None:
    proc = _triallens(tmp_path, "triage", "--pacs", "ftp://x/y", "--study", "1.2.3")
    _assert_one_clear_line(proc, "scheme")


def test_pacs_url_with_a_port_out_of_range(tmp_path: Path) -> None:
    proc = _triallens(
        tmp_path, "triage", "--pacs", "http://127.0.0.1:99999/x", "--study", "1.2.3"
    )
    _assert_one_clear_line(proc, "not valid")


def test_unknown_study_uid_in_embedded_store(tmp_path: Path) -> None:
    proc = _triallens(tmp_path, "triage", "--study", "1.2.826.0.1.3680043.99.1")
    _assert_one_clear_line(proc, "1.2.826.0.1.3680043.99.1")


def test_non_dicom_file_in_embedded_store(tmp_path: Path) -> None:
    store = tmp_path / "pacs"
    store.mkdir(parents=True)
    (store / "notes.dcm").write_text("this is not a DICOM file\n")
    proc = _triallens(tmp_path, "triage", "--study", "1.2.826.0.1.3680043.99.2")
    _assert_one_clear_line(proc, "notes.dcm")


@pytest.mark.parametrize(
    "args",
    [["triage"], ["demo", "--subjects", "0"], ["synth", "--out", "x", "--seed", "-5"]],
)
def test_usage_errors_exit_non_zero(tmp_path: Path, args: list[str]) -> None:
    proc = _triallens(tmp_path, *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert f"see 'triallens {args[0]} --help'" in line


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["eval", "measurements", "--task", "bogus"], "eval measurements"),
        (["eval", "measurements", "--subjects", "0"], "eval measurements"),
        (["demo", "--seed", "-5"], "demo"),
        (["triage", "--study"], "triage"),
        (["users", "token", "someone", "--label"], "users token"),
        (["edc", "serve", "--schema", "/nonexistent/odm.xsd"], "edc serve"),
        (["audit", "show", "--limit", "99999999999999999999999"], "audit show"),
        (["triage", "--study", " "], "triage"),
        (["triage", "--study", "X", "--pacs", "http://127.0.0.1:1"], "triage"),
        (["triage", "--study", "1.2.3", "--pacs", "/nonexistent/store"], "triage"),
        (["watch"], "watch"),
    ],
)
def test_bad_values_name_the_command_help(
    tmp_path: Path, args: list[str], command: str
) -> None:
    proc = _triallens(tmp_path, *args)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and f"see 'triallens {command} --help'" in line


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["audit", "verify", "--database", "bogus://x"], ["bogus://x", "database URL"]),
        (
            ["synth", "--out", "{file}/x", "--subjects", "1", "--small"],
            ["Not a directory"],
        ),
        (["edc", "export", "--out", "/nonexistent/dir/x.xml"], ["No such file"]),
        (
            ["audit", "verify", "--database", "sqlite:////nonexistent/dir/x.db"],
            ["no database at"],
        ),
    ],
)
def test_bad_paths_and_urls_are_one_clear_line(
    tmp_path: Path, args: list[str], words: list[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    args = [a.replace("{file}", str(blocker)) for a in args]
    proc = _triallens(tmp_path, *args)
    assert proc.returncode == 2
    _assert_one_clear_line(proc, *words)
