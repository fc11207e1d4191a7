"""`ray job submit` entrypoint for training the upscaler (same options as `emojiray train-upscaler`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/train_upscaler.py --data s3://bucket/run1/data --vqvae s3://bucket/run1/tokenizer/vqvae \
            --out s3://bucket/run1/extensions/upscaler --preset default

trains the low-res encoder into the VQ-VAE's codes with Ray Train through the one driver (one
worker per GPU of the cluster) and writes the model and upscaler.json to --out, the Ray Train run
to --out/train.
"""

import sys

from emojiray.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-upscaler", *sys.argv[1:]]))
