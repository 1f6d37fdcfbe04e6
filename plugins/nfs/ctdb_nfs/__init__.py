"""ctdb-nfs: CTDB 4.17's ``60.nfs`` (:mod:`ctdb_nfs.plugin`) and ``06.nfs``
(:mod:`ctdb_nfs.pre`) event scripts as ctdbd plugins, the NFS callout interface
(:mod:`ctdb_nfs.callout`) with built-in kernel-nfsd and NFS-Ganesha backends,
``nfs-checks.d`` (:mod:`ctdb_nfs.checks`), NFS tickles (:mod:`ctdb_nfs.tickles`) and
``statd-callout`` (:mod:`ctdb_nfs.statd`, console script ``ctdb-statd-callout``)."""
