"""VideoGPT's own modules against ours at the same hyper-parameters, in one run.

Needs a checkout of VideoGPT (Yan et al. 2021, github.com/wilson1yan/VideoGPT) passed as
``--videogpt PATH``; without one it prints a line and exits 0. Its modules are loaded by
``benchmarks/videogpt_peer.py``, which says exactly what is stubbed (``pytorch_lightning`` as
``nn.Module`` with a no-op ``save_hyperparameters``, an empty ``skvideo.io``, the package
``__init__`` skipped, ``videogpt.download`` replaced, ``VQVAE.load_from_checkpoint`` patched
to return the VQ-VAE built here); none of it is code the timed steps run.

Hyper-parameters (both sides): VQ-VAE hidden 64, 2 residual blocks, 512 codes of dim 64,
downsampling 4x4x4, clips of 3x16x64x64, batch 4; prior width 144, 4 heads, 4 layers over the
4x16x16 = 1024 tokens, vocabulary 512. VideoGPT's other arguments are its own defaults
(dropout 0.2, attention dropout 0.3, full attention, unconditional); our prior is
``PriorConfig``'s default, dropout 0, unless ``--prior-dropout`` says otherwise (it sets the
embedding and residual dropout; our attention dropout stays at its default 0, because on CPU a
non-zero one takes ``scaled_dot_product_attention`` off its fused kernel and the step is several
times slower). Our VQ-VAE is built in :func:`our_vqvae` with the config's default layout,
whatever that is at the time of the run.

Measures (``--phases``), each the median over ``--rounds`` interleaved rounds:

- ``vqvae_step``: one tokenizer training step: forward + backward + Adam (lr 3e-4) on random
  clips, ``uniform[-1, 1]`` for ours and the same clips halved for VideoGPT (its range is
  [-0.5, 0.5]); VideoGPT's loss is its ``training_step``'s (MSE / 0.06 + commitment), ours
  ``VQVAE(x).loss``. The first step (VideoGPT's codebook data-init) is a warm-up, not timed.
- ``prior_step``: one prior training step including encoding the batch with the frozen
  tokenizer: VideoGPT's ``training_step`` (which encodes under ``no_grad``) + backward + Adam,
  against ``Prior.loss(VQVAE.encode(x))`` + backward + Adam.
- ``sample_b1``, ``sample_b8``: KV-cached sampling of all 1024 tokens at batch 1 and 8, in
  tokens/s, plain multinomial sampling from the full softmax (no top-k, temperature 1) on
  both sides: VideoGPT's own ``VideoGPT.sample(n)`` loop (its tqdm bar replaced by the bare
  iterator) against :func:`videosynth.sampling.ar.generate`. ``sample`` ends by decoding the
  tokens with its VQ-VAE, which is not token sampling: ``vqvae.decode`` is replaced by a cast
  of the tokens to float, so the time is the token loop alone.

Every (phase, model) runs in its own fresh process, so the peak resident set size reported
(``ru_maxrss``: the process's peak, the Python + torch baseline included, which is reported
as well) is that model's alone. The two processes of a phase are alive together but take
turns: each round asks one, then the other (the order alternating between rounds) for one
timed measurement, so load changes on a shared machine hit both alike. Ratios are ours /
VideoGPT's in the measure's unit (seconds: lower is better; tokens/s: higher is better).

    python benchmarks/peers.py --videogpt /path/to/VideoGPT                  # ~2 min on 2 cores
    python benchmarks/peers.py --videogpt /path/to/VideoGPT --phases prior_step --prior-dropout 0.2
    python benchmarks/peers.py --videogpt /path/to/VideoGPT --phases sample_b1 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import videogpt_peer  # noqa: E402 — beside this script

FRAMES, SIZE = videogpt_peer.FRAMES, videogpt_peer.SIZE
BATCH, LR = 4, 3e-4
CODES, DOWNSAMPLE = videogpt_peer.SHARED_VQVAE["codebook_size"], videogpt_peer.SHARED_VQVAE["downsample"]
WIDTH, HEADS, LAYERS = 144, 4, 4
LATENT = tuple(s // d for s, d in zip((FRAMES, SIZE, SIZE), DOWNSAMPLE))  # (t, h, w) token grid: 4x16x16
TOKENS = LATENT[0] * LATENT[1] * LATENT[2]  # tokens per sampled clip
PHASES = {  # name -> (what is timed, unit, batch)
    "vqvae_step": ("VQ-VAE train step", "s", BATCH),
    "prior_step": ("prior train step (+ encode)", "s", BATCH),
    "sample_b1": ("KV-cached sampling, batch 1", "tokens/s", 1),
    "sample_b8": ("KV-cached sampling, batch 8", "tokens/s", 8),
}
MODELS = ("videogpt", "videosynth")
TAG = "@peers "  # prefix of the protocol lines a worker prints (anything else on stdout is ignored)
KIB_PER_MB = 1024  # ru_maxrss is in KiB on Linux


# ---------------------------------------------------------------------------
# the models at the shared hyper-parameters
# ---------------------------------------------------------------------------


def our_vqvae():
    """Our tokenizer at the peers' hyper-parameters, in the config's default layout."""
    from videosynth.models.vqvae import VQVAE, VQVAEConfig

    return VQVAE(VQVAEConfig(**videogpt_peer.SHARED_VQVAE))


def videogpt_models(path: str, prior: bool):
    """VideoGPT's VQ-VAE, and its GPT on top of it when ``prior``: ``(vqvae, gpt or None)``."""
    package = videogpt_peer.load(path)
    vqvae = videogpt_peer.vqvae(package)
    if not prior:
        return vqvae, None
    gpt = videogpt_peer.gpt(package, vqvae, hidden_dim=WIDTH, heads=HEADS, layers=LAYERS)
    return vqvae, gpt


