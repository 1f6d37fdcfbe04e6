"""CTDB 4.17 public IP allocation policies, as pure functions.

State in (addresses with their current holders, the nodemap with what each node
can host, the tunables NoIPFailback/NoIPTakeover), assignment out.  The three
4.17 policies are registered as entry points in the ``ctdb.ipalloc`` group:
``deterministic`` (IPAllocAlgorithm 0), ``nondeterministic`` (1) and ``lcp2``
(2, the default).  See samba-4.17.12 ctdb/server/ipalloc*.c.
"""

from ._state import (
    BANNED,
    DELETED,
    DISABLED,
    DISCONNECTED,
    INACTIVE,
    IP,
    LOG_DEBUG,
    LOG_ERR,
    LOG_INFO,
    LOG_LEVELS,
    LOG_NOTICE,
    LOG_WARNING,
    PERMANENTLY_DISABLED,
    RUNSTATE_RUNNING,
    RUNSTATE_STARTUP,
    STOPPED,
    UNASSIGNED,
    UNHEALTHY,
    IPAllocState,
    NodeState,
    PublicIP,
    ip_distance,
    ip_distance_2_sum,
    ip_key,
    lcp2_imbalance,
    merge_known_ips,
)
from .policies import (
    ALGORITHMS,
    DISTRIBUTION,
    GROUP,
    DeterministicPolicy,
    IPAllocPolicy,
    LCP2Policy,
    NondeterministicPolicy,
    PolicyNotFoundError,
    allocate,
    allocate_list,
    can_host_ips,
    deterministic,
    lcp2,
    nondeterministic,
    policy_for,
)

__all__ = [
    "ALGORITHMS", "BANNED", "DELETED", "DISABLED", "DISCONNECTED", "DISTRIBUTION", "GROUP",
    "INACTIVE", "IP", "LOG_DEBUG", "LOG_ERR", "LOG_INFO", "LOG_LEVELS", "LOG_NOTICE",
    "LOG_WARNING", "PERMANENTLY_DISABLED", "RUNSTATE_RUNNING", "RUNSTATE_STARTUP", "STOPPED",
    "UNASSIGNED", "UNHEALTHY", "DeterministicPolicy", "IPAllocPolicy", "IPAllocState",
    "LCP2Policy", "NodeState", "NondeterministicPolicy", "PolicyNotFoundError", "PublicIP",
    "allocate", "allocate_list", "can_host_ips", "deterministic", "ip_distance",
    "ip_distance_2_sum", "ip_key", "lcp2", "lcp2_imbalance", "merge_known_ips",
    "nondeterministic", "policy_for",
]
