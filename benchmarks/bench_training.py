"""End-to-end training steps of minireparam and PyTorch CPU, timed side by side.

Every workload builds the same model in both frameworks from the same initial weights
(minireparam draws them, and PyTorch loads them through its state dict, whose parameter
names match) and feeds both the same float32 data. Before any timing, it checks that the
two sides compute the same loss and the same gradients within a stated tolerance.
Then it times one training step (forward + backward + optimizer step) of each side,
alternating the sides inside one process. It reports the median time of each side and
the ratio minireparam time / PyTorch time (lower is better) at every thread count given.

Workloads:
    W-LSTM       vocab 96 (random ids), embedding 64, one LSTM layer of 256, sequence 64,
                 batch 32, cross-entropy over all positions, Adam lr 2e-3, gradient-norm
                 clip 1.0. PyTorch runs the same algorithm as a hand-built cell loop (one
                 GEMM for all input projections, then one recurrent GEMM per step), and,
                 for information, torch.nn.LSTM.
    W-ATTN       vocab 96, d_model 128, 4 heads, 2 pre-LayerNorm blocks with a 4x MLP and
                 tanh-GELU, context 128, batch 16, causal, learned positions, Adam 1e-3,
                 dropout 0.
    W-VAE        the digits Gaussian VAE (64-256-256 -> 16 -> 256-256-64), batch 128,
                 Adam 1e-3; the latent noise is drawn from equally seeded generators.
    W-OPS        1000 chained elementwise ops (multiply, add, tanh in turn) on an 8x8
                 float32 tensor: forward + backward against PyTorch, and the forward under
                 no_grad against plain numpy (the floor for per-op overhead).
    W-GRADCHECK  gradcheck of every op registry entry (first and second order), timed.

Memory: before building anything, the script calls minireparam.allocator.reuse_freed_memory(),
which makes glibc keep freed blocks up to 32 MiB for reuse instead of returning them to the
kernel. The minireparam training harness does the same. The setting holds for the whole
process, so both sides of every comparison run with it. --default-malloc leaves glibc's
defaults.

Threads are set for each run with threadpoolctl (numpy's BLAS), torch.set_num_threads
and minireparam.kernels.set_num_threads (the C kernels; MINIREPARAM_NUM_THREADS sets the
same at import). Without PyTorch installed, only the minireparam sides are timed, and the
output prints a line stating that.

Usage:
    python benchmarks/bench_training.py                       # all workloads, 1 and 2 threads
    python benchmarks/bench_training.py --workloads W-LSTM --threads 1 --repeats 10
    python benchmarks/bench_training.py --json runs/bench/run2.json \
        --include-run runs/bench/run1.json --update-results  # RESULTS.md quotes both runs
    python benchmarks/bench_training.py --smoke               # tiny shapes: equality checks only
"""
import argparse
import contextlib
import dataclasses
import functools
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

import numpy as np

import minireparam as mr
from minireparam import kernels
from minireparam import optim as mr_optim
from minireparam.models import CharLSTM, TinyGPT
from minireparam.nn import functional as mr_F
from minireparam.nn.utils import clip_grad_norm_ as mr_clip_grad_norm_

try:
    import torch
except ImportError:  # PyTorch is optional: minireparam is then timed alone
    torch = None

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:
    threadpool_info = threadpool_limits = None

WORKLOADS = ("W-LSTM", "W-ATTN", "W-VAE", "W-OPS", "W-GRADCHECK")
RESULTS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
SECTION_TITLE = "## End-to-end training steps"
BEGIN_MARK = "<!-- bench_training.py: generated table, begin -->"
END_MARK = "<!-- bench_training.py: generated table, end -->"

# Workload shapes: the benchmark's sizes, and tiny ones for --smoke (checks only).
LSTM_SIZES = {"full": dict(vocab=96, embedding=64, hidden=256, steps=64, batch=32),
              "smoke": dict(vocab=11, embedding=6, hidden=8, steps=5, batch=3)}
ATTN_SIZES = {"full": dict(vocab=96, d_model=128, heads=4, layers=2, context=128, batch=16),
              "smoke": dict(vocab=11, d_model=8, heads=2, layers=1, context=6, batch=2)}
VAE_SIZES = {"full": dict(data=64, hidden=256, latent=16, batch=128),
             "smoke": dict(data=64, hidden=12, latent=3, batch=5)}
OPS_SIZES = {"full": dict(ops=1000, side=8), "smoke": dict(ops=30, side=3)}

# Tolerances of the equality checks. Both sides run in float32 but sum in different
# orders (GEMM blocking, 64 recurrent steps, pairwise versus sequential reductions), so
# values agree to a few float32 ulps of their own magnitude, not bit for bit.
LOSS_RTOL = 2e-5       # |loss_mr − loss_torch| <= LOSS_RTOL · max(1, |loss_torch|)
GRAD_RTOL = 2e-4       # max |g_mr − g_torch| <= GRAD_RTOL · max |g_torch| (per parameter tensor)


# -- threads, machine and versions ----------------------------------------------------------


@contextlib.contextmanager
def thread_count(n):
    """Run a block with ``n`` threads in OpenBLAS (numpy), PyTorch and the C kernels."""
    previous_torch = torch.get_num_threads() if torch is not None else None
    previous_kernels = kernels.get_num_threads()
    limits = threadpool_limits(limits=n, user_api="blas") if threadpool_limits else contextlib.nullcontext()
    with limits:
        kernels.set_num_threads(n)
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            kernels.set_num_threads(previous_kernels)
            if torch is not None:
                torch.set_num_threads(previous_torch)


