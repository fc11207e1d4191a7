"""`ray job submit` entrypoint for batch generation (same options as `emojiray sample`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/sample.py --prior s3://bucket/run1/prior_maskgit/prior -n 50000 \
        --out s3://bucket/run1/samples_50k --condition emotion=happy --guidance 2.0

One actor per GPU of the cluster; a resubmitted job keeps the shards already written.
"""

import sys

from emojiray.cli import main

if __name__ == "__main__":
    sys.exit(main(["sample", *sys.argv[1:]]))
