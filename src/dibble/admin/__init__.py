"""The admin area: configuration, statistics, sessions, database, projects.

::

    from dibble.admin import AdminAccess, mount_admin

    mount_admin(server)                                   # rules from [admin]
    mount_admin(server, "/ops", AdminAccess(networks=("10.0.0.0/8",)))

or, in the configuration file, ``[admin] enabled = true``.  Only
administrators (and clients in ``[admin] networks``) get in; see
docs/admin.md.  The charts are SVG rendered on the server (``bar_chart``).
"""

from ._access import AdminAccess
from ._area import PAGES, AdminArea, mount_admin
from ._charts import bar_chart, format_value, grouped_bar_chart, nice_ticks, value_ticks
from ._info import Column, Membership, Table, database_tables, masked_config, membership_rows
from ._toggles import TOGGLES, set_toggle, toggle_states

__all__ = [
    "PAGES",
    "TOGGLES",
    "AdminAccess",
    "AdminArea",
    "Column",
    "Membership",
    "Table",
    "bar_chart",
    "database_tables",
    "format_value",
    "grouped_bar_chart",
    "masked_config",
    "membership_rows",
    "mount_admin",
    "nice_ticks",
    "set_toggle",
    "toggle_states",
    "value_ticks",
]
