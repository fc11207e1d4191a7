"""`ray job submit` entrypoint for the whole pipeline (same options as `emojiray pipeline`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/pipeline.py --preset full --out s3://bucket/emojiray/run1

On the cluster RAY_ADDRESS is set, so the job joins it instead of starting a local Ray.
"""

import sys

from emojiray.cli import main

if __name__ == "__main__":
    sys.exit(main(["pipeline", *sys.argv[1:]]))