def cpu_model():
    """Return the CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            for line in stream:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_vector_extensions():
    """Return the x86 vector extensions the CPU reports (avx2, fma, avx512f), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            for line in stream:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [flag for flag in ("avx2", "fma", "avx512f") if flag in flags]
    except OSError:
        pass
    return []


def load_average():
    """Return the 1-minute load average (other processes competing for the cores), or None."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine_facts():
    facts = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "vector_extensions": cpu_vector_extensions(),
        "platform": platform.platform(),
        "openblas_env": {name: os.environ.get(name) for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
    }
    if threadpool_info is not None:
        facts["blas"] = [
            {key: pool.get(key) for key in ("internal_api", "version", "architecture", "filepath")}
            for pool in threadpool_info() if pool.get("user_api") == "blas"
        ]
    return facts


def source_revision():
    """Return the git commit of the checkout being measured, or None outside a git checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        result = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def version_facts():
    info = kernels.info()
    return {
        "minireparam_commit": source_revision(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "minireparam": mr.__version__,
        "minireparam_backend": info["backend"],
        "minireparam_simd": info.get("simd"),
    }


# -- workloads, checks and timing -------------------------------------------------------------


@dataclasses.dataclass
class Comparison:
    """One ratio reported: median(numerator side) / median(denominator side), with its target."""

    label: str
    numerator: str
    denominator: str
    target: float = None           # the ratio to reach (lower is better); None: for information
    per: int = 1                   # the timed step contains this many units (ops); shown per unit


@dataclasses.dataclass
class Workload:
    """The timed sides of one workload, the ratios to report, and the equality checks' results."""

    name: str
    description: str
    sides: dict                    # side label -> callable running one timed step
    comparisons: list
    checks: list = dataclasses.field(default_factory=list)
    repeats: int = None            # overrides --repeats (W-GRADCHECK is slow per run)
    warmup: int = 2
    notes: list = dataclasses.field(default_factory=list)


def compare_values(quantity, ours, theirs, rtol):
    """Check max |ours − theirs| <= rtol · max(1e-30, max |theirs|); return the check record."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if ours.shape != theirs.shape:
        return {"quantity": quantity, "passed": False, "detail": f"shapes differ: {ours.shape} vs {theirs.shape}"}
    difference = float(np.max(np.abs(ours - theirs))) if ours.size else 0.0
    scale = float(np.max(np.abs(theirs))) if theirs.size else 0.0
    bound = rtol * max(scale, 1e-30)
    return {"quantity": quantity, "max_abs_diff": difference, "reference_max_abs": scale, "bound": bound,
            "passed": bool(difference <= bound)}


def compare_loss(quantity, ours, theirs):
    bound = LOSS_RTOL * max(1.0, abs(theirs))
    difference = abs(ours - theirs)
    return {"quantity": quantity, "minireparam": ours, "torch": theirs, "max_abs_diff": difference,
            "bound": bound, "passed": bool(difference <= bound)}


def compare_gradients(side, mr_model, torch_model):
    """Compare minireparam's ``.grad`` with torch's for every parameter, matched by state-dict name."""
    torch_grads = {name: param.grad for name, param in torch_model.named_parameters()}
    checks = []
    for name, param in mr_model.named_parameters():
        theirs = torch_grads.get(name)
        if param.grad is None or theirs is None:
            checks.append({"quantity": f"{side}: grad {name}", "passed": False,
                           "detail": "a gradient is missing on one side"})
            continue
        checks.append(compare_values(f"{side}: grad {name}", param.grad, theirs.numpy(), GRAD_RTOL))
    return checks


def load_into_torch(torch_model, mr_model):
    """Copy minireparam's parameters into ``torch_model`` (strict: every name must match)."""
    state = {name: torch.from_numpy(np.array(array)) for name, array in mr_model.state_dict().items()}
    torch_model.load_state_dict(state, strict=True)


def time_sides(workload, repeats, settle):
    """Time every side ``repeats`` times, rotating which side runs first; return seconds per side.

    ``settle`` seconds of sleep follow every timed step. Idle OpenBLAS and PyTorch worker
    threads spin for a while after a parallel call, and the pause keeps them from
    competing with the next side for the cores.
    """
    labels = list(workload.sides)
    for _ in range(workload.warmup):
        for label in labels:
            workload.sides[label]()
    seconds = {label: [] for label in labels}
    cpu_seconds = {label: [] for label in labels}
    for repeat in range(repeats):
        start = repeat % len(labels)
        for label in labels[start:] + labels[:start]:
            began, cpu_began = time.perf_counter(), time.process_time()
            workload.sides[label]()
            seconds[label].append(time.perf_counter() - began)
            cpu_seconds[label].append(time.process_time() - cpu_began)
            if settle:
                time.sleep(settle)
    return seconds, cpu_seconds


def summarize(workload, seconds, cpu_seconds):
    """Return the medians per side and the workload's ratios (None where a side is missing).

    Besides wall time, each side's median process CPU time is kept. At one thread it
    counts only the time this process ran, so load from other processes distorts it
    least. At two threads it also counts spinning worker threads.
    """
    medians = {label: statistics.median(values) for label, values in seconds.items()}
    cpu_medians = {label: statistics.median(values) for label, values in cpu_seconds.items()}
    sides = {
        label: {"median_ms": 1e3 * medians[label], "min_ms": 1e3 * min(values),
                "max_ms": 1e3 * max(values), "cpu_median_ms": 1e3 * cpu_medians[label], "runs": len(values)}
        for label, values in seconds.items()
    }
    ratios = []
    for comparison in workload.comparisons:
        ratio = ratio_of_minimums = cpu_ratio = None
        if comparison.numerator in medians and comparison.denominator in medians:
            ratio = medians[comparison.numerator] / medians[comparison.denominator]
            ratio_of_minimums = min(seconds[comparison.numerator]) / min(seconds[comparison.denominator])
            cpu_ratio = cpu_medians[comparison.numerator] / max(cpu_medians[comparison.denominator], 1e-12)
        ratios.append({"label": comparison.label, "numerator": comparison.numerator,
                       "denominator": comparison.denominator, "ratio": ratio,
                       "ratio_of_minimums": ratio_of_minimums, "cpu_ratio": cpu_ratio,
                       "target": comparison.target, "per": comparison.per,
                       "met": None if ratio is None or comparison.target is None else ratio <= comparison.target})
    return sides, ratios


# -- W-LSTM ---------------------------------------------------------------------------------------


def _torch_cell_lstm_class():
    """Return a char-LSTM class built from torch ops: the algorithm of minireparam's fused LSTM op."""

    class TorchCellCharLSTM(torch.nn.Module):
        def __init__(self, vocab, embedding, hidden):
            super().__init__()
            self.embedding = torch.nn.Embedding(vocab, embedding)
            self.lstm = torch.nn.Module()
            gates = 4 * hidden
            self.lstm.weight_ih_l0 = torch.nn.Parameter(torch.empty(gates, embedding))
            self.lstm.weight_hh_l0 = torch.nn.Parameter(torch.empty(gates, hidden))
            self.lstm.bias_ih_l0 = torch.nn.Parameter(torch.empty(gates))
            self.lstm.bias_hh_l0 = torch.nn.Parameter(torch.empty(gates))
            self.head = torch.nn.Linear(hidden, vocab)
            self.hidden = hidden

        def forward(self, ids):
            lstm = self.lstm
            x = self.embedding(ids).transpose(0, 1)                              # (T, B, E)
            projected = torch.nn.functional.linear(x, lstm.weight_ih_l0, lstm.bias_ih_l0 + lstm.bias_hh_l0)
            h = x.new_zeros(x.shape[1], self.hidden)
            c = x.new_zeros(x.shape[1], self.hidden)
            outputs = []
            for t in range(x.shape[0]):
                gates = projected[t] + h @ lstm.weight_hh_l0.T
                i, f, g, o = gates.chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outputs.append(h)
            return self.head(torch.stack(outputs, dim=1))                        # (B, T, V)

    return TorchCellCharLSTM


def _torch_nn_lstm_class():
    class TorchCharLSTM(torch.nn.Module):
        def __init__(self, vocab, embedding, hidden):
            super().__init__()
            self.embedding = torch.nn.Embedding(vocab, embedding)
            self.lstm = torch.nn.LSTM(embedding, hidden, batch_first=True)
            self.head = torch.nn.Linear(hidden, vocab)

        def forward(self, ids):
            hidden, _state = self.lstm(self.embedding(ids))
            return self.head(hidden)

    return TorchCharLSTM


def _torch_language_model_step(model, optimizer, inputs, targets, clip):
    """One torch training step of a next-token model; returns the loss before the update."""
    optimizer.zero_grad()
    logits = model(inputs)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss


def _mr_language_model_step(model, optimizer, inputs, targets, clip):
    optimizer.zero_grad()
    loss = model.loss(inputs, targets)
    loss.backward()
    if clip is not None:
        mr_clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss


def _check_language_model(side, mr_model, torch_model, inputs, targets):
    """Compare the loss and gradients of one forward + backward on both sides (no optimizer step)."""
    mr_model.zero_grad()
    mr_loss = mr_model.loss(inputs, targets)
    mr_loss.backward()
    torch_model.zero_grad()
    logits = torch_model(torch.from_numpy(inputs))
    torch_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                   torch.from_numpy(targets).reshape(-1))
    torch_loss.backward()
    checks = [compare_loss(f"{side}: loss", float(mr_loss.item()), float(torch_loss.item()))]
    checks += compare_gradients(side, mr_model, torch_model)
    mr_model.zero_grad()
    torch_model.zero_grad()
    return checks


