"""`ray job submit` entrypoint for `emojiray condition` (same options).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/condition.py --help

The heavy work runs in one Ray task on a GPU of the cluster when there is one.
"""

import sys

from emojiray.cli import main

if __name__ == "__main__":
    sys.exit(main(["condition", *sys.argv[1:]]))