# ---------------------------------------------------------------------------
# worker: one (phase, model) in its own process
# ---------------------------------------------------------------------------


def step_fn(phase: str, model: str, args):
    """``(one_measurement() -> seconds, trained parameter count)`` for a training-step phase."""
    torch.manual_seed(0)
    x = torch.rand(BATCH, 3, FRAMES, SIZE, SIZE) * 2 - 1  # (B, C, T, H, W) in [-1, 1]
    if model == "videogpt":
        vqvae, gpt = videogpt_models(args.videogpt, prior=phase == "prior_step")
        net = gpt if gpt is not None else vqvae
        if gpt is not None:
            loss_fn = lambda: gpt.training_step({"video": x / 2}, 0)  # noqa: E731 — its range is [-0.5, 0.5]
        else:
            loss_fn = lambda: (lambda r: r[0] + r[2]["commitment_loss"])(vqvae(x / 2))  # noqa: E731
    else:
        from videosynth.models.transformer import Prior, PriorConfig

        vqvae = our_vqvae()
        if phase == "prior_step":
            vqvae.eval().requires_grad_(False)
            net = Prior(PriorConfig(vocab_size=CODES, latent_shape=LATENT, n_layer=LAYERS, n_head=HEADS,
                                    n_embd=WIDTH, dropout=args.prior_dropout))

            def loss_fn():
                with torch.no_grad():
                    tokens = vqvae.encode(x)  # (B, t, h, w)
                return net.loss(tokens)
        else:
            net = vqvae
            loss_fn = lambda: vqvae(x).loss  # noqa: E731
    net.train()
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=LR)

    def measure() -> float:
        start = time.perf_counter()
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    return measure, sum(p.numel() for p in params)


def sample_fn(phase: str, model: str, args):
    """``(one_measurement() -> seconds, parameter count)`` for a sampling phase."""
    batch = PHASES[phase][2]
    torch.manual_seed(0)
    if model == "videogpt":
        _, gpt = videogpt_models(args.videogpt, prior=True)
        sys.modules["videogpt.gpt"].tqdm = lambda iterable: iterable  # no progress bar in the timed loop
        gpt.vqvae.decode = lambda codes: codes.float()  # the token loop only (see the module docstring)
        gpt.eval()
        net, run = gpt, lambda: gpt.sample(batch)
    else:
        from videosynth.models.transformer import Prior, PriorConfig
        from videosynth.sampling.ar import generate

        net = Prior(PriorConfig(vocab_size=CODES, latent_shape=LATENT, n_layer=LAYERS, n_head=HEADS,
                                n_embd=WIDTH)).eval()
        g = torch.Generator()
        run = lambda: generate(net, LATENT, batch, generator=g.manual_seed(0))  # noqa: E731

    def measure() -> float:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start

    return measure, sum(p.numel() for p in net.parameters())


def worker(phase: str, model: str, args) -> None:
    """Build, warm up, then answer ``run`` (one timed measurement) until ``done`` (peak RSS)."""
    torch.set_num_threads(args.threads)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MB
    build = step_fn if phase.endswith("_step") else sample_fn
    measure, params = build(phase, model, args)
    measure()  # warm-up (VideoGPT's codebook data-init on the first training step)

    def say(obj: dict) -> None:
        print(TAG + json.dumps(obj), flush=True)

    say({"ready": True, "params": params})
    for line in sys.stdin:
        if line.strip() == "run":
            say({"seconds": measure()})
        else:
            break
    say({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MB,
         "baseline_rss_mb": baseline})