def build_lstm(sizes, seed):
    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, sizes["vocab"], size=(sizes["batch"], sizes["steps"]), dtype=np.int64)
    targets = rng.integers(0, sizes["vocab"], size=(sizes["batch"], sizes["steps"]), dtype=np.int64)
    lr, clip = 2e-3, 1.0

    model = CharLSTM(sizes["vocab"], sizes["embedding"], sizes["hidden"], generator=mr.Generator(seed))
    optimizer = mr_optim.Adam(model.parameters(), lr=lr)
    sides = {"minireparam": functools.partial(_mr_language_model_step, model, optimizer, inputs, targets, clip)}
    comparisons = [
        Comparison("vs hand-built torch LSTM cell loop", "minireparam", "torch cell loop", 1.0),
        Comparison("vs torch.nn.LSTM", "minireparam", "torch.nn.LSTM", 1.3),
    ]
    workload = Workload("W-LSTM", "char LSTM LM: vocab {vocab}, embedding {embedding}, LSTM {hidden}, "
                        "T {steps}, batch {batch}, Adam 2e-3, clip 1.0".format(**sizes), sides, comparisons)
    if torch is None:
        return workload

    torch_inputs, torch_targets = torch.from_numpy(inputs), torch.from_numpy(targets)
    for label, model_class in (("torch cell loop", _torch_cell_lstm_class()),
                               ("torch.nn.LSTM", _torch_nn_lstm_class())):
        torch_model = model_class(sizes["vocab"], sizes["embedding"], sizes["hidden"])
        load_into_torch(torch_model, model)
        workload.checks += _check_language_model(label, model, torch_model, inputs, targets)
        torch_optimizer = torch.optim.Adam(torch_model.parameters(), lr=lr)
        sides[label] = functools.partial(_torch_language_model_step, torch_model, torch_optimizer, torch_inputs,
                                         torch_targets, clip)
    return workload


