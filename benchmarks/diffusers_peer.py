"""diffusers' own video modules matched to the flow family, and the phases ``peers.py --diffusers`` runs.

diffusers (github.com/huggingface/diffusers, ``pip install 'diffusers>=0.42'``, the ``bench``
extra) is a benchmark-only dependency: the package never imports it, and nothing here imports it
at module level, so a worker of our side never loads it. Its modules are built from config dicts
with random weights; nothing is downloaded.

Our side is read from the shipped configs (``--flow-config``, default
``configs/flow/shapes-32x32x8.yaml``; ``--tokenizer-config``, default
``configs/vqvae/shapes-kl-32x32x8.yaml``) through the run-config classes, presets resolved, so the
peers follow the recipe when it changes: the DiT's width, depth, heads and patch, the latent grid
(the tokenizer's ``code_dim`` channels over clips of ``data.frames`` x ``data.size`` downsampled by
``downsample``: 4 x (4, 8, 8) today, patches (1, 2, 2) -> 64 tokens), the class condition
(``condition.dim``, classifier-free ``condition.dropout``, the data's 3 classes), the optimisers and
batch sizes. Every mismatch, and how it is equalised:

DiT step (``LatteTransformer3DModel``, ``CogVideoXTransformer3DModel``):

- width = heads x head_dim, the same heads; MLPs 4x wide (diffusers' ``FeedForward`` default, which
  neither model exposes: a recipe with another ``mlp_ratio`` is refused rather than mismatched);
  ``gelu-approximate`` (tanh) as ours; biases in every projection (``attention_bias``); LayerNorms
  without affine, eps 1e-6 (``norm_elementwise_affine=False``, ``norm_eps=1e-6``).
- depth is matched by block count (one attention + MLP is a block), not by parameters. Latte
  alternates a spatial block (attention within a latent frame, 16 tokens) and a temporal block
  (attention across the 4 frames at one position) per layer: ``num_layers = ceil(depth / 2)``
  gives ``depth`` blocks against our ``depth`` blocks of full space-time attention over 64 tokens
  (for our ``attention: factorised``, whose blocks attend in space then time before one MLP,
  ``num_layers = depth``). Latte is then the smaller model (about 28 w^2 per layer pair against
  our 36 w^2 per two blocks: adaLN-single shares one modulation layer between all blocks); both
  counts are reported. CogVideoX: ``num_layers = depth``, one full 3D attention + MLP per block
  like ours.
- the class: Latte has no class embedding, so the class goes in as a one-token caption: our own
  :class:`~videosynth.conditioning.label.ClassConditioner` (an ``nn.Embedding`` with a null row,
  the config's dropout) gives the vector, Latte's caption projection (Linear-GELU-Linear) maps it
  to the width and every spatial block cross-attends to that token (Latte's own layout; the
  temporal blocks do not see it, and PixArt-style, no norm before cross-attention). CogVideoX takes
  it as one text token (``max_text_seq_length=1``) in its full attention: 65 tokens, with a second
  adaLN-Zero modulation for the text stream (its "expert" adaLN). Ours adds a linear embedding of
  the vector to the time embedding that drives every block's adaLN-Zero.
- time: ours is ``t`` in [0, 1] (1 = data) scaled by 1000 into 256 sinusoids; diffusers' flow
  matching uses the noise level ``sigma = 1 - t``, ``timestep = 1000 sigma`` (Latte: 256
  sinusoids; CogVideoX: ``width`` sinusoids, ``time_embed_dim = width``).
- output: ``out_channels = in_channels`` (Latte's released model also predicts a variance, its
  "learned sigma"; here there is none). Target: ours the velocity ``x1 - x0``, diffusers' flow
  matching ``noise - data``; the same MSE.
- positions: ours a learned table over the 64 tokens; Latte fixed 2D sin-cos plus a temporal
  sin-cos added before the first temporal block; CogVideoX fixed 3D sin-cos (rotary off, as
  CogVideoX-2b). Patches: ours a Conv3d of ``patch``; Latte a Conv2d per frame (the same for a
  time patch of 1; another one is refused); CogVideoX a Conv2d per frame, or ``patch_size_t`` for
  a time patch > 1, plus a Linear for the text token.
- work only they do: CogVideoX's attention normalises queries and keys (LayerNorm, not
  configurable) and takes ``[B, F, C, H, W]``, so its adapter transposes in and out.
- the step: random normalised latents ``N(0, 1)`` and uniform labels, flow times drawn as the
  config's ``loss.time_sampling`` (the same draw code on both sides), forward, MSE, backward and
  the repository's ``adam`` helper (torch's fused AdamW) with the flow config's ``optim`` lr, betas
  and weight decay, batch ``train.batch_size``, on every parameter (the class embedding included).
  Neither side updates an EMA, a learning-rate schedule or clips gradients in the timed step.

Sampling (seconds per clip, batch :data:`SAMPLE_BATCH`, :data:`SAMPLE_STEPS` Euler steps, guidance
:data:`GUIDANCE`, then the decode):

- ours: :func:`videosynth.pipelines.flow.sample_flow` (``solver="euler"``) with our DiT and our
  tokenizer (the KL config's model). Theirs: :func:`sample_loop`, written as ``LattePipeline``
  writes its loop, over ``FlowMatchEulerDiscreteScheduler`` with the sigmas ``1 - t`` of our time
  grid (the same 16 points; its default grid ends at sigma 1/1000, ours at 0), then
  ``AutoencoderKLCogVideoX.decode``.
- both run one forward over the batch taken twice (conditional rows, then null rows) per step:
  16 model evaluations of 2 x batch each, counted at run time. Both embed the class once per
  call; per forward, ours maps the vector with one Linear, Latte's caption projection runs two on
  the token and every spatial block computes keys and values for it.
- the scheduler step (an index lookup, an upcast) is theirs; our Euler update is two tensor ops.
  The latents are denormalised by our tokenizer's running statistics, or divided by the VAE's
  ``scaling_factor``; both clamp the clips to [-1, 1].
- CogVideoX's VAE decodes 2 latent frames at a time with causal convolution caches (its design).

Autoencoder quality (``ae_quality``: equal CPU time, validation PSNR / SSIM):

- ``AutoencoderKLCogVideoX`` at our compression: ``temporal_compression_ratio = downsample[0]``,
  ``log2(downsample[1]) + 1`` blocks (two spatial halvings for 4), ``latent_channels = code_dim``,
  ``layers_per_block = n_res_blocks``, one width for every block: the multiple of 8 whose
  parameter count is nearest ours (both reported), GroupNorm groups ``gcd(width, 32)`` as ours.
  Its convolutions are causal in time, its decoder's norms are conditioned on the latents
  (spatial norm) and it has a mid-block of two resnets on each side: architecture, not equalised.
- clip length: its temporal compression is causal (``1 + 2k`` frames give ``1 + k`` latent frames:
  9 frames -> 5), but an even clip compresses as ours does: the encoder takes 8 frames in one
  chunk and averages frame pairs, 8 -> 4 latent frames, and the decoder, 2 latent frames at a
  time, gives 8 back. So both encode the same 8-frame clips to ``code_dim x 4 x 8 x 8``, checked at
  run time (:func:`check_round_trip`).
- loss: ours is the KL config's model's own (reconstruction MSE + ``kl_weight`` x KL to N(0, I),
  mean over elements, decoding a sampled latent); theirs the same formula on its posterior
  (:func:`vae_loss`; not ``DiagonalGaussianDistribution.kl``, which sums over dimensions 1-3).
  Both evaluate the mean latent.
- Adam (the repository's helper, fused) with the tokenizer config's ``optim``, its batch
  ``train.batch_size``, the same clips of the config's data (train split) in the same order, each
  trained in its own process for ``--ae-seconds`` of CPU time (process CPU seconds / threads),
  one after the other; PSNR and SSIM (:mod:`videosynth.metrics.recon`) on clips of the val split.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import tokenizer_quality  # noqa: E402 — beside this script

FLOW_CONFIG = ROOT / "configs" / "flow" / "shapes-32x32x8.yaml"
TOKENIZER_CONFIG = ROOT / "configs" / "vqvae" / "shapes-kl-32x32x8.yaml"
INSTALL = "pip install 'videosynth[bench]' (or pip install 'diffusers>=0.42')"

SAMPLE_BATCH, SAMPLE_STEPS, GUIDANCE = 4, 16, 2.0
# one round's measurement is the mean of this many calls: a single 45 ms training step varies by +-25 %
# between calls on this CPU, a median of a few such single timings does not settle the ratio
STEPS_PER_ROUND, SAMPLES_PER_ROUND = 10, 3
TRAIN_TIMESTEPS = 1000  # diffusers' timestep = 1000 x noise level
FF_MULT = 4  # the MLP width diffusers' FeedForward gives both transformers
NORM_EPS = 1e-6  # our DiT's LayerNorm eps
MAX_NORM_GROUPS = 32  # our tokenizer's GroupNorm rule: gcd(channels, 32) groups
WIDTH_STEP = 8  # VAE widths searched in steps of this
# --tiny: a DiT of the test preset's size, few clips, few steps, seconds of autoencoder training
TINY_DIT = dict(width=32, depth=2, heads=2)
TINY = dict(dit_batch=2, ae_batch=4, sample_batch=1, sample_steps=2, ae_seconds=2.0, ae_train_clips=16,
            ae_val_clips=4)


def sample_settings(tiny: bool) -> dict:
    """The sampling phase's batch, Euler steps and guidance (both sides)."""
    return {"batch": TINY["sample_batch"] if tiny else SAMPLE_BATCH,
            "steps": TINY["sample_steps"] if tiny else SAMPLE_STEPS, "solver": "euler", "guidance": GUIDANCE}


