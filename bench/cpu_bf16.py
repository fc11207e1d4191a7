"""Benchmark: the tokenizer's bare training loop in fp32 and under bf16 autocast on a CPU, same time budget.

    python bench/cpu_bf16.py smoke 90 fp32,bf16
    python bench/cpu_bf16.py ref 90 fp32,bf16      # the reference-sized model (128 ch, K 512, D 64, batch 128)

Trains ``VQVAEFamily`` through ``harness.run`` (no Ray) on the 32 px train split in memory for the
given seconds per mode, then measures the val split in fp32 (PSNR, SSIM, codes used). Prints one
line per mode and the JSON of all. A measurement, not a test.
"""
import sys, time, torch, numpy as np, contextlib, json
from emojiray.config import load_config
from emojiray.data.shards import read_arrays
from emojiray.train import harness
import emojiray.train.vqvae_loop as VL
size_args = {"smoke": [], "ref": ["model.channels=128","model.codebook_size=[512,512]","model.code_dim=[64,64]","train.batch_size=128"]}[sys.argv[1]]
seconds=float(sys.argv[2])
train,_=read_arrays("results/bench/data-32",("train",),()); val,_=read_arrays("results/bench/data-32",("val",),())
out={}
for mode in sys.argv[3].split(","):
    VL.autocast = (lambda d,b: torch.autocast("cpu",dtype=torch.bfloat16)) if mode=="bf16" else (lambda d,b: contextlib.nullcontext())
    cfg=load_config("smoke",size_args+[f"train.max_seconds={seconds}","train.epochs=100000","train.report_every_s=0"])
    torch.manual_seed(0)
    fam=VL.VQVAEFamily(cfg,{"image_size":32,"examples":len(train)})
    fam.schedule.report_every_s=0
    s=harness.run(fam,harness.in_memory_batches({"image":torch.from_numpy(train)},cfg.train.batch_size),None,harness.no_report)
    VL.autocast = lambda d,b: contextlib.nullcontext()  # evaluate in fp32 for both
    fam.model.eval()
    with torch.no_grad(): m,_=fam.evaluate(harness.sequential_batches({"image":torch.from_numpy(val)},256)())
    out[mode]={"steps":s["step"],"images_per_s":s["step"]*cfg.train.batch_size/s["train_seconds"],"val_psnr":m["val_psnr"],"val_ssim":m["val_ssim"],
               "codes_used_top":m["codes_used_top"],"codes_used_bottom":m["codes_used_bottom"]}
    print(mode,out[mode],flush=True)
print(json.dumps(out))
