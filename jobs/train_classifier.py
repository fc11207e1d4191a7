"""`ray job submit` entrypoint for `emojiray train-classifier` (same options).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/train_classifier.py --help

The heavy work runs in one Ray task on a GPU of the cluster when there is one.
"""

import sys

from emojiray.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-classifier", *sys.argv[1:]]))
