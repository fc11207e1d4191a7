"""`ray job submit` entrypoint for code extraction (same options as `emojiray extract-codes`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/extract_codes.py --vqvae s3://bucket/run1/tokenizer/vqvae \
        --data s3://bucket/emoji64 --out s3://bucket/run1/codes

Ray Data actors (one per GPU) encode every split into code shards.
"""

import sys

from emojiray.cli import main

if __name__ == "__main__":
    sys.exit(main(["extract-codes", *sys.argv[1:]]))
