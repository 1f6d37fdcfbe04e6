"""Databases: TDB files through Samba's libtdb, the 24-byte record header rules,
volatile / persistent / replicated databases as one node holds them."""
