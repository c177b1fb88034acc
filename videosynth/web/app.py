"""The page: pick a run, set its conditions and sampler, Generate, watch the clips (Gradio Blocks).

The controls follow the chosen run: a class dropdown from its class names, a caption box for
text runs, a first-frames upload for runs that continue videos or animate a frame, a sound upload for sound-driven
runs (the clips come back with that soundtrack), and the sampler settings its
family takes (guidance, ODE steps and solver, temperature / top-k / top-p). Requests queue and
run one at a time on the shared models, so two tabs generating at once both get their clips.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path

from videosynth.errors import ConfigError, VideoSynthError
from videosynth.web.runs import Limits, Request, ServedRun, generate

log = logging.getLogger("videosynth.web")

EVERY_CLASS = "(every class in turn)"
CACHE_SECONDS = 3600  # generated files older than this are removed from the server's cache
QUEUE_SIZE = 32  # requests waiting beyond this are refused with "queue full" instead of piling up
NUMBER_CONTROLS = {  # option -> (label, integer?)
    "guidance": ("guidance scale (1 = off)", False),
    "steps": ("ODE steps", True),
    "temperature": ("temperature (0 = greedy)", False),
    "top_k": ("top-k", True),
    "top_p": ("top-p", False),
    "prime_frames": ("observed frames of the upload", True),
}


def import_gradio():
    """Gradio, or a one-line error saying how to install it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves this machine
    try:
        import gradio
    except ImportError:
        raise ConfigError("the web app needs Gradio: pip install 'videosynth[web]' "
                          "(or pip install gradio)") from None
    return gradio


def _as_int(value, name: str) -> int | None:
    if value is None or value == "":
        return None
    if float(value) != int(float(value)):
        raise ConfigError(f"{name} {value} must be a whole number")
    return int(float(value))