# -- W-ATTN ---------------------------------------------------------------------------------------


def _gelu_tanh(x):
    return mr_F.gelu(x, approximate="tanh")


def _torch_gpt_class():
    class TorchTinyGPT(torch.nn.Module):
        """TinyGPT's layout and parameter names, from torch.nn.TransformerEncoderLayer blocks."""

        def __init__(self, vocab, context, d_model, heads, layers):
            super().__init__()
            self.token_embedding = torch.nn.Embedding(vocab, d_model)
            self.position_embedding = torch.nn.Embedding(context, d_model)
            activation = functools.partial(torch.nn.functional.gelu, approximate="tanh")
            self.blocks = torch.nn.ModuleList([
                torch.nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=4 * d_model, dropout=0.0,
                                                 activation=activation, batch_first=True, norm_first=True)
                for _ in range(layers)
            ])
            self.norm = torch.nn.LayerNorm(d_model)
            self.head = torch.nn.Linear(d_model, vocab)

        def forward(self, ids):
            time_steps = ids.shape[1]
            positions = torch.arange(time_steps)
            x = self.token_embedding(ids) + self.position_embedding(positions)
            mask = torch.triu(torch.ones(time_steps, time_steps, dtype=torch.bool), diagonal=1)
            for block in self.blocks:
                x = block(x, src_mask=mask, is_causal=True)
            return self.head(self.norm(x))

    return TorchTinyGPT


def build_attention(sizes, seed):
    rng = np.random.default_rng(seed)
    shape = (sizes["batch"], sizes["context"])
    inputs = rng.integers(0, sizes["vocab"], size=shape, dtype=np.int64)
    targets = rng.integers(0, sizes["vocab"], size=shape, dtype=np.int64)
    lr = 1e-3

    model = TinyGPT(sizes["vocab"], context=sizes["context"], d_model=sizes["d_model"], n_heads=sizes["heads"],
                    n_layers=sizes["layers"], dropout=0.0, generator=mr.Generator(seed))
    for block in model.blocks:  # TinyGPT uses the exact GELU; the workload specifies the tanh form
        block.activation, block.activation_name = _gelu_tanh, "gelu_tanh"
    optimizer = mr_optim.Adam(model.parameters(), lr=lr)
    sides = {"minireparam": functools.partial(_mr_language_model_step, model, optimizer, inputs, targets, None)}
    comparisons = [Comparison("vs torch TransformerEncoderLayer", "minireparam", "torch", 1.0)]
    workload = Workload("W-ATTN", "tiny GPT: vocab {vocab}, d_model {d_model}, {heads} heads, {layers} pre-LN "
                        "blocks, 4x MLP, tanh-GELU, context {context}, batch {batch}, causal, "
                        "Adam 1e-3".format(**sizes), sides, comparisons)
    if torch is None:
        return workload

    torch_model = _torch_gpt_class()(sizes["vocab"], sizes["context"], sizes["d_model"], sizes["heads"],
                                     sizes["layers"])
    load_into_torch(torch_model, model)
    workload.checks += _check_language_model("torch", model, torch_model, inputs, targets)
    torch_optimizer = torch.optim.Adam(torch_model.parameters(), lr=lr)
    sides["torch"] = functools.partial(_torch_language_model_step, torch_model, torch_optimizer,
                                       torch.from_numpy(inputs), torch.from_numpy(targets), None)
    return workload


# -- W-VAE ----------------------------------------------------------------------------------------


def _torch_vae_class():
    class TorchGaussianVAE(torch.nn.Module):
        """GaussianVAE's layers and parameter names; the noise is passed in."""

        def __init__(self, data, hidden, latent):
            super().__init__()
            linear, relu = torch.nn.Linear, torch.nn.ReLU
            self.encoder = torch.nn.Sequential(linear(data, hidden), relu(), linear(hidden, hidden), relu())
            self.to_mean = linear(hidden, latent)
            self.to_logvar = linear(hidden, latent)
            self.decoder = torch.nn.Sequential(
                torch.nn.Sequential(linear(latent, hidden), relu(), linear(hidden, hidden), relu()),
                linear(hidden, data),
            )

        def negative_elbo(self, x, noise):
            features = self.encoder(x)
            mean, logvar = self.to_mean(features), self.to_logvar(features)
            z = mean + torch.exp(0.5 * logvar) * noise
            reconstruction = torch.nn.functional.binary_cross_entropy_with_logits(self.decoder(z), x,
                                                                                  reduction="sum")
            kl = -0.5 * torch.sum(1.0 + logvar - mean * mean - torch.exp(logvar))
            return (reconstruction + kl) / x.shape[0]

    return TorchGaussianVAE


