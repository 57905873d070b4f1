"""``ops.preflight``: the checks ``serve`` makes before it touches anything."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from listserv import config as configuration
from listserv.errors import ConfigError
from listserv.ops.preflight import (
    CannotStart,
    DataDirLock,
    data_dir_problem,
    make_data_dir,
    port_problem,
)
from tests.conftest import write_config


def at(tmp_path: Path, data_dir: Path) -> configuration.Config:
    return configuration.load(write_config(tmp_path, server={"data_dir": str(data_dir)}))


def test_a_data_dir_that_can_be_made_is_made_and_nothing_before(tmp_path: Path) -> None:
    cfg = at(tmp_path, tmp_path / "a" / "b" / "var")
    assert data_dir_problem(cfg) is None
    assert not (tmp_path / "a").exists()          # check creates nothing
    assert make_data_dir(cfg).is_dir()


@pytest.mark.parametrize(("layout", "words"), [
    ("file-is-data-dir", "is a file, not a directory"),
    ("file-in-the-path", "cannot create"),
])
def test_a_file_in_the_way_is_named(tmp_path: Path, layout: str, words: str) -> None:
    (tmp_path / "x").write_text("")
    data_dir = tmp_path / "x" if layout == "file-is-data-dir" else tmp_path / "x" / "y" / "var"
    cfg = at(tmp_path, data_dir)
    problem = data_dir_problem(cfg)
    assert problem is not None and words in problem and str(tmp_path / "x") in problem
    with pytest.raises(ConfigError, match=r"\[server\] data_dir: "):
        make_data_dir(cfg)


def test_the_lock_is_exclusive_names_its_holder_and_goes_with_it(tmp_path: Path) -> None:
    first, second = DataDirLock(tmp_path), DataDirLock(tmp_path)
    first.acquire()
    assert (tmp_path / "listserv.lock").read_text() == f"{os.getpid()}\n"
    with pytest.raises(CannotStart, match=rf"another listserv \(PID {os.getpid()}\) is already"
                                          rf" serving {tmp_path}"):
        second.acquire()
    first.release()
    second.acquire()      # a stale file is no obstacle: the kernel's lock is what counts
    second.release()


def test_a_port_in_use_is_found_and_port_zero_never_is() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert port_problem("127.0.0.1", port) == \
            "address already in use (another program listens there)"
    assert port_problem("127.0.0.1", port) is None   # free again once the holder is gone
    assert port_problem("127.0.0.1", 0) is None
    assert "no such address" in (port_problem("192.0.2.1", 8025) or "")
