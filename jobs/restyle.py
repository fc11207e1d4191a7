"""`ray job submit` entrypoint for vendor restyling (same options as `emojiray restyle`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/restyle.py --evaluate --run s3://bucket/run1

measures restyling on held-out emoji drawn by both vendors (in one Ray task on a GPU of the
cluster) and writes restyle.json and restyle.png under RUN/extensions.
"""

import sys

from emojiray.cli import main

if __name__ == "__main__":
    sys.exit(main(["restyle", *sys.argv[1:]]))
