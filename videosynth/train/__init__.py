"""Training: the shared loop (``loop.py``, split by concern into its sibling modules), one objective
per model family (``gan.py``, ``mocogan.py``, ``vqvae.py``, ``prior.py``, ``maskgit.py``,
``flow.py``; the token priors on ``latent_stage.py``) and the family registry (``families.py``,
which ``videosynth.load`` and the CLI read too). Inference does not come through here: see
``videosynth.pipelines``.
"""
