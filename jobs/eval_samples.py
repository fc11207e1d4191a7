"""`ray job submit` entrypoint for measuring a sample run (same options as `emojiray eval-samples`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/eval_samples.py --samples s3://bucket/run1/samples_50k \
        --real s3://bucket/run1/data --out s3://bucket/run1/samples_50k
"""

import sys

from emojiray.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval-samples", *sys.argv[1:]]))
