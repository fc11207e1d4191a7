"""`ray job submit` entrypoint for a tokenizer sweep (same options as `emojiray tune`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/tune.py --preset full --trials 48 --out s3://bucket/emojiray/sweep1

Resubmitting the same command resumes an interrupted sweep without redoing finished trials.
"""

import sys

from emojiray.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