def _import_gaussian_vae():
    """Return minireparam's GaussianVAE class, or None with the reason when it is not available."""
    try:
        from minireparam.models.vae import GaussianVAE
    except ImportError as error:
        return None, str(error)
    return GaussianVAE, None


def build_vae(sizes, seed):
    from minireparam.data import load_digits

    lr, noise_seed = 1e-3, seed + 1
    images = load_digits().train_images[:sizes["batch"], :sizes["data"]].astype(np.float32)
    gaussian_vae, reason = _import_gaussian_vae()
    if gaussian_vae is None:
        workload = Workload("W-VAE", "digits Gaussian VAE", {}, [])
        workload.notes.append(f"skipped: minireparam.models.vae.GaussianVAE is not importable ({reason})")
        return workload

    model = gaussian_vae(sizes["data"], sizes["hidden"], sizes["latent"], generator=mr.Generator(seed))
    optimizer = mr_optim.Adam(model.parameters(), lr=lr)

    def mr_step():
        optimizer.zero_grad()
        loss = model.negative_elbo(images, generator=mr.Generator(noise_seed))
        loss.backward()
        optimizer.step()

    sides = {"minireparam": mr_step}
    comparisons = [Comparison("vs torch", "minireparam", "torch", 1.0)]
    workload = Workload("W-VAE", "digits Gaussian VAE {data}-{hidden}-{hidden} -> {latent} -> {hidden}-{hidden}-"
                        "{data}, batch {batch}, Adam 1e-3".format(**sizes), sides, comparisons)
    if torch is None:
        return workload

    torch_model = _torch_vae_class()(sizes["data"], sizes["hidden"], sizes["latent"])
    load_into_torch(torch_model, model)
    torch_optimizer = torch.optim.Adam(torch_model.parameters(), lr=lr)
    torch_images = torch.from_numpy(images)

    def torch_noise():
        # The same draw as minireparam's Normal.rsample: standard normals from an equally seeded stream.
        generator = mr.Generator(noise_seed)
        return torch.from_numpy(generator.normal((sizes["batch"], sizes["latent"]), np.float32))

    def torch_step():
        torch_optimizer.zero_grad()
        loss = torch_model.negative_elbo(torch_images, torch_noise())
        loss.backward()
        torch_optimizer.step()

    model.zero_grad()
    mr_loss = model.negative_elbo(images, generator=mr.Generator(noise_seed))
    mr_loss.backward()
    torch_loss = torch_model.negative_elbo(torch_images, torch_noise())
    torch_loss.backward()
    workload.checks.append(compare_loss("torch: loss", float(mr_loss.item()), float(torch_loss.item())))
    workload.checks += compare_gradients("torch", model, torch_model)
    model.zero_grad()
    torch_model.zero_grad()
    sides["torch"] = torch_step
    return workload


# -- W-OPS ----------------------------------------------------------------------------------------


def elementwise_chain(x, w, b, count, tanh):
    """``count`` ops on x in turn: multiply by w, add b, tanh. Works on Tensors, torch tensors and arrays."""
    y = x
    for index in range(count):
        kind = index % 3
        if kind == 0:
            y = y * w
        elif kind == 1:
            y = y + b
        else:
            y = tanh(y)
    return y


def build_ops(sizes, seed):
    rng = np.random.default_rng(seed)
    shape, count = (sizes["side"], sizes["side"]), sizes["ops"]
    # The factor stays near 1 and tanh bounds the values, so 1000 ops neither blow up nor vanish.
    x0 = rng.uniform(-1.0, 1.0, shape).astype(np.float32)
    w0 = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    b0 = rng.uniform(-0.5, 0.5, shape).astype(np.float32)
    leaves = [mr.tensor(array.copy(), requires_grad=True) for array in (x0, w0, b0)]

    def mr_forward_backward():
        for leaf in leaves:
            leaf.grad = None
        loss = elementwise_chain(*leaves, count, mr.tanh).sum()
        loss.backward()
        return loss

    def mr_forward_no_grad():
        with mr.no_grad():
            return elementwise_chain(*leaves, count, mr.tanh)

    def numpy_forward():
        return elementwise_chain(x0, w0, b0, count, np.tanh)

    sides = {"minireparam fwd+bwd": mr_forward_backward, "minireparam no_grad fwd": mr_forward_no_grad,
             "numpy fwd": numpy_forward}
    comparisons = [
        Comparison("fwd+bwd vs torch (per op)", "minireparam fwd+bwd", "torch fwd+bwd", 0.6, per=count),
        Comparison("no_grad fwd vs numpy floor", "minireparam no_grad fwd", "numpy fwd", 2.5, per=count),
        Comparison("no_grad fwd vs torch no_grad fwd", "minireparam no_grad fwd", "torch no_grad fwd", None,
                   per=count),
    ]
    workload = Workload("W-OPS", f"{count} chained elementwise ops (multiply, add, tanh) on {shape} float32",
                        sides, comparisons)
    workload.checks.append(compare_values("numpy: no_grad forward", mr_forward_no_grad().data, numpy_forward(),
                                          GRAD_RTOL))
    if torch is None:
        return workload

    torch_leaves = [torch.tensor(array, requires_grad=True) for array in (x0, w0, b0)]

    def torch_forward_backward():
        for leaf in torch_leaves:
            leaf.grad = None
        loss = elementwise_chain(*torch_leaves, count, torch.tanh).sum()
        loss.backward()
        return loss

    def torch_forward_no_grad():
        with torch.no_grad():
            return elementwise_chain(*torch_leaves, count, torch.tanh)

    mr_loss, torch_loss = mr_forward_backward(), torch_forward_backward()
    workload.checks.append(compare_loss("torch: loss", float(mr_loss.item()), float(torch_loss.item())))
    for name, ours, theirs in zip("xwb", leaves, torch_leaves):
        workload.checks.append(compare_values(f"torch: grad {name}", ours.grad, theirs.grad.numpy(), GRAD_RTOL))
    sides["torch fwd+bwd"] = torch_forward_backward
    sides["torch no_grad fwd"] = torch_forward_no_grad
    return workload