def available() -> bool:
    """Whether diffusers is installed (without importing it)."""
    return importlib.util.find_spec("diffusers") is not None


# ---------------------------------------------------------------------------
# our side, from the shipped configs
# ---------------------------------------------------------------------------


@dataclass
class FlowSetup:
    """What both sides are built from: the flow and tokenizer run configs, resolved."""

    flow: object  # FlowRunConfig: optim, loss, train.batch_size
    tokenizer: object  # VQVAERunConfig: model, optim, data, train.batch_size
    dit: object  # DiTConfig with the tokenizer's latent grid and the condition width
    condition: object  # ConditionConfig with the data's classes
    dit_batch: int
    ae_batch: int


def flow_setup(flow_config: str | Path = FLOW_CONFIG, tokenizer_config: str | Path = TOKENIZER_CONFIG,
               tiny: bool = False) -> FlowSetup:
    """The DiT of ``flow_config`` over the latents of the tokenizer of ``tokenizer_config``.

    Raises:
        SystemExit: a config of another family, a tokenizer without a continuous bottleneck.
    """
    from videosynth.conditioning import fit_condition_config
    from videosynth.data.factory import build_dataset
    from videosynth.models.conditioned import fit_cond_dim
    from videosynth.models.vqvae import VQVAE
    from videosynth.train.flow import FlowRunConfig
    from videosynth.train.run import resolve_config
    from videosynth.train.vqvae import VQVAERunConfig

    flow, tok = resolve_config(flow_config), resolve_config(tokenizer_config)
    if not isinstance(flow, FlowRunConfig) or not isinstance(tok, VQVAERunConfig):
        raise SystemExit(f"--flow-config {flow_config} must be a flow run config and --tokenizer-config "
                         f"{tokenizer_config} a vqvae one (got families {flow.family}, {tok.family})")
    tokenizer = VQVAE(tok.model)
    if not tokenizer.continuous:
        raise SystemExit(f"--tokenizer-config {tokenizer_config}: model.bottleneck '{tok.model.bottleneck}' has "
                         "codes; the flow family needs a continuous one (bottleneck: gaussian)")
    latent = tokenizer.latent_shape(flow.data.frames, flow.data.size)
    condition = fit_condition_config(flow.condition, [], list(build_dataset(flow.data, "train").class_names))
    dit = dataclasses.replace(flow.model, latent_channels=tok.model.code_dim, latent_shape=tuple(latent))
    if tiny:
        dit = dataclasses.replace(dit, **TINY_DIT)
    return FlowSetup(flow, tok, fit_cond_dim(dit, condition), condition,
                     TINY["dit_batch"] if tiny else flow.train.batch_size,
                     TINY["ae_batch"] if tiny else tok.train.batch_size)


