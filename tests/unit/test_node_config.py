"""``cumulo node join``'s configuration from the controller's answer (cumulo.ops.node): a controller
that names loopback addresses is reached at the host of --controller, and the node's settings land
in the sections its agents read."""

from __future__ import annotations

import tomllib
from pathlib import Path

from cumulo.core import config as configmod
from cumulo.ops.node import node_config, reachable

SETTINGS = {"host": "c7", "roles": ["compute", "network"], "region": "RegionTwo", "public_host": "127.0.0.1",
            "bus": {"url": "amqp://cumulo:s3cr3t-pw@127.0.0.1:5672/", "prefix": "cloud-a", "rpc_timeout": 30.0},
            "metadata_secret": "md-secret-123456", "ports": {"identity": 5000, "metadata": 8775},
            "compute": {"report_interval": 10.0, "service_down_time": 60},
            "network": {"namespace_prefix": "cumulo", "reconcile_interval": 30.0},
            "volume": {"report_interval": 10.0, "service_down_time": 60, "backups_path": ""}}


def test_loopback_controller_is_reached_at_the_join_url() -> None:
    bus, public, notes = reachable(SETTINGS, "http://10.0.0.5:5000")
    assert bus == "amqp://cumulo:s3cr3t-pw@10.0.0.5:5672/" and public == "10.0.0.5" and len(notes) == 2
    bus, public, notes = reachable(SETTINGS, "http://127.0.0.1:5000")
    assert bus == SETTINGS["bus"]["url"] and public == "127.0.0.1" and not notes
    other = {**SETTINGS, "bus": {**SETTINGS["bus"], "url": "amqp://u:p@mq.example:5672/"}, "public_host": "api.example"}
    assert reachable(other, "http://10.0.0.5:5000") == ("amqp://u:p@mq.example:5672/", "api.example", [])


def test_node_config_loads_as_the_agents_read_it(tmp_path: Path) -> None:
    data, _ = node_config(SETTINGS, "http://10.0.0.5:5000", tmp_path, "10.0.0.7")
    path = tmp_path / "cumulo.toml"
    path.write_text(configmod.to_toml(data))
    assert tomllib.loads(path.read_text())["network"]["tunnel_address"] == "10.0.0.7"
    cfg = configmod.load(path, env={}, state_dir=str(tmp_path))
    assert cfg.bus.url == "amqp://cumulo:s3cr3t-pw@10.0.0.5:5672/" and cfg.bus.prefix == "cloud-a"
    assert cfg.compute.host == cfg.volume.host == "c7" and cfg.compute.metadata_secret == "md-secret-123456"
    assert cfg.public_host == "10.0.0.5" and cfg.api.region == "RegionTwo" and cfg.volume.export_host == "10.0.0.7"
    assert cfg.services == ["compute", "network"] and not cfg.compute.local_node and not cfg.volume.local_node
    assert cfg.logging.file == str(tmp_path / "cumulo-node.log")
