"""The numbers the issues compare against: the seed's reference implementation and the targets.

One place for them, so the report and the benchmarks quote the same figures. The reference runs
were made on one NVIDIA H100 at 64 px with the reference code's own recipe; a run on another
device or at another image size is not comparable to them (the report says so).
"""

from __future__ import annotations

REFERENCE_DEVICE = "NVIDIA H100"
REFERENCE_IMAGE_SIZE = 64

# The seed's reference VQ-VAE-2 (issue 3): 128 channels, 2 res blocks, K = 512, code dim 64,
# batch 128, Adam 3e-4, fp32, 240 s of training; measured on the held-out split.
REFERENCE_VQVAE = {
    "source": "reference VQ-VAE-2, one H100, 64 px (issue 3)",
    "images_per_s_file_loader": 3054,  # end to end, with its file loader
    "images_per_s_data_on_gpu": 9763,  # data already on the GPU
    "psnr": 25.3,
    "ssim": 0.866,
    "rfid": 57.4,
    "real_vs_real_fid": 33.7,  # the floor of rFID for those set sizes
    "codes_used": {"top": 6, "bottom": 186},
    "codebook_size": {"top": 512, "bottom": 512},
}

# The reference PixelSNAIL sampler (issue 5): hierarchical PixelSNAIL, one full forward pass per
# code position, VQ-VAE decoding included; samples/s by batch size.
REFERENCE_SAMPLER = {
    "source": "reference PixelSNAIL sampler, one H100, 64 px (issue 5)",
    "prior": "pixelsnail",
    "samples_per_s": {8: 2.25, 64: 14.6},
}

# The reference pipeline's generation quality (issue 5): 2,000 PixelSNAIL samples.
REFERENCE_GENERATION = {
    "source": "reference pipeline (PixelSNAIL), one H100, 64 px (issue 5)",
    "prior": "pixelsnail",
    "samples": 2000,
    "fid": 164.9,  # against 740 held-out images
    "fid_heldout_images": 740,
    "fid_train": 145.5,  # against 2,000 training images
    "fid_train_images": 2000,
    "samples_per_s": 28,  # its sampler at batch 250
}

# What the issues ask of this project.
TARGETS = {
    "images_per_s": 30_000,  # VQ-VAE-2 training, end to end
    "psnr": 32.0,  # held-out, dB
    "ssim": 0.97,
    "rfid": 20.0,
    "codes_used_share": 0.95,  # of each level's codebook
    "samples_per_s": {"maskgit": 2000, "transformer": 500},  # KV-cached transformer
    "fid": 60.0,  # generation FID against the held-out split
    "end_to_end": {"samples": 50_000, "seconds": 300},  # sampling + their FID, one H100
}
