"""`ray job submit` entrypoint for data preparation (same options as `emojiray data prepare`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/prepare_data.py --source npm:google,twitter --size 64 --out s3://bucket/emoji64
"""

import sys

from emojiray.cli import main

if __name__ == "__main__":
    sys.exit(main(["data", "prepare", *sys.argv[1:]]))
