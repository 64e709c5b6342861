import sys

from mnistlab.commands.main import main

sys.exit(main())
