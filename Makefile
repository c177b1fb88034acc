# The two commands of the README. Both create/reuse ./.venv and install what they need.
.PHONY: demo test setup bench

demo:
	scripts/setup-env.sh
	.venv/bin/videosynth demo $(ARGS)

test:
	scripts/setup-env.sh test
	.venv/bin/lint-imports
	.venv/bin/python -m pytest -q

setup:
	scripts/setup-env.sh test

bench:
	scripts/setup-env.sh bench
	.venv/bin/python benchmarks/data_loading.py
	.venv/bin/python benchmarks/audio_io.py
	.venv/bin/python benchmarks/scan.py --files 10000
	.venv/bin/python benchmarks/gan_step.py --threads 1
	.venv/bin/python benchmarks/mocogan_step.py --threads 1
	.venv/bin/python benchmarks/vq_step.py
	.venv/bin/python benchmarks/sampling.py
	.venv/bin/python benchmarks/tokenizer_quality.py $(if $(VIDEOGPT),--videogpt $(VIDEOGPT))
	$(if $(VIDEOGPT),.venv/bin/python benchmarks/peers.py --videogpt $(VIDEOGPT))
	.venv/bin/python benchmarks/peers.py --diffusers
