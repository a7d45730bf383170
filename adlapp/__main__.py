import sys

from adlapp.cli import main

sys.exit(main())
