import sys

from emojiray.cli import main

sys.exit(main())
