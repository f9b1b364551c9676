"""A local Prefect server that cannot start ends `shopsync` with one line naming its log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deployments import cli
from deployments.background import free_port
from deployments.local import PrefectServerFailed, _wait_healthy


def test_a_server_that_exits_is_reported_at_once_with_its_log(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait(timeout=60)
    url = f"http://127.0.0.1:{free_port()}/api"
    with pytest.raises(PrefectServerFailed, match=r"exited with 3; its log: .*server\.log"):
        _wait_healthy(url, process, tmp_path / "server.log", timeout=60)


def test_the_cli_prints_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail() -> None:
        raise PrefectServerFailed("the local Prefect server exited with 3; its log: /x/server.log")

    monkeypatch.setattr(cli, "app", fail)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code != 0
    err = capsys.readouterr().err
    assert err == "shopsync: the local Prefect server exited with 3; its log: /x/server.log\n"
