"""`ray job submit` entrypoint for the results report of a run (same options as `emojiray report`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/report.py --run s3://bucket/emojiray/run1 --tune s3://bucket/emojiray/sweep1

Writes index.html and images/ to --out (default RUN/report); it reads files only, starts no Ray work.
"""

import sys

from emojiray.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
