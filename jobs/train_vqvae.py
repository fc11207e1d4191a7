"""`ray job submit` entrypoint for tokenizer training (same options as `emojiray train-vqvae`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/train_vqvae.py --preset full --data s3://bucket/emoji64 --out s3://bucket/run1/tokenizer

Ray Train workers on the cluster's GPUs; checkpoints go to OUT/ray, so a resubmitted job with
`--resume` continues from the latest one.
"""

import sys

from emojiray.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-vqvae", *sys.argv[1:]]))
