"""`ray job submit` entrypoint for prior training (same options as `emojiray train-prior`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/train_prior.py --preset full --codes s3://bucket/run1/codes --kind maskgit \
        --condition emotion --out s3://bucket/run1/prior_maskgit
"""

import sys

from emojiray.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-prior", *sys.argv[1:]]))
