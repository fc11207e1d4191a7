"""`ray job submit` entrypoint for interpolation (same options as `emojiray interpolate`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/interpolate.py --run s3://bucket/run1 --evaluate

Measures path smoothness on held-out pairs in one Ray task (a GPU when the cluster has one); with two
emoji names or files instead of --evaluate it writes their strip and GIFs.
"""

import sys

from emojiray.cli import main

if __name__ == "__main__":
    sys.exit(main(["interpolate", *sys.argv[1:]]))
