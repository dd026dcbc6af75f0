import sys

from tinycifar.cli import main

sys.exit(main())
