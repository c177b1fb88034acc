"""The masked-token pipeline: a masked prior's parallel decoding -> token grids -> the tokenizer's decoder.

MaskGIT (Chang et al. 2022), MAGVIT (Yu et al. 2023). The composition is the one every token prior
shares (:func:`~videosynth.pipelines.two_stage.token_clips`), with the masked sampler::

    cond = encode_condition(net.conditioner, n, labels, captions, audio, guided)
    tokens = windowed(lambda t, prime, first: masked.generate(net.net, (n, t, h, w), cond.window(...), g,
                                                              options, prime), total_t, t, context, prime)
    clips = decode_tokens(tokenizer, tokens)
"""

from __future__ import annotations

from videosynth.config import field_check
from videosynth.models.maskgit import MaskedPriorConfig, build_modules
from videosynth.pipelines.base import Option
from videosynth.pipelines.two_stage import CONTEXT_OPTION, PRIME_OPTIONS, TokenPriorPipeline
from videosynth.sampling import masked
from videosynth.sampling.masked import MaskedSampleConfig


class MaskedPipeline(TokenPriorPipeline):
    """A masked-token prior over a tokenizer's tokens, with the tokenizer it was trained on."""

    family = "maskgit"
    net_name = "prior"
    model_config_cls = MaskedPriorConfig
    sample_config_cls = MaskedSampleConfig
    options = (
        Option("steps", int, "parallel decoding steps per window", field_check(MaskedSampleConfig, "steps")),
        Option("temperature", float, "softmax temperature of the token draw (0 = the most likely token)",
               field_check(MaskedSampleConfig, "temperature")),
        Option("top_k", int, "draw among the k most likely tokens", field_check(MaskedSampleConfig, "top_k")),
        Option("guidance", float, "classifier-free guidance scale (1 = off; needs condition dropout in training)",
               field_check(MaskedSampleConfig, "guidance_scale")),
        CONTEXT_OPTION,
        *PRIME_OPTIONS,
    )

    build_modules = staticmethod(build_modules)
    sampler = staticmethod(masked.generate)
