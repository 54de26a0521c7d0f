import sys

from speechport.cli import main

sys.exit(main())
