"""`ray job submit` entrypoint for inpainting (same options as `emojiray inpaint`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/inpaint.py --evaluate --run s3://bucket/run1

measures inpainting on seeded boxes of held-out emoji (in one Ray task on a GPU of the cluster)
and writes inpaint.json and inpaint.png under RUN/extensions.
"""

import sys

from emojiray.cli import main

if __name__ == "__main__":
    sys.exit(main(["inpaint", *sys.argv[1:]]))