def build_app(runs: list[ServedRun], limits: Limits, out_dir: str | Path | None = None, fps: int = 8):
    """A Gradio Blocks app over ``runs`` (launch it with ``.queue().launch(...)``, as ``videosynth serve`` does)."""
    gr = import_gradio()
    by_name = {r.name: r for r in runs}
    if out_dir is None:  # the server's own scratch folder, removed when it exits
        out_root = Path(tempfile.mkdtemp(prefix="videosynth-serve-"))
        atexit.register(shutil.rmtree, out_root, ignore_errors=True)
    else:
        out_root = Path(out_dir)
    counter = iter(range(1 << 62))

    def show_run(name: str, reset: bool = True):
        """Control updates for the chosen run, then its config, loss plot and metrics.

        ``reset`` clears the uploads made for the previous run; the first showing at page load
        leaves them, so an upload made while the page loads is kept. Sampler fields start empty
        (the run's own settings)."""
        run = by_name[name]
        classes = run.class_names
        opts = run.options
        cleared = {"value": None} if reset else {}
        empty = {"value": None}
        updates = [
            gr.update(choices=[EVERY_CLASS, *classes], value=classes[0] if classes else EVERY_CLASS,
                      visible=bool(classes)),
            gr.update(visible=run.takes_text),
            gr.update(visible="prime" in opts, **cleared),
            gr.update(visible=run.takes_audio, **cleared),
            gr.update(value=run.frames, info=f"trained on {run.frames}; at most {limits.max_frames}"),
            gr.update(visible="solver" in opts, choices=list(opts["solver"].choices) if "solver" in opts else [],
                      **empty),
            *(gr.update(visible=key in opts, **empty) for key in NUMBER_CONTROLS),
        ]
        loss = run.loss_plot()
        side = [run.config_yaml(), str(loss) if loss else None, run.metrics()]
        return *updates, *side

    def on_generate(name, label, text, prime, audio, seed, num, frames, solver, *numbers, progress=gr.Progress()):
        run = by_name.get(name)
        if run is None:
            raise gr.Error(f"unknown run {name!r}")
        try:
            options = {key: (_as_int(value, key) if integer else value)
                       for (key, (_, integer)), value in zip(NUMBER_CONTROLS.items(), numbers)}
            options["solver"] = solver
            if prime is not None:
                options["prime"] = str(prime)
            clips, seed = _as_int(num, "clips"), _as_int(seed, "seed")
            request = Request(num=1 if clips is None else clips, seed=0 if seed is None else seed,
                              frames=_as_int(frames, "frames"),
                              label=None if label in (None, "", EVERY_CLASS) else str(label), text=text,
                              audio=str(audio) if audio else None, options=options)
            folder = out_root / f"request-{next(counter):06d}"
            result = generate(run, request, limits, folder, fps=fps,
                              progress=lambda done, total: progress((done, total), desc="sampling", unit="clips"))
        except VideoSynthError as exc:  # the user's to fix: shown in the page, not logged as a failure
            raise gr.Error(str(exc), print_exception=False) from None
        except OSError as exc:
            raise gr.Error(f"{exc.filename or ''} {exc.strerror or exc}".strip(), print_exception=False) from None
        except Exception:
            log.exception("generation failed for %s", name)
            raise gr.Error("generation failed; the server's log has the details") from None
        return str(result.grid), [str(p) for p in result.clips], result.info

    with gr.Blocks(title="videosynth", delete_cache=(CACHE_SECONDS, CACHE_SECONDS)) as app:
        gr.Markdown("## videosynth: sample a trained run")
        with gr.Row():
            with gr.Column(scale=3):
                run_box = gr.Dropdown(choices=list(by_name), value=runs[0].name, label="run", elem_id="run")
                label_box = gr.Dropdown(label="class", elem_id="label", interactive=True)
                text_box = gr.Textbox(label="caption", placeholder="a white square moves right", elem_id="text")
                prime_box = gr.File(label="first frames: a video whose start is continued (MoCoGAN: an image, or a "
                                          "video's first frame, to animate)", type="filepath", elem_id="prime")
                audio_box = gr.Audio(label="sound that drives the clips (wav, mp3, flac, ogg, m4a)", type="filepath",
                                     sources=["upload"], format=None, elem_id="audio")
                with gr.Row():
                    seed_box = gr.Number(value=0, precision=0, label="seed", elem_id="seed")
                    num_box = gr.Number(value=4, precision=0, label="clips",
                                        info=f"at most {limits.max_clips}", elem_id="num")
                    frames_box = gr.Number(precision=0, label="frames", elem_id="frames")
                with gr.Row():
                    solver_box = gr.Dropdown(choices=[], value=None, label="ODE solver", elem_id="solver")
                    number_boxes = [gr.Number(label=text, precision=0 if integer else None, info="empty: the run's",
                                              elem_id=key.replace("_", "-"))
                                    for key, (text, integer) in NUMBER_CONTROLS.items()]
                button = gr.Button("Generate", variant="primary", elem_id="generate")
                info_box = gr.Markdown(elem_id="info")
                video_box = gr.Video(label="clips (one grid)", autoplay=True, loop=True, elem_id="grid")
                files_box = gr.File(label="each clip", file_count="multiple", elem_id="clips")
            with gr.Column(scale=2):
                with gr.Tab("config"):
                    config_box = gr.Code(language="yaml", label="config.yaml", elem_id="config")
                with gr.Tab("loss"):
                    loss_box = gr.Image(label="loss.png", type="filepath", elem_id="loss")
                with gr.Tab("metrics"):
                    metrics_box = gr.JSON(label="metrics", elem_id="metrics")
        controls = [label_box, text_box, prime_box, audio_box, frames_box, solver_box, *number_boxes]
        side = [config_box, loss_box, metrics_box]
        run_box.change(show_run, inputs=run_box, outputs=controls + side)
        app.load(lambda name: show_run(name, reset=False), inputs=run_box, outputs=controls + side)
        button.click(on_generate, inputs=[run_box, label_box, text_box, prime_box, audio_box, seed_box, num_box,
                                          frames_box, solver_box, *number_boxes],
                     outputs=[video_box, files_box, info_box], concurrency_limit=1)
    app.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    return app

