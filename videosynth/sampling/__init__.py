"""Sampling algorithms, one module per kind, shared by inference pipelines and training's sample grids.

- :mod:`~videosynth.sampling.ar`: autoregressive token decoding (KV cache, top-k / top-p,
  classifier-free guidance, priming, sliding-window rollout) and token -> video decoding;
- :mod:`~videosynth.sampling.gan`: GAN generators (standing BatchNorm statistics, MoCoGAN's
  content/motion grids and content interpolation).
"""
