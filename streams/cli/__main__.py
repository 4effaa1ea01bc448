import sys

from streams.cli.commands import main

sys.exit(main())