class Worker:
    """The driver's handle on one worker process."""

    def __init__(self, phase: str, model: str, argv: list[str]):
        self.name = model
        cmd = [sys.executable, __file__, "--worker", phase, model, *argv]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(TAG):
                return json.loads(line[len(TAG):])
        raise SystemExit(f"{self.name} worker exited with code {self.proc.wait()} (its stderr is above)")

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.read()


# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------


def run_phase(phase: str, args, argv: list[str]) -> dict:
    """Interleaved rounds of one phase: per model the timings, median, params and peak RSS."""
    workers, info = [], {}
    for model in MODELS:  # one at a time, so builds and warm-ups do not overlap
        workers.append(Worker(phase, model, argv))
        info[model] = workers[-1].read()
    times: dict[str, list[float]] = {m: [] for m in MODELS}
    for r in range(args.rounds):
        for w in (workers if r % 2 == 0 else workers[::-1]):
            times[w.name].append(w.ask("run")["seconds"])
    out = {}
    for w in workers:
        end = w.ask("done")
        w.proc.wait()
        med = statistics.median(times[w.name])
        row = {"seconds_median": med, "seconds_all": times[w.name], "params": info[w.name]["params"], **end}
        if PHASES[phase][1] == "tokens/s":
            row["tokens_per_s"] = PHASES[phase][2] * TOKENS / med
        out[w.name] = row
    return out


def value(row: dict, unit: str) -> float:
    return row["tokens_per_s"] if unit == "tokens/s" else row["seconds_median"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videogpt", default=None, help="path to a checkout of github.com/wilson1yan/VideoGPT")
    p.add_argument("--phases", nargs="+", default=list(PHASES), choices=list(PHASES))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads per process")
    p.add_argument("--prior-dropout", type=float, default=0.0,
                   help="our prior's dropout in the prior_step phase (VideoGPT's is its default, 0.2)")
    p.add_argument("--json", default=str(HERE / "results" / "peers.json"))
    p.add_argument("--worker", nargs=2, metavar=("PHASE", "MODEL"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.videogpt is None:
        print("peers: skipped (pass --videogpt PATH, a checkout of github.com/wilson1yan/VideoGPT)")
        return 0
    if args.worker:
        worker(*args.worker, args)
        return 0
    forwarded = ["--videogpt", args.videogpt, "--threads", str(args.threads), "--prior-dropout",
                 str(args.prior_dropout)]

    load_before = os.getloadavg()
    print(f"load average {load_before[0]:.2f} on {os.cpu_count()} cores; {args.threads} threads, "
          f"{args.rounds} rounds", flush=True)
    results = {}
    for phase in args.phases:
        results[phase] = run_phase(phase, args, forwarded)
        r = results[phase]
        unit = PHASES[phase][1]
        print(f"  {phase}: VideoGPT {value(r['videogpt'], unit):.3f} {unit}, "
              f"videosynth {value(r['videosynth'], unit):.3f} {unit}", flush=True)
    load_after = os.getloadavg()

    print(f"\n{'measure':<36}{'VideoGPT':>12}{'videosynth':>12}{'ratio':>8}{'peak RSS MB (V / ours)':>26}")
    for phase, r in results.items():
        what, unit, _ = PHASES[phase]
        ours, peer = value(r["videosynth"], unit), value(r["videogpt"], unit)
        r["ratio"] = ours / peer
        print(f"{what + f' ({unit})':<36}{peer:>12.3f}{ours:>12.3f}{r['ratio']:>8.2f}"
              f"{r['videogpt']['peak_rss_mb']:>16.0f} / {r['videosynth']['peak_rss_mb']:.0f}")
    print("ratio = videosynth / VideoGPT in the measure's unit (s: lower is better, tokens/s: higher)")
    print(f"load average {load_after[0]:.2f} at the end")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "peers-videogpt", "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "torch": torch.__version__, "python": platform.python_version(), "threads": args.threads,
        "rounds": args.rounds, "cpu_count": os.cpu_count(), "load_avg_before": load_before,
        "load_avg_after": load_after,
        "hyper_parameters": {"clip": [3, FRAMES, SIZE, SIZE], "batch": BATCH,
                             "vq_hidden": videogpt_peer.SHARED_VQVAE["hidden"],
                             "res_blocks": videogpt_peer.SHARED_VQVAE["n_res_blocks"], "codes": CODES,
                             "code_dim": videogpt_peer.SHARED_VQVAE["code_dim"],
                             "downsample": list(DOWNSAMPLE), "prior_width": WIDTH, "heads": HEADS,
                             "layers": LAYERS, "lr": LR, "our_prior_dropout": args.prior_dropout},
        "ratio": "videosynth / VideoGPT in the measure's unit",
        "results": {phase: {"measure": PHASES[phase][0], "unit": PHASES[phase][1], **r}
                    for phase, r in results.items()},
    }, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
