"""`ray job submit` entrypoint for the emoji classifier (same options as `emojiray train-classifier`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/train_classifier.py --data s3://bucket/run1/data \
        --out s3://bucket/run1/extensions/classifier --preset full

trains the classifier (emotion, category and vendor heads) with Ray Train through the one driver
(one worker per GPU of the cluster) and writes the model and classifier.json (held-out accuracy per
head) to --out, the Ray Train run to --out/train.
"""

import sys

from emojiray.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-classifier", *sys.argv[1:]]))