def our_dit(setup: FlowSetup) -> nn.Module:
    """Our DiT with its class conditioner (a :class:`~videosynth.models.conditioned.Conditioned`)."""
    from videosynth.models.dit import build_modules

    return build_modules(setup.dit, setup.condition)["dit"]


def our_tokenizer(setup: FlowSetup) -> nn.Module:
    """The KL config's tokenizer (a :class:`~videosynth.models.vqvae.VQVAE`)."""
    from videosynth.models.vqvae import VQVAE

    return VQVAE(setup.tokenizer.model)


def token_grid(setup: FlowSetup) -> list[int]:
    """Our DiT's tokens per axis ``[t, h, w]``."""
    return list(setup.dit.grid)


# ---------------------------------------------------------------------------
# diffusers' transformers at our sizes
# ---------------------------------------------------------------------------


class PeerDiT(nn.Module):
    """A diffusers video transformer taking our class condition as a one-token caption.

    ``forward(x [B, C, t, h, w], timestep [B] = 1000 x noise level, caption [B, 1, D])`` returns
    diffusers' flow-matching prediction ``noise - data`` ``[B, C, t, h, w]``.
    """

    def __init__(self, transformer: nn.Module, conditioner: nn.Module, frames_first: bool, grid: list[int]):
        super().__init__()
        self.transformer = transformer
        self.conditioner = conditioner  # checkpointed with it: trained by the same optimiser
        self.frames_first = frames_first  # CogVideoX takes [B, F, C, H, W]
        self.grid = grid  # tokens per axis [t, h, w], from its config

    def caption(self, labels: torch.Tensor, force_null: bool = False) -> torch.Tensor:
        """Labels ``int64 [B]`` -> one caption token ``[B, 1, D]`` (the null row where dropped or forced)."""
        return self.conditioner.tokens(labels, None, force_null)[0]

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, caption: torch.Tensor) -> torch.Tensor:
        if self.frames_first:
            out = self.transformer(x.transpose(1, 2), encoder_hidden_states=caption, timestep=timestep,
                                   return_dict=False)[0]
            return out.transpose(1, 2)  # (B, C, t, h, w)
        return self.transformer(x, timestep=timestep, encoder_hidden_states=caption, return_dict=False)[0]


