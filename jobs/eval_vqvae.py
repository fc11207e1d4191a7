"""`ray job submit` entrypoint for tokenizer evaluation (same options as `emojiray eval-vqvae`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/eval_vqvae.py --preset full --checkpoint s3://bucket/run1/tokenizer/vqvae \
        --data s3://bucket/emoji64 --out s3://bucket/run1
"""

import sys

from emojiray.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval-vqvae", *sys.argv[1:]]))
