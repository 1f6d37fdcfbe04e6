"""Samba managed by ctdbd: ``ctdb_samba.smbd`` (4.17's 50.samba) and
``ctdb_samba.netbios`` (48.netbios)."""
