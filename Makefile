# One-command set-up on a fresh Debian 12 machine (run as root: namespaces need it).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
APT_PKGS := python3 python3-venv python3-pip python3-dev gcc libc6-dev iproute2 procps psmisc ctdb tdb-tools libtdb1 samba smbclient winbind \
            vsftpd apache2 nfs-ganesha nfs-ganesha-vfs libnfs-utils rpcbind dbus-daemon dbus-bin curl iptables

.PHONY: setup demo demo-down test test-fast bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: Makefile pyproject.toml setup.py ctdbcore/db/_bulk.c plugins/ipalloc/pyproject.toml plugins/samba/pyproject.toml plugins/nfs/pyproject.toml plugins/vsftpd/pyproject.toml plugins/httpd/pyproject.toml plugins/winbind/pyproject.toml contrib/localcluster/pyproject.toml contrib/example_plugin/pyproject.toml
	@# samba's, vsftpd's, apache2's, nfs-ganesha's and rpcbind's packages would start
	@# system-wide daemons (nmbd broadcasts on every interface): a policy-rc.d that refuses
	@# service starts is in place for the install. The tests run their own instances in
	@# the nodes' namespaces (ctdb_localcluster.services).
	@if command -v apt-get >/dev/null && ! dpkg -s $(APT_PKGS) >/dev/null 2>&1; then \
		ownpolicy=; if [ ! -e /usr/sbin/policy-rc.d ]; then \
			printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && ownpolicy=1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PKGS); rc=$$?; \
		if [ -n "$$ownpolicy" ]; then rm -f /usr/sbin/policy-rc.d; fi; exit $$rc; fi
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' -e plugins/ipalloc -e plugins/samba -e plugins/nfs -e plugins/vsftpd -e plugins/httpd -e plugins/winbind -e contrib/localcluster -e contrib/example_plugin
	touch $@

# A 3-node cluster in network namespaces; it stays up until `make demo-down`.
demo: setup
	$(BIN)/python -m ctdb_localcluster.demo

demo-down: setup
	$(BIN)/localcluster down

# The whole test suite, multi-node tests included (what CI runs).
test: setup
	$(BIN)/pytest -q -p no:cacheprovider

test-fast: setup
	$(BIN)/pytest -q -p no:cacheprovider -m "not slow"

bench: setup
	$(BIN)/python -m benchmarks.cluster
	$(BIN)/python -m benchmarks.failover

clean:
	rm -rf $(VENV) *.egg-info build ctdbcore/db/_bulk.*.so
