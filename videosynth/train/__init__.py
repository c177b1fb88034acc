"""Training: the shared loop (``loop.py``, split by concern into its sibling modules), one objective
per model family (``gan.py``, ``mocogan.py``, ``vqvae.py``, ``prior.py``) and the family registry
(``families.py``). Inference does not come through here: see ``videosynth.pipelines``.
"""
