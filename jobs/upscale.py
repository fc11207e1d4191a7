"""`ray job submit` entrypoint for super-resolution (same options as `emojiray upscale`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/upscale.py --evaluate --run s3://bucket/run1

measures the upscaler against bicubic upscaling on held-out emoji (in one Ray task on a GPU of the
cluster) and writes upscale.json and upscale.png under RUN/extensions.
"""

import sys

from emojiray.cli import main

if __name__ == "__main__":
    sys.exit(main(["upscale", *sys.argv[1:]]))
