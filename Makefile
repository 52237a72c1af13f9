# make        set up .venv, fetch the VGG-16 weights and the images, run the notebooks in order
#             (figures/ and html/ are the result)
# make test   set up .venv if needed, lint (ruff) and run the tests (notebooks included, on the smoke preset)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The tested PyTorch pair; any recent CPU, CUDA or MPS build works.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
MIRROR ?= $(wildcard ../shared/data)

.PHONY: all setup data test notebooks clean-outputs base base-small starry-night anystyle anystyle-base anystyle-fast base-fast base-lite

# The multi-style base that ships (fastst/pretrained/base.pth): every style image of the data
# set in one full-width network, on the cpu preset (one photo a step, a style a step in turn) for as many
# iterations as 3,000 a style; resumable (run it again to continue).
BASE_ITERATIONS ?= 21000

all: setup data notebooks

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -m pip install $(TORCH)
	$(PY) -m pip install -e ".[notebooks,export,openvino,video,app,test]"
	touch $@

setup: $(VENV)/.prepared
	$(PY) -m fastst weights fetch

# The runtimes timed here ahead for every shipped network (fastst prepare), again when the networks change.
$(VENV)/.prepared: $(VENV)/.installed $(wildcard fastst/pretrained/*.pth)
	$(PY) -m fastst weights fetch
	$(PY) -m fastst prepare
	touch $@

data: setup
	$(PY) -m fastst data fetch --paintings $(if $(MIRROR),--mirror $(MIRROR))

notebooks: data
	$(PY) -m fastst notebooks run --html

test: setup data
	$(PY) -m ruff check fastst tests tools
	$(PY) -m pytest -q

base: data
	$(PY) -m fastst train --preset cpu --iterations $(BASE_ITERATIONS) --data data/train --out runs/base --resume \
		$(foreach f,$(sort $(wildcard data/styles/*.jpg)),--style $(f))
	$(PY) tools/ship_pretrained.py runs/base/model.pth base

# The base's styles on the shipped Starry Night's smaller network (cpu_small: folded input and output, half
# width, three residual blocks), for the same iterations; resumable. Not shipped: it scored far behind the
# base on every style (tools/fast_base.py, docs/many_styles.md).
base-small: data
	$(PY) -m fastst train --preset cpu_small --iterations $(BASE_ITERATIONS) --data data/train --out runs/base_small \
		--resume $(foreach f,$(sort $(wildcard data/styles/*.jpg)),--style $(f))

# The Starry Night network that ships (fastst/pretrained/starry_night.pth): the smaller network (cpu_small) taught
# the shipped base's pictures, first its seven styles together, then Starry Night alone (tools/distill_base.py,
# docs/performance.md); each step resumable.
DISTILL := $(PY) tools/distill_base.py
starry-night: data
	$(PY) -m fastst train --preset cpu_small --style data/styles/starry_night.jpg --data data/train \
		--out runs/starry_night_small --resume
	$(DISTILL) --student runs/starry_night_small/model.pth --iterations 6000 --out runs/distill_base
	$(DISTILL) --student runs/distill_base/model.pth --style-weight 2 --iterations 3000 --lr 3e-4 --out runs/distill_gram
	$(DISTILL) --student runs/distill_gram/model.pth --style-weight 4 --iterations 3000 --lr 3e-4 --out runs/distill_gram2
	$(DISTILL) --student runs/distill_gram2/model.pth --style starry_night --style-weight 2 --iterations 1500 \
		--lr 5e-4 --out runs/distill_starry_night
	$(PY) tools/ship_pretrained.py runs/distill_starry_night/model.pth starry_night

# The base's styles fast (fastst/pretrained/base_fast.pth, which `--style NAME` takes for them): the base itself
# with no layer at full resolution and its convolutions factored to low rank, taught the base's pictures of
# its styles and of mixes of two, its norms the base's (tools/distill_base.py --ranks, docs/performance.md);
# resumable.
BASE_FAST_RANKS = {"residual": [32, 32], "into": [null, 32], "down": [32, null], "up1": [48, 48], "up2": [32, 32], "out": [32, null]}
base-fast: data
	$(DISTILL) --ranks '$(BASE_FAST_RANKS)' --mix-share 0.3 --style-weight 1 --lr 3e-4 --iterations 4000 \
		--out runs/distill_base_factored
	$(PY) tools/ship_pretrained.py runs/distill_base_factored/model.pth base_fast

# The base's styles with fewer multiply-adds (fastst/pretrained/base_lite.pth, which `--style NAME` takes for
# them, holding fewer parameters): the shipped base_fast with its second stride-2 layer factored too and its
# residual layers to lower ranks, taught by the base again (tools/distill_base.py --start); then with zero
# padding inside the network, which the runtimes take into the convolutions, taught again on small crops,
# on larger ones, and with the two styles furthest from the base drawn more often. base_fast stays the
# default one pass's network. Each step resumable.
BASE_LITE_RANKS = {"down2": [32, 32], "residual": [24, 24]}
BASE_LITE := --ranks '$(BASE_LITE_RANKS)' --mix-share 0.3
base-lite: data
	$(DISTILL) --start base_fast $(BASE_LITE) --style-weight 1 --lr 2e-4 --iterations 1500 --out runs/distill_base_lite
	$(DISTILL) --start runs/distill_base_lite/model.pth $(BASE_LITE) --pad zero --style-weight 1 --lr 2e-4 \
		--iterations 2000 --out runs/distill_base_zero
	$(DISTILL) --start runs/distill_base_zero/model.pth $(BASE_LITE) --style-weight 2 --size 192 --lr 1e-4 \
		--iterations 800 --out runs/distill_base_zero2
	$(DISTILL) --start runs/distill_base_zero2/model.pth $(BASE_LITE) --style-weight 2 --size 192 --lr 1e-4 \
		--iterations 600 --draws '{"woman_with_a_parasol": 3, "shipwreck_of_the_minotaur": 2}' \
		--out runs/distill_base_zero3
	$(PY) tools/ship_pretrained.py runs/distill_base_zero3/model.pth base_lite

# The small one-pass model that ships (fastst/pretrained/anystyle.pth, the default without AMX or a GPU): any
# painting as the style, trained on the paintings of `data fetch --paintings` less the held-out ones;
# resumable (run it again to continue).
ANYSTYLE_ITERATIONS ?= 20000
# where a new run starts: the shipped half-width Starry Night network, or "anystyle" to go on from the
# shipped one-pass model
ANYSTYLE_FROM ?= starry_night

anystyle: setup
	$(PY) -m fastst data fetch --paintings $(if $(MIRROR),--mirror $(MIRROR))
	$(PY) -m fastst train-anystyle --iterations $(ANYSTYLE_ITERATIONS) --out runs/anystyle --from $(ANYSTYLE_FROM) --resume
	cp runs/anystyle/model.pth fastst/pretrained/anystyle.pth

# The one-pass model on the base's frozen network (fastst/pretrained/anystyle_base.pth, `--model
# anystyle_base`): the predictor alone, at the paintings' 256 px, then with made styles, then at twice the
# measure's lambda_s, then four runs on from there whose predictors are averaged, with the palette step.
# Each run resumes; see docs/any_painting.md.
ANYSTYLE_BASE = $(PY) -m fastst train-anystyle --predictor-only --painting-size 256 --lr 2e-4 --clip 200 --resume
anystyle-base: setup
	$(PY) -m fastst data fetch --paintings $(if $(MIRROR),--mirror $(MIRROR))
	$(ANYSTYLE_BASE) --from base --style-weight 2 --iterations 8000 --out runs/anystyle_p256
	$(ANYSTYLE_BASE) --from runs/anystyle_p256/model.pth --style-weight 2 --made-styles 1500 --iterations 10000 \
		--out runs/anystyle_made
	$(ANYSTYLE_BASE) --from runs/anystyle_made/model.pth --style-weight 4 --made-styles 1500 --iterations 4000 \
		--out runs/anystyle_made_sw4
	$(foreach w,4b 6 8,$(ANYSTYLE_BASE) --from runs/anystyle_made_sw4/model.pth --style-weight $(subst b,,$(w)) \
		--made-styles 1500 --iterations 4000 --out runs/anystyle_made_sw$(w) &&) true
	$(ANYSTYLE_BASE) --from runs/anystyle_made_sw4/model.pth --style-weight 4 --made-styles 2000 \
		--made-kinds flat,mosaic,collage,shapes --iterations 4000 --out runs/anystyle_shapes
	$(PY) tools/average_predictors.py runs/anystyle_made_sw4b/model.pth runs/anystyle_made_sw8/model.pth \
		runs/anystyle_shapes/model.pth runs/anystyle_made_sw6/model.pth --palette 0.25 --out runs/anystyle_soup_palette/model.pth
	$(PY) tools/ship_pretrained.py runs/anystyle_soup_palette/model.pth anystyle_base

# The default one-pass model (fastst/pretrained/anystyle_fast.pth): anystyle_base's predictor on base_fast's
# network (the base folded and factored, `make base-fast`), trained on there with the made styles; the
# palette step kept. Resumes; see docs/any_painting.md.
anystyle-fast: setup
	$(PY) -m fastst data fetch --paintings $(if $(MIRROR),--mirror $(MIRROR))
	$(ANYSTYLE_BASE) --from anystyle_base --body base_fast --style-weight 6 --made-styles 1500 --lr 1e-4 \
		--iterations 2000 --out runs/anystyle_fast
	$(PY) tools/ship_pretrained.py runs/anystyle_fast/model.pth anystyle_fast

clean-outputs:
	$(PY) -m fastst notebooks strip
