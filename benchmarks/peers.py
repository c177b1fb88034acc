"""Peers' own modules against ours, side by side in one run: VideoGPT's, and diffusers' video modules.

Each peer is a flag; without one the script prints a line and exits 0.

``--videogpt PATH``: VideoGPT (Yan et al. 2021, github.com/wilson1yan/VideoGPT) against the
two-stage family. Needs a checkout passed as the path. Its modules are loaded by
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

``--diffusers``: diffusers' ``LatteTransformer3DModel``, ``CogVideoXTransformer3DModel``,
``FlowMatchEulerDiscreteScheduler`` and ``AutoencoderKLCogVideoX`` against the flow family, at the
sizes of the shipped flow and KL-tokenizer configs (``--flow-config``, ``--tokenizer-config``).
Needs diffusers installed (the ``bench`` extra); without it, one line says how to install it.
``benchmarks/diffusers_peer.py`` builds both sides and lists every mismatch and how it is
equalised. Measures: ``dit_step`` (one DiT training step against Latte and CogVideoX, batch of the
flow config), ``sample`` (seconds per clip: 16 Euler steps with guidance 2 over the batch taken
twice, then the decode, against the diffusers loop with Latte or CogVideoX and the CogVideoX
VAE; a round's value for these two is the mean of 10 steps / 3 sampling calls, as single calls vary too
much to settle a ratio), ``ae_quality`` (our KL tokenizer against the CogVideoX VAE, each trained for
``--ae-seconds`` of CPU time, then validation PSNR / SSIM). ``--tiny`` runs every phase at test
sizes (a 32-wide DiT, batch 2, 2 sampling steps, 2 s of autoencoder training).

Every (phase, model) runs in its own fresh process, so the peak resident set size reported
(``ru_maxrss``: the process's peak, the Python + torch baseline included, which is reported
as well; for diffusers after the libraries each side imports, so the models' own memory is the
difference) is that model's alone. The processes of a timed phase are alive together but take
turns: each round asks one, then the next (the order reversed every other round) for one
timed measurement, so load changes on a shared machine hit all alike. ``ae_quality`` trains its
models one after the other, each with the machine to itself. Ratios are ours / the peer's in the
measure's unit (seconds: lower is better; tokens/s: higher is better); for ``ae_quality`` the
differences ours - peer in PSNR (dB) and SSIM.

    python benchmarks/peers.py --videogpt /path/to/VideoGPT                  # ~2 min on 2 cores
    python benchmarks/peers.py --videogpt /path/to/VideoGPT --phases prior_step --prior-dropout 0.2
    python benchmarks/peers.py --videogpt /path/to/VideoGPT --phases sample_b1 --rounds 3
    python benchmarks/peers.py --diffusers --rounds 5 --ae-seconds 150
    python benchmarks/peers.py --diffusers --tiny --rounds 1 --json /tmp/peers-tiny.json
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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import diffusers_peer  # noqa: E402 — beside this script; imports diffusers only inside its builders
import videogpt_peer  # noqa: E402


@dataclass(frozen=True)
class Phase:
    """One measure: what is timed, its unit, the clips (or tokens) per measurement, and the models
    that run it (the peer's first, ``videosynth`` last)."""

    what: str
    unit: str  # "s" | "s/clip" | "tokens/s" | "dB" (a training budget's validation PSNR)
    count: int  # tokens (tokens/s) or clips (s/clip) per measurement; 1 otherwise
    models: tuple[str, ...]
    batch: int = 0  # the sampling batch of a VideoGPT phase

    @property
    def once(self) -> bool:
        """A training budget: each model runs once, alone, instead of in interleaved rounds."""
        return self.unit == "dB"


OURS = "videosynth"
HIGHER_IS_BETTER = ("tokens/s", "dB")

FRAMES, SIZE = videogpt_peer.FRAMES, videogpt_peer.SIZE
BATCH, LR = 4, 3e-4
CODES, DOWNSAMPLE = videogpt_peer.SHARED_VQVAE["codebook_size"], videogpt_peer.SHARED_VQVAE["downsample"]
WIDTH, HEADS, LAYERS = 144, 4, 4
LATENT = tuple(s // d for s, d in zip((FRAMES, SIZE, SIZE), DOWNSAMPLE))  # (t, h, w) token grid: 4x16x16
TOKENS = LATENT[0] * LATENT[1] * LATENT[2]  # tokens per sampled clip
VIDEOGPT_PHASES = {
    "vqvae_step": Phase("VQ-VAE train step", "s", 1, ("videogpt", OURS)),
    "prior_step": Phase("prior train step (+ encode)", "s", 1, ("videogpt", OURS)),
    "sample_b1": Phase("KV-cached sampling, batch 1", "tokens/s", TOKENS, ("videogpt", OURS), batch=1),
    "sample_b8": Phase("KV-cached sampling, batch 8", "tokens/s", 8 * TOKENS, ("videogpt", OURS), batch=8),
}
# ae_quality: CPU seconds (per thread) of training per autoencoder, clips rendered to train on and to validate
AE = {"ae_seconds": 150.0, "ae_train_clips": 2048, "ae_val_clips": 64}
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
    batch = VIDEOGPT_PHASES[phase].batch
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


def videogpt_build(phase: str, model: str, args):
    """``(one_measurement, info)`` of a VideoGPT phase."""
    build = step_fn if phase.endswith("_step") else sample_fn
    measure, params = build(phase, model, args)
    return measure, {"params": params}


def videogpt_hyper_parameters(args) -> dict:
    s = videogpt_peer.SHARED_VQVAE
    return {"clip": [3, FRAMES, SIZE, SIZE], "batch": BATCH, "vq_hidden": s["hidden"],
            "res_blocks": s["n_res_blocks"], "codes": CODES, "code_dim": s["code_dim"],
            "downsample": list(DOWNSAMPLE), "prior_width": WIDTH, "heads": HEADS, "layers": LAYERS, "lr": LR,
            "our_prior_dropout": args.prior_dropout}


# ---------------------------------------------------------------------------
# the diffusers peer (benchmarks/diffusers_peer.py builds both sides)
# ---------------------------------------------------------------------------


def diffusers_phases(tiny: bool) -> dict[str, Phase]:
    clips = diffusers_peer.sample_settings(tiny)["batch"]
    return {
        "dit_step": Phase("DiT train step", "s", 1, ("latte", "cogvideox", OURS)),
        "sample": Phase("sampling + decode", "s/clip", clips, ("latte", "cogvideox", OURS)),
        "ae_quality": Phase("autoencoder PSNR at equal CPU time", "dB", 1, ("cogvideox", OURS)),
    }


def diffusers_setup(args):
    return diffusers_peer.flow_setup(args.flow_config, args.tokenizer_config, args.tiny)


def diffusers_build(phase: str, model: str, args):
    """``(one_measurement or None, info)`` of a diffusers phase (``ae_quality`` trains here, at build)."""
    setup = diffusers_setup(args)
    if phase == "dit_step":
        return diffusers_peer.dit_step(model, setup)
    if phase == "sample":
        return diffusers_peer.sample(model, setup, args.tiny)
    return None, diffusers_peer.ae_quality(model, setup, args.ae_seconds, args.threads, args.ae_train_clips,
                                           args.ae_val_clips)


def diffusers_hyper_parameters(args) -> dict:
    import diffusers

    from videosynth.config import to_dict

    setup = diffusers_setup(args)
    tok = setup.tokenizer
    return {"diffusers": diffusers.__version__, "flow_config": str(args.flow_config),
            "tokenizer_config": str(args.tokenizer_config), "tiny": args.tiny, "dit": to_dict(setup.dit),
            "condition": {"kind": setup.condition.kind, "classes": setup.condition.num_classes,
                          "dim": setup.condition.dim, "dropout": setup.condition.dropout},
            "dit_batch": setup.dit_batch, "dit_optim": to_dict(setup.flow.optim),
            "time_sampling": setup.flow.loss.time_sampling, "latte_layers": diffusers_peer.latte_layers(setup.dit),
            "sample": diffusers_peer.sample_settings(args.tiny), "tokenizer": to_dict(tok.model),
            "ae_batch": setup.ae_batch, "ae_optim": to_dict(tok.optim), "ae_seconds": args.ae_seconds,
            "ae_clock": "process CPU seconds / threads", "ae_train_clips": args.ae_train_clips,
            "ae_val_clips": args.ae_val_clips, "clip": [3, tok.data.frames, tok.data.size, tok.data.size]}


def ae_defaults(args) -> None:
    """Fill the ``ae_quality`` settings not given: :data:`AE` (``--tiny``: :data:`diffusers_peer.TINY`'s)."""
    tiny = diffusers_peer.TINY
    for key in AE:
        if getattr(args, key) is None:
            setattr(args, key, tiny[key] if args.tiny else AE[key])


# ---------------------------------------------------------------------------
# the peers
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """A peer the driver runs: its phases, how a worker builds one (phase, model), what the JSON records."""

    name: str  # the flag (--NAME) and the JSON's "peers-NAME"
    label: str
    phases: Callable[[argparse.Namespace], dict[str, Phase]]
    build: Callable  # (phase, model, args) -> (measure() -> seconds, or None for a budget phase; info dict)
    hyper_parameters: Callable[[argparse.Namespace], dict]
    forwarded: Callable[[argparse.Namespace], list[str]]  # the flags a worker needs
    missing: Callable[[argparse.Namespace], str | None]  # a line saying why it cannot run, or None
    json: str  # the default results file under benchmarks/results/
    preload: Callable[[str, str], None] = lambda phase, model: None  # imports counted in the baseline RSS


PEERS = {
    "videogpt": Peer(
        "videogpt", "VideoGPT", lambda args: VIDEOGPT_PHASES, videogpt_build, videogpt_hyper_parameters,
        lambda args: ["--videogpt", args.videogpt, "--prior-dropout", str(args.prior_dropout)],
        lambda args: None, "peers.json"),
    "diffusers": Peer(
        "diffusers", "diffusers", lambda args: diffusers_phases(args.tiny), diffusers_build,
        diffusers_hyper_parameters,
        lambda args: ["--diffusers", "--flow-config", str(args.flow_config), "--tokenizer-config",
                      str(args.tokenizer_config), *(["--tiny"] if args.tiny else []), "--ae-seconds",
                      str(args.ae_seconds), "--ae-train-clips", str(args.ae_train_clips), "--ae-val-clips",
                      str(args.ae_val_clips)],
        lambda args: None if diffusers_peer.available() else
        f"peers --diffusers: skipped (diffusers is not installed: {diffusers_peer.INSTALL})",
        "peers-diffusers.json", diffusers_peer.preload),
}


# ---------------------------------------------------------------------------
# worker: one (phase, model) in its own process
# ---------------------------------------------------------------------------


def worker(peer: Peer, phase: str, model: str, args) -> None:
    """Build, warm up, then answer ``run`` (one timed measurement) until ``done`` (peak RSS).

    A budget phase (``Phase.once``) does its whole run while building and answers only ``done``."""
    torch.set_num_threads(args.threads)
    peer.preload(phase, model)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MB
    measure, info = peer.build(phase, model, args)
    if measure is not None:
        measure()  # warm-up (VideoGPT's codebook data-init on the first training step)

    def say(obj: dict) -> None:
        print(TAG + json.dumps(obj), flush=True)

    say({"ready": True, **info})
    for line in sys.stdin:
        if line.strip() == "run":
            say({"seconds": measure()})
        else:
            break
    say({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MB,
         "baseline_rss_mb": baseline})


class Worker:
    """The driver's handle on one worker process."""

    def __init__(self, peer: Peer, phase: str, model: str, argv: list[str]):
        self.name = model
        cmd = [sys.executable, __file__, "--worker", peer.name, phase, model, *argv]
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

    def finish(self) -> dict:
        end = self.ask("done")
        self.proc.wait()
        return end


# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------


def run_once(peer: Peer, name: str, phase: Phase, argv: list[str]) -> dict:
    """A budget phase: each model in its own process, one after the other: its result and peak RSS."""
    out = {}
    for model in phase.models:
        w = Worker(peer, name, model, argv)
        info = w.read()
        info.pop("ready")
        out[model] = {**info, **w.finish()}
    return out


def run_phase(peer: Peer, name: str, phase: Phase, args, argv: list[str]) -> dict:
    """Interleaved rounds of one phase: per model the timings, median, its build's info and peak RSS.

    With ``--processes P`` the rounds run in P sets of fresh worker processes, one set after the other,
    and the median is over all of them: one process's timings drift together (its allocator's state,
    where its memory landed), which more rounds in the same processes do not average out."""
    if phase.once:
        return run_once(peer, name, phase, argv)
    times: dict[str, list[float]] = {m: [] for m in phase.models}
    info: dict[str, dict] = {}
    rss: dict[str, dict] = {m: {} for m in phase.models}  # the highest of every set's memory readings
    for _ in range(args.processes):
        workers = []
        for model in phase.models:  # one at a time, so builds and warm-ups do not overlap
            workers.append(Worker(peer, name, model, argv))
            info[model] = workers[-1].read()
            info[model].pop("ready")
        for r in range(args.rounds):
            for w in (workers if r % 2 == 0 else workers[::-1]):
                times[w.name].append(w.ask("run")["seconds"])
        for w in workers:
            rss[w.name] = {k: max(v, rss[w.name].get(k, v)) for k, v in w.finish().items()}
    out = {}
    for model in phase.models:
        med = statistics.median(times[model])
        row = {"seconds_median": med, "seconds_all": times[model], "processes": args.processes, **info[model],
               **rss[model]}
        if phase.unit == "tokens/s":
            row["tokens_per_s"] = phase.count / med
        elif phase.unit == "s/clip":
            row["seconds_per_clip"] = med / phase.count
        out[model] = row
    return out


def value_key(unit: str) -> str:
    """The key of a result row that holds its value in ``unit``."""
    return {"tokens/s": "tokens_per_s", "s/clip": "seconds_per_clip", "dB": "psnr"}.get(unit, "seconds_median")


def compare(phase: Phase, r: dict) -> None:
    """Add to the phase's result ``r`` ours against each peer model: ``ratios`` (ours / theirs) or, for a
    budget phase, ``psnr_differences_db`` / ``ssim_differences`` (ours - theirs); ``ratio`` / ``psnr_difference_db``
    against the first."""
    peers = phase.models[:-1]
    ours = r[OURS]
    if phase.once:
        r["psnr_differences_db"] = {m: ours["psnr"] - r[m]["psnr"] for m in peers}
        r["ssim_differences"] = {m: ours["ssim"] - r[m]["ssim"] for m in peers}
        r["psnr_difference_db"] = r["psnr_differences_db"][peers[0]]
        return
    key = value_key(phase.unit)
    r["ratios"] = {m: ours[key] / r[m][key] for m in peers}
    r["ratio"] = r["ratios"][peers[0]]


def print_table(peer: Peer, phases: dict[str, Phase], results: dict) -> None:
    print(f"\n{'measure':<44}{peer.label:>12}{'videosynth':>12}{'ratio':>8}  peak RSS MB ({peer.label} / ours)")
    for name, r in results.items():
        phase = phases[name]
        key = value_key(phase.unit)
        for model in phase.models[:-1]:
            what = phase.what + f" ({phase.unit})" + (f" vs {model}" if len(phase.models) > 2 else "")
            compared = (f"{r['psnr_differences_db'][model]:>+8.2f}" if phase.once
                        else f"{r['ratios'][model]:>8.2f}")
            print(f"{what:<44}{r[model][key]:>12.3f}{r[OURS][key]:>12.3f}{compared}"
                  f"  {r[model]['peak_rss_mb']:>8.0f} / {r[OURS]['peak_rss_mb']:.0f}")
    budget = any(phases[name].once for name in results)
    print(f"ratio = videosynth / {peer.label} in the measure's unit (s: lower is better, tokens/s: higher)"
          + ("; for dB the difference videosynth - peer" if budget else ""))


def run_peer(peer: Peer, args) -> int:
    all_phases = peer.phases(args)
    chosen = [p for p in (args.phases or all_phases) if p in all_phases]
    if not chosen:
        raise SystemExit(f"--phases {' '.join(args.phases)}: none is a phase of --{peer.name} "
                         f"({', '.join(all_phases)})")
    forwarded = ["--threads", str(args.threads), *peer.forwarded(args)]
    load_before = os.getloadavg()
    print(f"{peer.label}: load average {load_before[0]:.2f} on {os.cpu_count()} cores; {args.threads} threads, "
          f"{args.rounds} rounds", flush=True)
    results = {}
    for name in chosen:
        phase = all_phases[name]
        results[name] = r = run_phase(peer, name, phase, args, forwarded)
        compare(phase, r)
        key = value_key(phase.unit)
        print(f"  {name}: " + ", ".join(f"{m} {r[m][key]:.3f} {phase.unit}" for m in phase.models), flush=True)
    load_after = os.getloadavg()
    print_table(peer, all_phases, results)
    print(f"load average {load_after[0]:.2f} at the end")
    out = Path(args.json or HERE / "results" / peer.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": f"peers-{peer.name}", "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "torch": torch.__version__, "python": platform.python_version(), "threads": args.threads,
        "rounds": args.rounds, "processes": args.processes, "cpu_count": os.cpu_count(), "load_avg_before": load_before,
        "load_avg_after": load_after, "hyper_parameters": peer.hyper_parameters(args),
        "ratio": f"videosynth / {peer.label} in the measure's unit"
                 + (f"; dB: videosynth - {peer.label}" if any(all_phases[n].once for n in results) else ""),
        "results": {name: {"measure": all_phases[name].what, "unit": all_phases[name].unit, **r}
                    for name, r in results.items()},
    }, indent=2))
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    phases = [*VIDEOGPT_PHASES, *diffusers_phases(False)]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videogpt", default=None, help="path to a checkout of github.com/wilson1yan/VideoGPT")
    p.add_argument("--diffusers", action="store_true", help="diffusers' Latte, CogVideoX and its VAE against the "
                   "flow family (needs diffusers installed)")
    p.add_argument("--phases", nargs="+", default=None, choices=phases, help="default: every phase of the peer")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--processes", type=int, default=1, help="sets of fresh worker processes the rounds run in, "
                   "one after the other (timings pooled)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads per process")
    p.add_argument("--prior-dropout", type=float, default=0.0,
                   help="our prior's dropout in the prior_step phase (VideoGPT's is its default, 0.2)")
    p.add_argument("--flow-config", default=str(diffusers_peer.FLOW_CONFIG), help="the flow recipe (--diffusers)")
    p.add_argument("--tokenizer-config", default=str(diffusers_peer.TOKENIZER_CONFIG),
                   help="its continuous tokenizer's recipe (--diffusers)")
    tiny = diffusers_peer.TINY
    p.add_argument("--ae-seconds", type=float, default=None, help=f"CPU seconds of training per autoencoder in "
                   f"ae_quality (default {AE['ae_seconds']:g}; {tiny['ae_seconds']:g} with --tiny)")
    p.add_argument("--ae-train-clips", type=int, default=None, help=f"training clips rendered for ae_quality "
                   f"(default {AE['ae_train_clips']}; {tiny['ae_train_clips']} with --tiny)")
    p.add_argument("--ae-val-clips", type=int, default=None, help=f"held-out clips ae_quality reconstructs "
                   f"(default {AE['ae_val_clips']}; {tiny['ae_val_clips']} with --tiny)")
    p.add_argument("--tiny", action="store_true", help="--diffusers at test sizes (a check, not a measurement)")
    p.add_argument("--json", default=None, help="default benchmarks/results/peers.json (VideoGPT), "
                   "peers-diffusers.json (diffusers)")
    p.add_argument("--worker", nargs=3, metavar=("PEER", "PHASE", "MODEL"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    ae_defaults(args)
    if args.worker:
        peer, phase, model = args.worker
        worker(PEERS[peer], phase, model, args)
        return 0
    chosen = [PEERS[name] for name, on in (("videogpt", args.videogpt is not None), ("diffusers", args.diffusers)) if on]
    if not chosen:
        print("peers: skipped (pass --videogpt PATH, a checkout of github.com/wilson1yan/VideoGPT, and/or --diffusers)")
        return 0
    if args.json and len(chosen) > 1:
        raise SystemExit("--json names one file: run --videogpt and --diffusers one at a time to choose both")
    for peer in chosen:
        missing = peer.missing(args)
        if missing:
            print(missing)
            continue
        run_peer(peer, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
