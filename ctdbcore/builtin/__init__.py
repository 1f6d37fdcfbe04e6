"""Built-in event plugins: 4.17's generic scripts as hooks.

Each module is one plugin, registered as an entry point of ctdb-core in the group
``ctdb.services`` (see the root ``pyproject.toml``):

* :mod:`ctdbcore.builtin.ctdb` -- ``00.ctdb``: script state and database checks at init;
* :mod:`ctdbcore.builtin.reclock` -- ``01.reclock``: the cluster lock's directory;
* :mod:`ctdbcore.builtin.system` -- ``05.system``: file system and memory usage;
* :mod:`ctdbcore.builtin.natgw` -- ``11.natgw``: a NAT gateway for nodes without public IPs;
* :mod:`ctdbcore.builtin.lvs` -- ``91.lvs``: one public address spread with Linux Virtual Server.

00, 01 and 05 are enabled by default, as Debian links them into ``events/legacy`` on
install; natgw and lvs are enabled by configuration.
"""
