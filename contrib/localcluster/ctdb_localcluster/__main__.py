import sys

from ctdb_localcluster.cli import main

sys.exit(main())
