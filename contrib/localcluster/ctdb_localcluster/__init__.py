"""N ctdbd nodes on one machine, in network namespaces (root) or on 127.0.0.x.

Quickstart::

    from ctdb_localcluster.cluster import LocalCluster

    lc = LocalCluster("/tmp/ctdb-localcluster", "ctdb")
    lc.up(n=3)
    lc.wait_ok(timeout=60)
    print(lc.run(0, "ctdb", "status").stdout)
    lc.down()

The command line (``localcluster up|down|status|run|...``) and the pytest fixture
``local_cluster`` (module :mod:`ctdb_localcluster.pytest_fixtures`) use the same class.
"""

from ctdb_localcluster.cluster import ClusterError, LocalCluster, NodeState, Options

__all__ = ["ClusterError", "LocalCluster", "NodeState", "Options"]
