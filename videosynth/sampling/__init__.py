"""Sampling algorithms, one module per kind, shared by inference pipelines and training's sample grids.

- :mod:`~videosynth.sampling.ar`: autoregressive token decoding (KV cache, top-k / top-p,
  classifier-free guidance, priming) and token -> video decoding;
- :mod:`~videosynth.sampling.masked`: a masked-token prior's parallel decoding (MaskGIT);
- :mod:`~videosynth.sampling.flow`: the rectified-flow path, ODE solvers, guidance;
- :mod:`~videosynth.sampling.rollout`: what token and latent samplers share -- the batch's condition
  and its null, observed frames, and the one sliding-window rollout past the training length;
- :mod:`~videosynth.sampling.gan`: GAN generators (standing BatchNorm statistics, MoCoGAN's
  content/motion grids and content interpolation).
"""
