"""The TOML file: the embedded default loads; every fault is one clear line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from listserv import config as configuration
from listserv.errors import ConfigError
from tests.conftest import LIST, MODERATOR, ROOT, write_config


def test_embedded_default_loads() -> None:
    cfg = configuration.load(ROOT / "config" / "listserv.toml")
    assert cfg.server.port == 8025
    assert cfg.server.host == "127.0.0.1"
    assert cfg.delivery.transport == "maildir"
    (mlist,) = cfg.lists
    assert mlist.address == LIST
    assert mlist.moderators == (MODERATOR,)
    assert mlist.subscription_policy == "confirm_then_approve"
    assert mlist.post_policy == "moderate_all"
    assert mlist.list_id == "soziale.arbeit.an.schulen.gelsenkirchen.de"
    assert mlist.request_address == "soziale.arbeit.an.schulen-request@gelsenkirchen.de"


def test_relative_data_dir_is_made_absolute(tmp_path: Path, monkeypatch) -> None:
    path = write_config(tmp_path, server={"data_dir": "var"})
    monkeypatch.chdir(tmp_path)
    cfg = configuration.load(path)
    assert cfg.server.data_dir == tmp_path / "var"


def test_addresses_are_normalised(tmp_path: Path) -> None:
    path = write_config(tmp_path, lists=[{
        "address": "Soziale.Arbeit.an.Schulen@Gelsenkirchen.DE", "display_name": "SAS",
        "moderators": ["Koordination@gelsenkirchen.de"]}])
    (mlist,) = configuration.load(path).lists
    assert mlist.address == LIST
    assert mlist.moderators == (MODERATOR,)


BAD = [
    ({"server": {"port": "8025"}}, "[server] port: must be an integer"),
    ({"server": {"port": True}}, "[server] port: must be an integer"),
    ({"server": {"protocol": "http"}}, "[server] protocol: must be one of smtp, lmtp"),
    ({"server": {"prot": "smtp"}}, "[server] prot: unknown key"),
    ({"server": {"tls_cert": "/nonexistent/cert.pem", "tls_key": "/nonexistent/key.pem"}},
     "[server] tls_cert: cannot read /nonexistent/cert.pem"),
    ({"server": {"tls_cert": "/etc/hostname"}}, "[server] tls_cert, tls_key: set both or neither"),
    ({"server": {"timezone": "Europe/Gelsenkirchen"}}, "[server] timezone: unknown time zone"),
    ({"delivery": {"verp": "yes"}}, "[delivery] verp: must be true or false"),
    ({"delivery": {"smtp_starttls": "maybe"}}, "[delivery] smtp_starttls: must be one of"),
    ({"lists": [{"address": "not-an-address", "display_name": "x", "moderators": [MODERATOR]}]},
     "[lists.0] address: 'not-an-address' is not a valid address"),
    ({"lists": [{"address": LIST, "display_name": "x", "moderators": ["koordination@"]}]},
     "[lists.0] moderators: 'koordination@' is not a valid address"),
    ({"lists": [{"address": LIST, "display_name": "x", "moderators": MODERATOR}]},
     "[lists.0] moderators: must be a list of strings"),
    ({"lists": [{"address": LIST, "display_name": "x", "moderators": []}]},
     "[lists.0] moderators: at least one moderator is needed"),
    ({"lists": [{"address": LIST, "moderators": [MODERATOR]}]},
     "[lists.0] display_name: required key is missing"),
    ({"lists": [{"address": LIST, "display_name": "x", "moderators": [MODERATOR]},
                {"address": LIST.upper(), "display_name": "y", "moderators": [MODERATOR]}]},
     f"[lists.1] address: {LIST} is configured twice"),
    ({"lists": [{"address": LIST, "display_name": "x", "moderators": [MODERATOR],
                 "language": "fr"}]}, "[lists.0] language: must be one of de, en"),
    ({"lists": [{"address": LIST, "display_name": "x", "moderators": [MODERATOR],
                 "hold_days": 0}]}, "[lists.0] hold_days: must be positive"),
]


@pytest.mark.parametrize(("tables", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_config_names_file_table_and_key(tmp_path: Path, tables, message: str) -> None:
    path = write_config(tmp_path, **tables)
    with pytest.raises(ConfigError) as info:
        configuration.load(path)
    text = str(info.value)
    assert text.startswith(f"{path}: "), text
    assert message in text
    assert "\n" not in text


def test_the_web_endpoint_needs_a_port_of_its_own(tmp_path: Path) -> None:
    path = write_config(tmp_path, server={"port": 8025},
                        extra='[web]\nport = 8025\nbase_url = "https://x"\n')
    with pytest.raises(ConfigError, match=r"\[web\] port: 8025 is the SMTP port of \[server\]"):
        configuration.load(path)


def test_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text("[server\nport = 1\n")
    with pytest.raises(ConfigError, match=r"x\.toml: not valid TOML"):
        configuration.load(path)


def test_unknown_top_level_table(tmp_path: Path) -> None:
    path = write_config(tmp_path, extra="[serverr]\nport = 1\n")
    with pytest.raises(ConfigError, match="unknown table or key 'serverr'"):
        configuration.load(path)


def test_no_lists(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text("[server]\nport = 25\n")
    with pytest.raises(ConfigError, match="no \\[\\[lists\\]\\] configured"):
        configuration.load(path)


@pytest.mark.parametrize("command", ["check", "serve", "init"])
def test_cli_bad_config_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    path = write_config(tmp_path, server={"port": "eighty"})
    proc = subprocess.run(
        [sys.executable, "-m", "listserv", command, "--config", str(path)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"{path}: [server] port: must be an integer, got 'eighty'"]
    assert "Traceback" not in proc.stderr


def test_cli_missing_config_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "listserv", "check", "--config", str(tmp_path / "nope.toml")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"{tmp_path / 'nope.toml'}: file not found"


def test_cli_config_from_environment(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "listserv", "check"], capture_output=True, text=True,
        timeout=60, cwd=tmp_path,
        env={"LISTSERV_CONFIG": str(path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{path}: OK")
