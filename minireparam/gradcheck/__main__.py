"""``python -m minireparam.gradcheck``: gradcheck every registered op and print a table."""
import sys

from . import _main

sys.exit(_main())
