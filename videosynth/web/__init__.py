"""``videosynth serve``: a web page over trained runs (Gradio), standing on the pipeline API.

:mod:`.runs` holds what the page can ask of a run and the generation itself (no Gradio);
:mod:`.app` builds the page.
"""