# -- W-GRADCHECK ----------------------------------------------------------------------------------


def build_gradcheck(sizes, seed):
    import minireparam.distributions  # noqa: F401  (registers the distributions' entries)
    import minireparam.nn  # noqa: F401  (registers the layers' and losses' entries)
    from minireparam.gradcheck import check_registered_op
    from minireparam.ops.registry import REGISTRY, RandomDraw

    names = sorted(REGISTRY)
    if sizes == "smoke":
        names = names[:5]
    failures = []

    def run_registry():
        failures.clear()
        streams = np.random.default_rng(seed)  # the same cases on every run
        for name in names:
            spec = REGISTRY[name]
            for order in ((1, 2) if spec.second_order else (1,)):
                draw = RandomDraw(np.random.default_rng(streams.integers(2**63)))
                _case, max_abs, max_rel, passed = check_registered_op(spec, draw, order)
                if not passed:
                    failures.append(f"{name} (order {order}: max abs err {max_abs:.2e}, max rel err {max_rel:.2e})")

    second_order = sum(REGISTRY[name].second_order for name in names)
    workload = Workload("W-GRADCHECK", f"gradcheck of {len(names)} registry entries, first order, plus second "
                        f"order on the {second_order} smooth ones, one random case each",
                        {"minireparam": run_registry}, [], repeats=3, warmup=0)
    run_registry()
    workload.checks.append({"quantity": "every registry entry passes", "passed": not failures,
                            "detail": "; ".join(failures) or "all passed"})
    return workload


BUILDERS = {"W-LSTM": (build_lstm, LSTM_SIZES), "W-ATTN": (build_attention, ATTN_SIZES),
            "W-VAE": (build_vae, VAE_SIZES), "W-OPS": (build_ops, OPS_SIZES),
            "W-GRADCHECK": (build_gradcheck, {"full": "full", "smoke": "smoke"})}


# -- output ---------------------------------------------------------------------------------------


def print_checks(workload):
    for check in workload.checks:
        status = "ok  " if check["passed"] else "FAIL"
        if "max_abs_diff" in check:
            detail = f"max |diff| {check['max_abs_diff']:.2e} <= bound {check['bound']:.2e}" if check["passed"] \
                else f"max |diff| {check['max_abs_diff']:.2e} > bound {check['bound']:.2e}"
        else:
            detail = check.get("detail", "")
        print(f"  check {status} {check['quantity']}: {detail}")


def print_timing(threads, sides, ratios):
    for label, numbers in sides.items():
        print(f"  {threads} thread(s)  {label:<26} median {numbers['median_ms']:10.3f} ms"
              f"  (min {numbers['min_ms']:.3f}, max {numbers['max_ms']:.3f}, CPU {numbers['cpu_median_ms']:.3f}, "
              f"{numbers['runs']} runs)")
    for ratio in ratios:
        if ratio["ratio"] is None:
            continue
        target = "for information" if ratio["target"] is None else \
            f"target <= {ratio['target']}: {'met' if ratio['met'] else 'not met'}"
        print(f"  {threads} thread(s)  ratio {ratio['label']:<36} {ratio['ratio']:7.3f}  ({target}; "
              f"fastest runs {ratio['ratio_of_minimums']:.3f}; CPU time {ratio['cpu_ratio']:.3f})")