def _check_matchable(cfg) -> None:
    if cfg.mlp_ratio != FF_MULT:
        raise SystemExit(f"model.mlp_ratio {cfg.mlp_ratio}: diffusers' Latte and CogVideoX MLPs are {FF_MULT}x "
                         f"wide and not configurable; compare a recipe with mlp_ratio {FF_MULT}")
    if cfg.patch[1] != cfg.patch[2]:
        raise SystemExit(f"model.patch {list(cfg.patch)}: diffusers' patches are square; use equal h and w patches")


def latte_layers(cfg) -> int:
    """Latte's ``num_layers`` (a spatial and a temporal block each) for as many attention + MLP blocks as ours."""
    return cfg.depth if cfg.attention == "factorised" else math.ceil(cfg.depth / 2)


def latte(setup: FlowSetup) -> PeerDiT:
    """``LatteTransformer3DModel`` at our width, heads, patch, token grid and block count (see the module docstring)."""
    from diffusers import LatteTransformer3DModel

    from videosynth.conditioning import build_conditioner

    cfg = setup.dit
    _check_matchable(cfg)
    if cfg.patch[0] != 1:
        raise SystemExit(f"model.patch {list(cfg.patch)}: Latte patches each frame alone; use a time patch of 1")
    t, h, _ = cfg.latent_shape
    conditioner = build_conditioner(setup.condition)
    model = LatteTransformer3DModel(
        num_attention_heads=cfg.heads, attention_head_dim=cfg.width // cfg.heads, in_channels=cfg.latent_channels,
        out_channels=cfg.latent_channels, num_layers=latte_layers(cfg), cross_attention_dim=cfg.width,
        attention_bias=True, sample_size=h, patch_size=cfg.patch[1], activation_fn="gelu-approximate",
        norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=NORM_EPS,
        caption_channels=setup.condition.dim, video_length=t)
    return PeerDiT(model, conditioner, frames_first=False, grid=[t, h // cfg.patch[1], h // cfg.patch[1]])


def cogvideox(setup: FlowSetup) -> PeerDiT:
    """``CogVideoXTransformer3DModel`` at our width, heads, depth, patch and token grid, the class as its text token."""
    from diffusers import CogVideoXTransformer3DModel

    from videosynth.conditioning import build_conditioner

    cfg = setup.dit
    _check_matchable(cfg)
    t, h, w = cfg.latent_shape
    pt, p = cfg.patch[0], cfg.patch[1]
    compression = setup.tokenizer.model.downsample[0]
    conditioner = build_conditioner(setup.condition)
    model = CogVideoXTransformer3DModel(
        num_attention_heads=cfg.heads, attention_head_dim=cfg.width // cfg.heads, in_channels=cfg.latent_channels,
        out_channels=cfg.latent_channels, time_embed_dim=cfg.width, text_embed_dim=setup.condition.dim,
        num_layers=cfg.depth, attention_bias=True, sample_width=w, sample_height=h,
        # its "sample_frames" counts video frames of its causal VAE: (t - 1) * compression + 1 latent frames -> t
        sample_frames=(t - 1) * compression + 1, temporal_compression_ratio=compression,
        patch_size=p, patch_size_t=pt if pt > 1 else None, max_text_seq_length=1,
        activation_fn="gelu-approximate", norm_elementwise_affine=False, norm_eps=NORM_EPS)
    return PeerDiT(model, conditioner, frames_first=True, grid=[t // pt, h // p, w // p])


TRANSFORMERS = {"latte": latte, "cogvideox": cogvideox}


# ---------------------------------------------------------------------------
# diffusers' video VAE at our compression
# ---------------------------------------------------------------------------


def _cogvideox_vae_at(cfg, width: int) -> nn.Module:
    from diffusers import AutoencoderKLCogVideoX

    blocks = int(math.log2(cfg.downsample[1])) + 1
    return AutoencoderKLCogVideoX(
        down_block_types=("CogVideoXDownBlock3D",) * blocks, up_block_types=("CogVideoXUpBlock3D",) * blocks,
        block_out_channels=(width,) * blocks, latent_channels=cfg.code_dim, layers_per_block=cfg.n_res_blocks,
        norm_num_groups=math.gcd(width, MAX_NORM_GROUPS), temporal_compression_ratio=cfg.downsample[0])


def cogvideox_vae(cfg) -> nn.Module:
    """``AutoencoderKLCogVideoX`` at the compression of our tokenizer config ``cfg`` (a ``VQVAEConfig``),
    its one block width the multiple of :data:`WIDTH_STEP` whose parameter count is nearest ours.

    Raises:
        SystemExit: unequal spatial downsampling (its blocks halve both axes).
    """
    from videosynth.models.vqvae import VQVAE

    if cfg.downsample[1] != cfg.downsample[2]:
        raise SystemExit(f"tokenizer downsample {list(cfg.downsample)}: CogVideoX's VAE halves height and width "
                         "together; use equal spatial factors")
    target = sum(p.numel() for p in VQVAE(cfg).parameters())
    best, best_gap, width = None, math.inf, WIDTH_STEP
    while True:  # the count grows with the width: stop once past the target
        vae = _cogvideox_vae_at(cfg, width)
        count = sum(p.numel() for p in vae.parameters())
        if abs(count - target) < best_gap:
            best, best_gap = vae, abs(count - target)
        if count >= target:
            return best
        width += WIDTH_STEP


def vae_loss(vae: nn.Module, x: torch.Tensor, kl_weight: float) -> torch.Tensor:
    """Our tokenizer's loss on the CogVideoX VAE: reconstruction MSE of a sampled latent + ``kl_weight`` x KL
    to ``N(0, I)`` (mean over elements); ``x`` ``[B, 3, T, H, W]`` in ``[-1, 1]``."""
    posterior = vae.encode(x).latent_dist
    recon = vae.decode(posterior.sample()).sample  # (B, 3, T, H, W)
    kl = 0.5 * (posterior.mean.pow(2) + posterior.var - 1.0 - posterior.logvar).mean()
    return F.mse_loss(recon, x) + kl_weight * kl


def vae_reconstruct(vae: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Reconstruction of ``x`` from the mean latent, ``[B, 3, T, H, W]`` (unclamped)."""
    return vae.decode(vae.encode(x).latent_dist.mode()).sample


@torch.no_grad()
def check_round_trip(vae: nn.Module, frames: int, size: int) -> list[int]:
    """The latent ``[C, t, h, w]`` of a ``frames`` x ``size`` x ``size`` clip.

    Raises:
        SystemExit: the decoded clip has another shape than the clip.
    """
    x = torch.zeros(1, 3, frames, size, size)
    z = vae.encode(x).latent_dist.mode()  # (1, C, t, h, w)
    out = vae.decode(z).sample
    if out.shape != x.shape:
        raise SystemExit(f"CogVideoX's VAE turns clips {list(x.shape[1:])} into latents {list(z.shape[1:])} and back "
                         f"into {list(out.shape[1:])}: choose data.frames it round-trips")
    return list(z.shape[1:])


# ---------------------------------------------------------------------------
# diffusers' sampling loop
# ---------------------------------------------------------------------------


@torch.no_grad()
def sample_loop(peer: PeerDiT, vae: nn.Module, labels: torch.Tensor, latent: tuple[int, ...], steps: int,
                guidance: float, generator: torch.Generator) -> torch.Tensor:
    """Clips ``float32 [n, 3, T, H, W]`` in ``[-1, 1]`` for ``labels`` ``int64 [n]``, as ``LattePipeline`` loops.

    ``steps`` Euler steps of ``FlowMatchEulerDiscreteScheduler`` on the sigmas of our uniform time grid;
    with ``guidance != 1`` one forward over the null and the conditional rows together per step; then
    the VAE decodes ``latents / scaling_factor``. ``latent``: ``(C, t, h, w)``; noise from ``generator``.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler

    from videosynth.sampling.flow import time_grid

    n = labels.shape[0]
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=TRAIN_TIMESTEPS, shift=1.0)
    scheduler.set_timesteps(sigmas=(1 - time_grid(steps)[:-1]).tolist())
    latents = torch.randn((n, *latent), generator=generator)
    guided = guidance != 1.0
    caption = torch.cat([peer.caption(labels, force_null=True), peer.caption(labels)]) if guided \
        else peer.caption(labels)  # (2n | n, 1, D): null rows first, as the pipelines order them
    for timestep in scheduler.timesteps:
        model_in = torch.cat([latents, latents]) if guided else latents
        pred = peer(model_in, timestep.expand(model_in.shape[0]), caption)
        if guided:
            uncond, cond = pred.chunk(2)
            pred = uncond + guidance * (cond - uncond)
        latents = scheduler.step(pred, timestep, latents, return_dict=False)[0]
    video = vae.decode(latents / vae.config.scaling_factor).sample
    return video.float().clamp(-1, 1)


# ---------------------------------------------------------------------------
# the phases peers.py --diffusers runs, one (phase, model) per worker process
# ---------------------------------------------------------------------------


def preload(phase: str, model: str) -> None:
    """Import what the worker of (``phase``, ``model``) will import anyway, before its baseline RSS is read, so
    that peak - baseline is the models' own memory: diffusers imports torch's compiler stack (and
    transformers and peft where installed) at import, torch.optim imports ``torch._dynamo`` with the
    first optimiser (the training phases, on both sides)."""
    import videosynth.data.factory  # noqa: F401
    import videosynth.pipelines.flow  # noqa: F401
    import videosynth.train.flow  # noqa: F401
    import videosynth.train.run  # noqa: F401
    if phase != "sample":
        import torch._dynamo  # noqa: F401
    if model != "videosynth":
        from diffusers import AutoencoderKLCogVideoX, FlowMatchEulerDiscreteScheduler  # noqa: F401
        from diffusers import CogVideoXTransformer3DModel, LatteTransformer3DModel  # noqa: F401


def count_calls(module: nn.Module) -> list[int]:
    """A one-element counter of ``module``'s forward calls (a forward pre-hook)."""
    calls = [0]
    module.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def dit_step(model: str, setup: FlowSetup, repeat: int = STEPS_PER_ROUND):
    """``(mean seconds of a training step over repeat steps, info)`` of ``model``: ``videosynth``, ``latte`` or
    ``cogvideox``."""
    from videosynth.sampling.flow import path, sample_times
    from videosynth.train.objective import adam

    torch.manual_seed(0)
    cfg, b = setup.dit, setup.dit_batch
    x1 = torch.randn(b, cfg.latent_channels, *cfg.latent_shape)  # (B, C, t, h, w) normalised latents
    labels = torch.randint(0, setup.condition.num_classes, (b,))
    loss_cfg, o = setup.flow.loss, setup.flow.optim
    if model == "videosynth":
        net, grid, layers = our_dit(setup), token_grid(setup), cfg.depth

        def loss_fn(t, x0):
            xt, target = path(x0, x1, t)
            return F.mse_loss(net(xt, labels=labels, t=t), target)
    else:
        net = TRANSFORMERS[model](setup)
        grid, layers = net.grid, net.transformer.config.num_layers

        def loss_fn(t, x0):
            sigma = (1 - t).view(-1, 1, 1, 1, 1)  # noise level
            noisy = (1 - sigma) * x1 + sigma * x0
            return F.mse_loss(net(noisy, (1 - t) * TRAIN_TIMESTEPS, net.caption(labels)), x0 - x1)
    net.train()
    opt = adam(net.parameters(), o.lr, (o.beta1, o.beta2), o.weight_decay, decoupled=True)

    def measure() -> float:
        start = time.perf_counter()
        for _ in range(repeat):
            t = sample_times(b, loss_cfg.time_sampling, mean=loss_cfg.logit_mean, std=loss_cfg.logit_std)
            loss = loss_fn(t, torch.randn_like(x1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return (time.perf_counter() - start) / repeat

    return measure, {"params": sum(p.numel() for p in net.parameters()), "token_grid": grid, "layers": layers,
                     "steps_per_measurement": repeat}


def sample(model: str, setup: FlowSetup, tiny: bool, repeat: int = SAMPLES_PER_ROUND):
    """``(mean seconds of a sampling call over repeat calls, info)``: ``videosynth`` (our DiT + tokenizer) or a diffusers
    transformer (``latte``, ``cogvideox``) in :func:`sample_loop` with the CogVideoX VAE."""
    from videosynth.pipelines.flow import sample_flow

    torch.manual_seed(0)
    settings = sample_settings(tiny)
    n, steps = settings["batch"], settings["steps"]
    labels = torch.arange(n) % setup.condition.num_classes
    g = torch.Generator()
    cfg = setup.dit
    if model == "videosynth":
        net, decoder = our_dit(setup).eval(), our_tokenizer(setup).eval()
        calls, grid = count_calls(net.net), token_grid(setup)
        run = lambda: sample_flow(net, decoder, n, g.manual_seed(0), labels, steps=steps,  # noqa: E731
                                  solver="euler", guidance=GUIDANCE)
    else:
        net, decoder = TRANSFORMERS[model](setup).eval(), cogvideox_vae(setup.tokenizer.model).eval()
        calls, grid = count_calls(net.transformer), net.grid
        latent = (cfg.latent_channels, *cfg.latent_shape)
        run = lambda: sample_loop(net, decoder, labels, latent, steps, GUIDANCE, g.manual_seed(0))  # noqa: E731
    clip = run()  # counted once: the model evaluations of one call
    evaluations = calls[0]

    def measure() -> float:
        start = time.perf_counter()
        for _ in range(repeat):
            run()
        return (time.perf_counter() - start) / repeat

    params = sum(p.numel() for p in net.parameters()) + sum(p.numel() for p in decoder.parameters())
    return measure, {"params": params, "token_grid": grid, "model_evaluations": evaluations,
                     "clip_shape": list(clip.shape[1:]), "finite": bool(torch.isfinite(clip).all()),
                     "calls_per_measurement": repeat}


def ae_quality(model: str, setup: FlowSetup, seconds: float, threads: int, train_clips: int, val_clips: int,
               seed: int = 0) -> dict:
    """Train ``model`` (``videosynth``: the KL config's tokenizer; ``cogvideox``: the CogVideoX VAE) for
    ``seconds`` of CPU time per thread, then PSNR / SSIM on held-out clips (``tokenizer_quality``'s loop)."""
    from videosynth.data.factory import build_dataset
    from videosynth.train.objective import adam

    tok = setup.tokenizer
    data = tok.data
    train = tokenizer_quality.clips_of(build_dataset(data, "train"), train_clips)
    val = tokenizer_quality.clips_of(build_dataset(data, "val"), val_clips)
    torch.manual_seed(seed)
    if model == "videosynth":
        net = our_tokenizer(setup)
        loss_fn, reconstruct = (lambda x: net(x).loss), (lambda x: net(x).recon)
        latent = [tok.model.code_dim, *net.latent_shape(data.frames, data.size)]
    else:
        net = cogvideox_vae(tok.model)
        loss_fn = lambda x: vae_loss(net, x, tok.model.kl_weight)  # noqa: E731
        reconstruct = lambda x: vae_reconstruct(net, x)  # noqa: E731
        latent = check_round_trip(net, data.frames, data.size)
    o = tok.optim
    opt = adam(net.parameters(), o.lr, (o.beta1, o.beta2), o.weight_decay)
    run = tokenizer_quality.train_budget(net, loss_fn, reconstruct, opt, train, val, seconds,
                                         tokenizer_quality.budget_clock("cpu", threads), setup.ae_batch, seed)
    return {"params": sum(p.numel() for p in net.parameters()), "latent": latent, **run,
            "psnr": run["final"]["psnr"], "ssim": run["final"]["ssim"]}
