"""`ray job submit` entrypoint for conditional generation sheets (same options as `emojiray condition`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/condition.py --run s3://bucket/run1 --preset full \
        --prior s3://bucket/run1/prior_maskgit/prior \
        --prior s3://bucket/run1/extensions/prior_maskgit_category/prior \
        --samples maskgit=s3://bucket/run1/samples_maskgit

draws samples per emotion / category value (one Ray task on a GPU of the cluster) and writes
condition_<label>*.png and condition.json (classifier agreement, Inception Score, FID per value)
under RUN/extensions.
"""

import sys

from emojiray.cli import main

if __name__ == "__main__":
    sys.exit(main(["condition", *sys.argv[1:]]))