def run(args):
    mode = "smoke" if args.smoke else "full"
    report = {"command": " ".join(shlex.quote(part) for part in sys.argv), "mode": mode, "settle": args.settle,
              "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "machine": machine_facts(),
              "versions": version_facts(), "threads": args.threads, "repeats": args.repeats,
              "torch_available": torch is not None, "workloads": {}}
    if torch is None:
        print("PyTorch is not installed: timing minireparam alone, with no ratios "
              "(pip install torch==2.13.0 for the comparison).")
    all_passed = True
    for name in args.workloads:
        builder, sizes = BUILDERS[name]
        with thread_count(args.threads[0]):
            workload = builder(sizes[mode], args.seed)
        print(f"{workload.name}: {workload.description}")
        for note in workload.notes:
            print(f"  note: {note}")
        print_checks(workload)
        passed = all(check["passed"] for check in workload.checks)
        all_passed &= passed
        entry = {"description": workload.description, "checks": workload.checks, "notes": workload.notes,
                 "timings": {}}
        report["workloads"][name] = entry
        if not passed:
            print(f"  {name}: the two sides disagree, so it is not timed")
            continue
        if args.smoke or not workload.sides:
            continue
        repeats = workload.repeats if workload.repeats is not None else args.repeats
        for threads in args.threads:
            load_before = load_average()
            settle = args.settle if threads > 1 else 0.0
            with thread_count(threads):
                sides, ratios = summarize(workload, *time_sides(workload, repeats, settle))
            entry["timings"][str(threads)] = {"sides": sides, "ratios": ratios,
                                              "load_average": [load_before, load_average()]}
            print_timing(threads, sides, ratios)
            print(f"  {threads} thread(s)  1-minute load average {load_before} -> {load_average()}")
    report["all_checks_passed"] = all_passed
    return report


# -- RESULTS.md -----------------------------------------------------------------------------------


def _ratio_cell(run_report, workload, label, threads, cpu=False):
    timings = run_report["workloads"].get(workload, {}).get("timings", {}).get(str(threads))
    if not timings:
        return "n/a"
    for ratio in timings["ratios"]:
        if ratio["label"] == label and ratio["ratio"] is not None:
            if cpu:
                return "n/a" if ratio.get("cpu_ratio") is None else f"{ratio['cpu_ratio']:.2f}"
            fastest = ratio.get("ratio_of_minimums")
            return f"{ratio['ratio']:.2f}" + (f" ({fastest:.2f})" if fastest is not None else "")
    return "n/a"


def _time_cell(run_report, workload, side, threads, per=1):
    timings = run_report["workloads"].get(workload, {}).get("timings", {}).get(str(threads))
    if not timings or side not in timings["sides"]:
        return "n/a"
    milliseconds = timings["sides"][side]["median_ms"]
    return f"{1e3 * milliseconds / per:.2f} µs" if per > 1 else f"{milliseconds:.1f} ms"


def _target_rows(runs):
    """Return (workload, label, target, numerator, denominator, per) of every comparison in the first run."""
    rows = []
    for workload, entry in runs[0]["workloads"].items():
        for timing in entry["timings"].values():
            for ratio in timing["ratios"]:
                key = (workload, ratio["label"], ratio["target"], ratio["numerator"], ratio["denominator"],
                       ratio["per"])
                if key not in rows:
                    rows.append(key)
            break
    return rows


def render_section(runs):
    """Render the generated part of the RESULTS.md section, quoting every run in ``runs``."""
    first = runs[0]
    machine, versions = first["machine"], first["versions"]
    threads = first["threads"]
    lines = [BEGIN_MARK, ""]
    lines.append(f"- Machine: {machine['cpu']}, {machine['logical_cores']} logical cores, "
                 f"{'/'.join(machine['vector_extensions']) or 'no AVX2'}; {machine['platform']}.")
    blas = machine.get("blas") or []
    if blas:
        lines.append("- numpy's BLAS: " + ", ".join(
            f"{pool['internal_api']} {pool['version']} ({pool['architecture']} kernels)" for pool in blas) + ".")
    openblas_env = machine.get("openblas_env")
    if openblas_env:
        lines.append("- " + ", ".join(f"{name}: {value or 'unset'}" for name, value in openblas_env.items())
                     + " in the benchmark's environment.")
    lines.append(f"- Versions: Python {versions['python']}, numpy {versions['numpy']}, torch {versions['torch']}, "
                 f"minireparam {versions['minireparam']} at commit {versions.get('minireparam_commit') or 'unknown'} "
                 f"(backend {versions['minireparam_backend']}, "
                 f"SIMD {versions['minireparam_simd']}).")
    lines.append(f"- Threads: {', '.join(map(str, threads))} (OpenBLAS via threadpoolctl, torch.set_num_threads, "
                 "minireparam.kernels.set_num_threads; with 2 C threads minireparam itself limits OpenBLAS to 1); "
                 f"float32; medians of {first['repeats']} alternating runs per side (W-GRADCHECK: 3); at 2 threads "
                 f"a sleep of {first.get('settle', 0)} s after each step lets idle worker threads stop spinning.")
    for index, run_report in enumerate(runs, start=1):
        loads = [value for entry in run_report["workloads"].values() for timing in entry["timings"].values()
                 for value in timing.get("load_average", []) if value is not None]
        load = f"; 1-minute load average {min(loads):.1f} to {max(loads):.1f} while timing" if loads else ""
        command = run_report["command"]
        command = command if command.startswith("python") else "python " + command
        malloc = run_report.get("malloc", "glibc defaults")
        lines.append(f"- Run {index} ({run_report['started']}{load}; malloc: {malloc}): `{command}`")
    lines.append("")

    run_headers = " | ".join(f"run {i} {t}T" for i in range(1, len(runs) + 1) for t in threads)
    lines.append("Each cell is the ratio of the medians (the figure the targets refer to), followed in brackets by "
                 "the ratio of the fastest runs, which load from other processes distorts less.")
    lines.append("")
    lines.append(f"| workload | ratio (minireparam ÷ reference) | target | {run_headers} | status (medians) |")
    lines.append("|---|---|---|" + "---|" * (len(runs) * len(threads)) + "---|")
    for workload, label, target, _numerator, _denominator, _per in _target_rows(runs):
        cells = [_ratio_cell(run_report, workload, label, t) for run_report in runs for t in threads]
        lines.append(f"| {workload} | {label} | {'≤ ' + str(target) if target is not None else 'info'} | "
                     f"{' | '.join(cells)} | {_status(cells, target)} |")
    lines.append("")

    if 1 in threads:
        lines.append("At 1 thread, the ratio of median process CPU times (the time each side actually ran, "
                     "which other processes distort least):")
        lines.append("")
        cpu_headers = " | ".join(f"run {i} 1T CPU" for i in range(1, len(runs) + 1))
        lines.append(f"| workload | ratio | target | {cpu_headers} |")
        lines.append("|---|---|---|" + "---|" * len(runs))
        for workload, label, target, _numerator, _denominator, _per in _target_rows(runs):
            cells = [_ratio_cell(run_report, workload, label, 1, cpu=True) for run_report in runs]
            lines.append(f"| {workload} | {label} | {'≤ ' + str(target) if target is not None else 'info'} | "
                         f"{' | '.join(cells)} |")
        lines.append("")

    lines.append("Median times (per step; W-OPS per op, W-GRADCHECK per registry pass):")
    lines.append("")
    lines.append(f"| workload | side | {run_headers} |")
    lines.append("|---|---|" + "---|" * (len(runs) * len(threads)))
    for workload, entry in first["workloads"].items():
        per = 1000 if workload == "W-OPS" and "smoke" not in first["mode"] else 1
        for timing in entry["timings"].values():
            for side in timing["sides"]:
                cells = [_time_cell(run_report, workload, side, t, per) for run_report in runs for t in threads]
                lines.append(f"| {workload} | {side} | {' | '.join(cells)} |")
            break
    lines.append("")
    lines.append(END_MARK)
    return "\n".join(lines)


