"""The commented example sweep spec printed by `memlab sweep template` (kept as a string, not a data
file, so that it ships with any install). Its defaults are the acceptance sweep of the phase-diagram
issue at a laptop size; a test loads it to keep it valid."""

TEMPLATE = """\
# memlab sweep spec: a grid of `memlab train` runs whose memorization ratio is set beside the crossover
# prediction. Run it with:  memlab sweep run SPEC.toml --out DIR   (re-running resumes; DIR keeps the rows)
name = "gmm-d30-k4"

# Every value under [data] may be one value or a list; lists are grid axes and the data configurations
# are their Cartesian product. Each data configuration gets its own training set (drawn from `seed`),
# shared by every model size and training seed, and its own predicted crossover M*/N.
[data]
dataset = "gmm"                  # gmm | lowrank-gmm | templates
dim = 30                         # dimension d (ignored by templates)
components = 4                   # K
n_train = 100                    # N; a list such as [50, 100, 200] gives the N-by-M/N phase diagram
variance = 1.0                   # s2 (gmm) or colour variance s_c^2 (templates)
n_test = 1000
seed = 0                         # data draw
# rank = 3                       # lowrank-gmm: subspace rank r of each component (one value per sweep)
# noise = 0.0                    # lowrank-gmm: isotropic noise variance tau^2 (one value per sweep)
# template_source = "procedural" # templates: procedural | digits | path to a .npy/.npz of (n, H, W)
# height = 15
# width = 15

[model]
kind = "mixture"                 # mixture (size = M means) | mlp, dit (size = width) | unet (size = base
                                 # channels); for networks M := parameter count / d
unit = "fraction"                # fraction: sizes are M/N (mixture only) | absolute: M, width or channels
sizes = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
# depth = 3                      # mlp: residual blocks | unet: levels | dit: blocks

[seeds]
count = 3                        # training seeds per cell (one table row per cell and seed)

# Any field of memlab.diffusion.run.TrainConfig (flat layout) except model, size, depth and seeds
# (unet and dit need dataset = "templates"; dit also reads patch and heads).
[train]
steps = 4000
lr = 1e-2

# Sampling fields of TrainConfig (kept apart for readability; merged into [train]).
[sampling]
samples = 200

# Adaptive refinement: after the coarse sizes, add `points` sizes between the last size whose mean
# ratio is < 0.1 and the first whose mean ratio is >= 0.9, `rounds` times.
[refine]
rounds = 1
points = 3

# Fields of memlab.crossover.predict.CrossoverConfig for the predicted M*/N of each data configuration.
# Without `weighting` here, the training weighting is used, so that the prediction is about the
# objective the models were trained on.
[predict]
repeats = 5
"""


JOBS_TEMPLATE = """\
# memlab job spec: named memlab command lines (retraining with a mitigation, more seeds, scoring) run by the
# sweep runner. Run it with:  memlab sweep run SPEC.toml --out DIR   (re-running resumes; --workers N runs N
# jobs at once, each with one thread; --backend ray runs them on Ray)
name = "iar-seeds"

# Arguments every job of a command gets unless it sets them itself: key = value becomes --key value
# (underscores become dashes; true is a bare flag, false leaves it out, a list is joined with commas).
[defaults."iar train"]
threads = 1

# One [[job]] table per command; a grid makes one job per combination, and {key} puts the combination's
# value into the name and into any argument. The runner adds --out DIR/runs/NAME (and --resume for a run
# a killed sweep left half-written).
[[job]]
name = "base-{arch}-s{seed}"
command = "iar train"
args = { arch = "{arch}", seed = "{seed}", n_train = 48, n_heldout = 16, duplicates = 6, n_duplicated = 2, epochs = 20 }
grid = { arch = ["next-scale", "raster"], seed = [0, 1] }

# {run:NAME} is the run directory of job NAME and makes this job wait for it. A job with out = false
# writes into the run it is given (here RUN/localize) and gets no --out; inputs are positional arguments.
[[job]]
name = "localize-{arch}-s{seed}"
command = "iar localize"
out = false
inputs = ["{run:base-{arch}-s{seed}}"]
grid = { arch = ["next-scale", "raster"], seed = [0, 1] }
"""
