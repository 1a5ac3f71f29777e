"""`python -m demo`, which is what `scripts/demo` runs."""

import sys

from demo.run import main

sys.exit(main())