def _status(cells, target):
    if target is None:
        return "for information"
    values = [float(cell.split()[0]) for cell in cells if cell != "n/a"]
    if not values:
        return "not measured"
    if all(value <= target for value in values):
        return "met"
    if any(value <= target for value in values):
        return "met in some runs"
    return "not met"


def update_results(runs, path=RESULTS_PATH):
    """Replace the generated table of this script's section in RESULTS.md, keeping everything else.

    Only the text between BEGIN_MARK and END_MARK changes. When the section is missing,
    it is appended at the end of the file (created if needed) with the generated table.
    """
    generated = render_section(runs)
    text = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    if BEGIN_MARK in text and END_MARK in text:
        before, rest = text.split(BEGIN_MARK, 1)
        _old, after = rest.split(END_MARK, 1)
        text = before + generated + after
    elif SECTION_TITLE in text:
        head, tail = text.split(SECTION_TITLE, 1)
        first_line, _, body = tail.partition("\n")
        text = head + SECTION_TITLE + first_line + "\n\n" + generated + "\n" + body
    else:
        if text and not text.endswith("\n"):
            text += "\n"
        if not text:
            text = "# Benchmark results\n"
        text += f"\n{SECTION_TITLE}\n\n{generated}\n"
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(text)


# -- command line ---------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS, metavar="NAME",
                        help=f"workloads to run (default: all of {', '.join(WORKLOADS)})")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], metavar="N",
                        help="thread counts to time at (default: 1 2)")
    parser.add_argument("--repeats", type=int, default=20, help="timed steps per side and thread count (default: 20)")
    parser.add_argument("--settle", type=float, default=0.15, metavar="SECONDS",
                        help="sleep after each timed step at more than one thread, so idle worker threads stop "
                             "spinning before the next side runs (default: 0.15)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and data (default: 0)")
    parser.add_argument("--json", metavar="PATH", help="write the full results as JSON to PATH")
    parser.add_argument("--include-run", action="append", default=[], metavar="PATH",
                        help="an earlier run's JSON to quote next to this one in RESULTS.md (repeatable)")
    parser.add_argument("--update-results", action="store_true",
                        help=f"rewrite the generated table of '{SECTION_TITLE}' in benchmarks/RESULTS.md")
    parser.add_argument("--default-malloc", action="store_true",
                        help="do not call minireparam.allocator.reuse_freed_memory(): keep glibc's defaults, under "
                             "which every step maps its large arrays afresh")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny shapes, equality checks only, no timing (for the test suite)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if any(n < 1 for n in args.threads):
        parser.error(f"--threads must be positive, got {args.threads}")
    if args.smoke and args.update_results:
        parser.error("--smoke runs no timing, so it cannot --update-results")
    return args


def main(argv=None):
    args = parse_args(argv)
    # Before any array exists, so that glibc's setting governs every allocation of the run.
    reused = False if args.default_malloc else mr.allocator.reuse_freed_memory()
    report = run(args)
    report["malloc"] = "freed blocks reused (reuse_freed_memory)" if reused else "glibc defaults"
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump(report, stream, indent=2)
    if args.update_results:
        runs = []
        for path in args.include_run:
            with open(path, encoding="utf-8") as stream:
                runs.append(json.load(stream))
        update_results(runs + [report])
        print(f"updated {RESULTS_PATH}")
    if not report["all_checks_passed"]:
        print("some equality checks failed (see FAIL above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
