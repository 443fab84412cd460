"""Every service's tables, imported in one place: for Alembic's autogenerate (``env.py``) and for
the controller, which configures every mapper at start.  Only the migrations import a service's
models from outside it (the import-linter contracts in pyproject.toml)."""

from cumulo.compute import console_models as compute_consoles  # noqa: F401
from cumulo.compute import models as compute  # noqa: F401
from cumulo.identity import models as identity  # noqa: F401
from cumulo.identity import node_models as identity_nodes  # noqa: F401
from cumulo.image import models as image  # noqa: F401
from cumulo.network import metering_models as network_metering  # noqa: F401
from cumulo.network import models as network  # noqa: F401
from cumulo.network import qos_models as network_qos  # noqa: F401
from cumulo.network import rbac_models as network_rbac  # noqa: F401
from cumulo.network import trunk_models as network_trunks  # noqa: F401
from cumulo.object import models as object_storage  # noqa: F401
from cumulo.placement import models as placement  # noqa: F401
from cumulo.volume import backup_models as volume_backups  # noqa: F401
from cumulo.volume import group_models as volume_groups  # noqa: F401
from cumulo.volume import models as volume  # noqa: F401
from cumulo.volume import qos_models as volume_qos  # noqa: F401
from cumulo.volume import transfer_models as volume_transfers  # noqa: F401
