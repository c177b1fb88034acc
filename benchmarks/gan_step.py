"""VideoGAN training-step and sampling throughput: the framework against the bare network.

For each preset (default: ``seed-64x64x32`` and ``demo-32x32x16``) at batch 8, in one process:

* **bare**: the tutorial network with no framework -- the generator and discriminator as
  plain ``nn.Sequential`` stacks (same layers as the preset), one Adam step for D on
  BCE(real, fake) and one for G on the non-saturating loss, exactly as the DCGAN tutorial;
* **objective**: ``GANObjective.train_step`` (NaN guard, gradient norms, frozen D in the G
  update, EMA generator, logged metrics), timed alternately with *bare* so that load on a
  shared machine hits both alike;
* **loop**: the rest of a ``videosynth.train.loop.train`` iteration (data loading, logging,
  bookkeeping), measured between consecutive ``train_step`` calls of a real run.

Overhead = (objective + loop) / bare - 1 (target <= 10%).  Sampling throughput compares
``GANObjective.sample`` (EMA generator with standing statistics, eval mode) with the bare generator's forward.
Peak memory comes from a fresh subprocess per variant doing two steps: CUDA
``max_memory_allocated`` on GPU, peak resident set size (whole process) on CPU.

    python benchmarks/gan_step.py [--presets seed-64x64x32 demo-32x32x16] [--batch 8]
        [--repeats 5] [--device auto] [--out benchmarks/results/gan_step.json]

Prints a table and writes JSON (medians over ``--repeats`` after one warm-up step).
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
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from videosynth.models.videogan import PRESETS, VideoGANConfig, plan_layers  # noqa: E402
from videosynth.data.base import ClipDataset

WARMUP = 1
SAMPLE_CLIPS = 32  # clips generated per sampling measurement
LEAKY = 0.2
DCGAN_STD = 0.02


# ----------------------------------------------------------------------------- the bare network


def bare_networks(cfg: VideoGANConfig) -> tuple[nn.Module, nn.Module]:
    """The tutorial generator/discriminator as plain Sequentials, layer for layer like the preset."""
    plan = plan_layers(cfg)

    def up(time_stride):
        return ((4 if time_stride == 2 else 3, 4, 4), (time_stride, 2, 2), 1)

    g = [nn.ConvTranspose3d(cfg.z_dim, plan.g_widths[0], (plan.first_frames, 4, 4), 1, 0, bias=False),
         nn.BatchNorm3d(plan.g_widths[0]), nn.ReLU(True)]
    for i in range(1, len(plan.g_widths)):
        g += [nn.ConvTranspose3d(plan.g_widths[i - 1], plan.g_widths[i], *up(plan.time_strides[i - 1]), bias=False),
              nn.BatchNorm3d(plan.g_widths[i]), nn.ReLU(True)]
    g += [nn.ConvTranspose3d(plan.g_widths[-1], cfg.channels, *up(plan.time_strides[-1])), nn.Tanh()]
    strides = plan.time_strides[::-1]
    d = [nn.Conv3d(cfg.channels, plan.d_widths[0], *up(strides[0])), nn.LeakyReLU(LEAKY, True)]
    for i in range(1, len(plan.d_widths)):
        d += [nn.Conv3d(plan.d_widths[i - 1], plan.d_widths[i], *up(strides[i]), bias=False),
              nn.BatchNorm3d(plan.d_widths[i]), nn.LeakyReLU(LEAKY, True)]
    d += [nn.Conv3d(plan.d_widths[-1], 1, (plan.first_frames, 4, 4))]
    generator, discriminator = nn.Sequential(*g), nn.Sequential(*d)
    for m in list(generator.modules()) + list(discriminator.modules()):
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
            nn.init.normal_(m.weight, 0.0, DCGAN_STD)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.normal_(m.weight, 1.0, DCGAN_STD)
            nn.init.zeros_(m.bias)
    return generator, discriminator


class BareGAN:
    """One training step of the tutorial: D on BCE(real=1, fake=0), then G on BCE(fake=1)."""

    def __init__(self, cfg: VideoGANConfig, device):
        self.cfg, self.device = cfg, device
        self.G, self.D = (m.to(device) for m in bare_networks(cfg))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def noise(self, n):
        return torch.randn(n, self.cfg.z_dim, 1, 1, 1, device=self.device)  # (B, Z, 1, 1, 1)

    def step(self, real):
        n = real.shape[0]
        ones, zeros = torch.ones(n, device=self.device), torch.zeros(n, device=self.device)
        fake = self.G(self.noise(n))
        self.opt_d.zero_grad()
        loss_d = (F.binary_cross_entropy_with_logits(self.D(real).view(-1), ones)
                  + F.binary_cross_entropy_with_logits(self.D(fake.detach()).view(-1), zeros))
        loss_d.backward()
        self.opt_d.step()
        self.opt_g.zero_grad()
        loss_g = F.binary_cross_entropy_with_logits(self.D(fake).view(-1), ones)
        loss_g.backward()
        self.opt_g.step()
        return loss_d.item(), loss_g.item()

    @torch.no_grad()
    def sample(self, n):
        self.G.eval()
        out = self.G(self.noise(n))
        self.G.train()
        return out


# ----------------------------------------------------------------------------- the framework


def run_config(preset: str, batch: int, steps: int, device: str):
    from videosynth.train.gan import VideoGANRunConfig
    from videosynth.train.config import TrainConfig

    train = TrainConfig(steps=steps, batch_size=batch, device=device, log_every=10**6, ckpt_every=10**6,
                        sample_every=0, keep_last=1)
    from videosynth.data import DataConfig

    model = PRESETS[preset]
    return VideoGANRunConfig(model=model, data=DataConfig(frames=model.frames, size=model.size), train=train)


class RandomClips(ClipDataset):
    """Random clips float [C, T, H, W] in [-1, 1] held in memory (no decoding cost)."""

    def __init__(self, cfg: VideoGANConfig, n: int):
        g = torch.Generator().manual_seed(0)
        self.videos = torch.rand(n, cfg.channels, cfg.frames, cfg.size, cfg.size, generator=g) * 2 - 1

    def __len__(self):
        return len(self.videos)

    def __getitem__(self, i):
        return {"video": self.videos[i], "label": torch.tensor(-1), "caption": ""}


def make_objective(preset: str, batch: int, device: torch.device):
    from videosynth.train.gan import GANObjective
    from videosynth.train.context import Context

    cfg = run_config(preset, batch, 1, str(device))
    return GANObjective(cfg, Context(cfg.train, device, None))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def loop_bookkeeping(preset: str, batch: int, repeats: int, device: torch.device) -> list[float]:
    """Seconds per step spent by ``train()`` outside ``train_step`` (data, logging, bookkeeping)."""
    from videosynth.train.gan import GANObjective
    from videosynth.train.loop import train

    marks: list[tuple[float, float]] = []

    class Timed(GANObjective):
        def train_step(self, batch_, step):
            sync(device)
            enter = time.perf_counter()
            out = super().train_step(batch_, step)
            sync(device)
            marks.append((enter, time.perf_counter()))
            return out

    steps = WARMUP + repeats + 1
    cfg = run_config(preset, batch, steps, str(device))
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, Timed, Path(tmp) / "run", RandomClips(cfg.model, batch * steps), progress=False)
    return [marks[i + 1][0] - marks[i][1] for i in range(WARMUP, len(marks) - 1)]


def measure(preset: str, batch: int, repeats: int, device: torch.device) -> dict:
    cfg = PRESETS[preset]
    torch.manual_seed(0)
    bare = BareGAN(cfg, device)
    objective = make_objective(preset, batch, device)
    objective.set_train(True)
    real = (torch.rand(batch, cfg.channels, cfg.frames, cfg.size, cfg.size) * 2 - 1).to(device)
    fw_batch = {"video": real, "label": torch.full((batch,), -1, device=device), "caption": [""] * batch}
    t_bare, t_obj = [], []
    for r in range(WARMUP + repeats):  # alternate so machine load hits both alike
        tb = timed(lambda: bare.step(real), device)
        to = timed(lambda: objective.train_step(fw_batch, r), device)
        if r >= WARMUP:
            t_bare.append(tb)
            t_obj.append(to)
    t_loop = loop_bookkeeping(preset, batch, repeats, device)
    s_bare, s_fw = [], []
    gen = torch.Generator().manual_seed(0)
    for r in range(WARMUP + repeats):
        sb = timed(lambda: [bare.sample(batch) for _ in range(SAMPLE_CLIPS // batch)], device)
        sf = timed(lambda: [objective.sample(batch, gen) for _ in range(SAMPLE_CLIPS // batch)], device)
        if r >= WARMUP:
            s_bare.append(sb)
            s_fw.append(sf)
    bare_s, obj_s, loop_s = statistics.median(t_bare), statistics.median(t_obj), statistics.median(t_loop)
    return {
        "preset": preset, "batch": batch, "repeats": repeats,
        "bare_step_s": bare_s, "objective_step_s": obj_s, "loop_extra_s": loop_s,
        "framework_step_s": obj_s + loop_s,
        "bare_clips_per_s": batch / bare_s, "framework_clips_per_s": batch / (obj_s + loop_s),
        "overhead": (obj_s + loop_s) / bare_s - 1,
        "sample_bare_clips_per_s": SAMPLE_CLIPS / statistics.median(s_bare),
        "sample_framework_clips_per_s": SAMPLE_CLIPS / statistics.median(s_fw),
        "raw": {"bare": t_bare, "objective": t_obj, "loop_extra": t_loop},
    }


# ----------------------------------------------------------------------------- peak memory


def peak_memory_child(preset: str, variant: str, batch: int, device: torch.device) -> int:
    """Two training steps of one variant; returns peak bytes (CUDA allocated, or process RSS)."""
    cfg = PRESETS[preset]
    real = (torch.rand(batch, cfg.channels, cfg.frames, cfg.size, cfg.size) * 2 - 1).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if variant == "bare":
        bare = BareGAN(cfg, device)
        for _ in range(2):
            bare.step(real)
    else:
        objective = make_objective(preset, batch, device)
        batch_ = {"video": real, "label": torch.full((batch,), -1, device=device), "caption": [""] * batch}
        for step in range(2):
            objective.train_step(batch_, step)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return _peak_rss_bytes()


def _peak_rss_bytes() -> int:
    """This process's peak resident set size.

    ``VmHWM`` belongs to the process's own address space; ``ru_maxrss`` survives ``execve``
    and may report the parent's peak, so it is only the fallback (non-Linux).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def peak_memory(preset: str, variant: str, batch: int, device: str, threads: int) -> int:
    cmd = [sys.executable, __file__, "--memory-child", preset, variant, "--batch", str(batch),
           "--device", device, "--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["seed-64x64x32", "demo-32x32x16"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gan_step.json"))
    p.add_argument("--memory-child", nargs=2, metavar=("PRESET", "VARIANT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from videosynth.device import select_device

    device = select_device(args.device)
    if args.memory_child:
        print(peak_memory_child(*args.memory_child, args.batch, device))
        return 0

    results = []
    for preset in args.presets:
        row = measure(preset, args.batch, args.repeats, device)
        for variant in ("bare", "framework"):
            row[f"peak_mem_{variant}_mb"] = peak_memory(preset, variant, args.batch, str(device),
                                                        torch.get_num_threads()) / 2**20
        results.append(row)

    mem_kind = "CUDA max allocated" if device.type == "cuda" else "process peak RSS"
    header = (f"{'preset':<16} {'bare clip/s':>11} {'fw clip/s':>10} {'overhead':>9} {'loop s':>8} "
              f"{'sample bare':>11} {'sample fw':>10} {'mem bare MB':>11} {'mem fw MB':>10}")
    print(f"device: {device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads), "
          f"batch {args.batch}, median of {args.repeats}; memory: {mem_kind}")
    print(header)
    for r in results:
        print(f"{r['preset']:<16} {r['bare_clips_per_s']:>11.2f} {r['framework_clips_per_s']:>10.2f} "
              f"{r['overhead']:>+8.1%} {r['loop_extra_s']:>8.4f} {r['sample_bare_clips_per_s']:>11.1f} "
              f"{r['sample_framework_clips_per_s']:>10.1f} {r['peak_mem_bare_mb']:>11.0f} {r['peak_mem_framework_mb']:>10.0f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "memory": mem_kind, "cpu_count": os.cpu_count()}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
