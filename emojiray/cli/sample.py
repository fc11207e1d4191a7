"""`emojiray sample`: many samples from a prior with a Ray actor pool (resumable, seeded)."""

from __future__ import annotations

from emojiray.cli.common import config_from_args, finish_parser


def register(sub) -> None:
    p = sub.add_parser("sample", help="generate samples from a trained prior with a Ray actor pool")
    p.add_argument("--prior", required=True, help="prior URI (e.g. <train-prior out>/prior)")
    p.add_argument("--vqvae", help="VQ-VAE URI (default: the one the prior was trained on)")
    p.add_argument("-n", "--num-samples", type=int, help="how many samples (default: sample.n)")
    p.add_argument("--out", required=True, help="where to write shards/, png/ and manifest.json")
    p.add_argument("--condition", help="name=value (e.g. emotion=happy), name=all (every value in turn), "
                                       "name=data (the training mix; default for conditional priors) or none")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (1 = plain conditional)")
    p.add_argument("--temperature", type=float, help="sampling temperature (0 = greedy)")
    p.add_argument("--top-k", type=int, help="keep the k most likely codes (0 = off)")
    p.add_argument("--top-p", type=float, help="nucleus sampling mass (1 = off)")
    p.add_argument("--maskgit-steps", type=int, help="MaskGIT parallel decoding steps")
    p.add_argument("--choice-temperature", type=float,
                   help="MaskGIT: scale of the Gumbel noise on the confidences that choose which codes to keep")
    p.add_argument("--seed", type=int, help="run seed (default: sample.seed)")
    p.add_argument("--batch-size", type=int, help="samples per forward batch (default: sample.batch_size)")
    p.add_argument("--shard-size", type=int, help="samples per shard (default: sample.shard_size)")
    p.add_argument("--actors", type=int, help="actors (default: one per GPU, or per free CPU)")
    p.add_argument("--no-png", action="store_true", help="write Parquet shards only, no PNG per sample")
    finish_parser(p, run, "replace samples already at --out")


def run(args) -> int:
    from emojiray.generate.sample_run import sample_run

    cfg = config_from_args(args, **{"sample.n": args.num_samples, "sample.seed": args.seed,
                                    "sample.batch_size": args.batch_size, "sample.shard_size": args.shard_size,
                                    "sample.actors": args.actors, "sample.png": False if args.no_png else None})
    params = {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p,
              "guidance": args.guidance, "maskgit_steps": args.maskgit_steps,
              "choice_temperature": args.choice_temperature}
    sample_run(args.prior, args.out, cfg.sample.n, vqvae=args.vqvae, cfg=cfg.sample, ray_cfg=cfg.ray,
               condition=args.condition, params=params, force=args.force)
    return 0
