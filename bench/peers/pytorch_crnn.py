#!/usr/bin/env python3
"""PyTorch peer of `crnn bench`: the seed CRNN of MODEL.md, timed the same way.

The model is PaddleOCR's rec_mv3_none_bilstm_ctc exactly as MODEL.md describes it (MobileNetV3-large x0.5,
SE with biased 1x1 convs and Paddle's hardsigmoid 0.2x+0.5, BiLSTM 96, Linear 192->C, CTC blank 0); its
parameter count must equal crnn's ModelConfig (1,451,787 for C = 37). A training step is
forward + CTC (zero_infinity, mean over the batch) + backward + Adam(5e-4), float32 (TF32 off unless
--tf32). Like `crnn bench`: warm-up steps, then N unsynchronized steps between two device synchronizations.
Data: random images in [-1, 1] and random labels of 1-10 symbols, made on the device before timing.

    python3 bench/peers/pytorch_crnn.py [--batch-size 32 256] [--steps 5] [--warmup 2] [--device auto|cuda|cpu]
                                        [--no-compile] [--tf32] [--output FILE]
    python3 bench/peers/pytorch_crnn.py --count-only     # parameter count from MODEL.md's table, no torch

Prints a Markdown report and, last, one machine-readable line: `peer-json: {...}`.
Exit code 3 when torch is not installed (the GPU kit treats that as "no peer").
"""
import argparse
import datetime
import json
import os
import platform
import sys
import time

try:
    import torch
    from torch import nn
    _Module = nn.Module
except ImportError:  # --count-only works without torch
    torch = None
    nn = None
    _Module = object

NO_TORCH_EXIT = 3

# MobileNetV3-large units before scaling (MODEL.md, PaddleOCR): kernel, expand, out, SE, activation, stride (h, w).
LARGE_UNITS = [
    (3, 16, 16, False, "relu", (1, 1)),
    (3, 64, 24, False, "relu", (2, 1)),
    (3, 72, 24, False, "relu", (1, 1)),
    (5, 72, 40, True, "relu", (2, 1)),
    (5, 120, 40, True, "relu", (1, 1)),
    (5, 120, 40, True, "relu", (1, 1)),
    (3, 240, 80, False, "hardswish", (1, 1)),
    (3, 200, 80, False, "hardswish", (1, 1)),
    (3, 184, 80, False, "hardswish", (1, 1)),
    (3, 184, 80, False, "hardswish", (1, 1)),
    (3, 480, 112, True, "hardswish", (1, 1)),
    (3, 672, 112, True, "hardswish", (1, 1)),
    (5, 672, 160, True, "hardswish", (2, 1)),
    (5, 960, 160, True, "hardswish", (1, 1)),
    (5, 960, 160, True, "hardswish", (1, 1)),
]
SCALE, HIDDEN, CLASSES, HEIGHT, WIDTH, MAX_LABEL = 0.5, 96, 37, 32, 100, 10
EXPECTED_PARAMETERS = {37: 1_451_787}  # crnn's ModelConfig().ParameterCount


def make_divisible(v, divisor=8):
    """PaddleOCR's make_divisible: a multiple of 8, never below 8 nor below 90 % of v."""
    rounded = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * v else rounded


def scaled_units(scale=SCALE):
    """(kernel, in, expand, out, se, act, stride) per residual unit, channels scaled."""
    units, in_ch = [], make_divisible(16 * scale)
    for k, exp, out, se, act, stride in LARGE_UNITS:
        out_ch = make_divisible(scale * out)
        units.append((k, in_ch, make_divisible(scale * exp), out_ch, se, act, stride))
        in_ch = out_ch
    return units


def parameter_count(classes=CLASSES, hidden=HIDDEN, scale=SCALE):
    """Trainable parameters by hand from the table (BN: gamma and beta; LSTM: both biases, as torch has)."""
    stem, head = make_divisible(16 * scale), make_divisible(960 * scale)
    n = 3 * stem * 9 + 2 * stem
    units = scaled_units(scale)
    for k, cin, exp, out, se, _, _ in units:
        n += cin * exp + 2 * exp + exp * k * k + 2 * exp + exp * out + 2 * out
        if se:
            n += 2 * exp * (exp // 4) + exp // 4 + exp
    n += units[-1][3] * head + 2 * head
    lstm = lambda cin: 2 * (4 * hidden * cin + 4 * hidden * hidden + 8 * hidden)
    n += lstm(head) + lstm(2 * hidden)
    return n + 2 * hidden * classes + classes


class HardSigmoidPaddle(_Module):
    """Paddle's hardsigmoid clip(0.2x + 0.5, 0, 1) (torch's nn.Hardsigmoid uses slope 1/6)."""

    def forward(self, x):
        return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


def activation(name):
    return {"relu": nn.ReLU(), "hardswish": nn.Hardswish(), None: nn.Identity()}[name]


class ConvBnAct(_Module):
    """Convolution without bias, BatchNorm (eps 1e-5, momentum 0.1 = Paddle's 0.9), activation."""

    def __init__(self, cin, cout, kernel, stride=1, groups=1, act=None):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
        self.act = activation(act)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(_Module):
    """Global average pool, 1x1 conv exp->exp/4 with bias, ReLU, 1x1 conv back with bias, Paddle hardsigmoid."""

    def __init__(self, channels):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, channels // 4, 1, bias=True)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(channels // 4, channels, 1, bias=True)
        self.gate = HardSigmoidPaddle()

    def forward(self, x):
        return x * self.gate(self.expand(self.relu(self.reduce(self.pool(x)))))


class ResidualUnit(_Module):
    """Expand 1x1, depthwise kxk (the unit's stride), optional SE, linear 1x1; shortcut iff stride 1 and in == out."""

    def __init__(self, kernel, cin, exp, cout, se, act, stride):
        super().__init__()
        self.expand = ConvBnAct(cin, exp, 1, act=act)
        self.depthwise = ConvBnAct(exp, exp, kernel, stride, groups=exp, act=act)
        self.se = SqueezeExcite(exp) if se else nn.Identity()
        self.linear = ConvBnAct(exp, cout, 1, act=None)
        self.shortcut = stride == (1, 1) and cin == cout

    def forward(self, x):
        y = self.linear(self.se(self.depthwise(self.expand(x))))
        return x + y if self.shortcut else y


class Crnn(_Module):
    def __init__(self, classes=CLASSES, hidden=HIDDEN, scale=SCALE):
        super().__init__()
        units = scaled_units(scale)
        head = make_divisible(960 * scale)
        self.conv1 = ConvBnAct(3, make_divisible(16 * scale), 3, stride=2, act="hardswish")
        self.units = nn.Sequential(*[ResidualUnit(*u) for u in units])
        self.conv2 = ConvBnAct(units[-1][3], head, 1, act="hardswish")
        self.pool = nn.MaxPool2d(2, 2)
        self.lstm = nn.LSTM(head, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(2 * hidden, classes)
        for m in self.modules():  # MODEL.md: convolutions Kaiming-normal; Linear keeps torch's U(+-1/sqrt(fan_in))
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):  # [B, 3, 32, 100] -> logits [B, 25, C]
        x = self.pool(self.conv2(self.units(self.conv1(x))))
        x = x.squeeze(2).permute(0, 2, 1)  # Im2Seq: [B, 480, 1, 25] -> [B, 25, 480]
        x, _ = self.lstm(x)
        return self.fc(x)


def ctc_loss(logits, targets, target_lengths):
    """Mean over the batch of -log p(label | image); infeasible samples contribute 0 (zero_infinity)."""
    log_probs = logits.log_softmax(2).permute(1, 0, 2)  # [T, B, C]
    t, b = log_probs.shape[0], log_probs.shape[1]
    input_lengths = torch.full((b,), t, dtype=torch.int32, device=logits.device)
    losses = nn.functional.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0,
                                    reduction="none", zero_infinity=True)
    return losses.mean()


def random_batches(count, batch, device, generator):
    """Images uniform in [-1, 1]; labels of 1-10 symbols from 1..C-1, padded into [B, 10]."""
    out = []
    for _ in range(count):
        images = torch.rand(batch, 3, HEIGHT, WIDTH, generator=generator) * 2 - 1
        lengths = torch.randint(1, MAX_LABEL + 1, (batch,), generator=generator, dtype=torch.int32)
        targets = torch.randint(1, CLASSES, (batch, MAX_LABEL), generator=generator, dtype=torch.int32)
        out.append((images.to(device), targets.to(device), lengths.to(device)))
    return out


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(mode, batch, args, device):
    """Images/s of `args.steps` training steps after `args.warmup` warm-up steps (compilation happens there)."""
    torch.manual_seed(1)
    model = Crnn().to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4, betas=(0.9, 0.999), eps=1e-8)
    forward = torch.compile(model) if mode == "compile" else model
    batches = random_batches(4, batch, device, torch.Generator().manual_seed(batch))

    def step(i):
        images, targets, lengths = batches[i % len(batches)]
        loss = ctc_loss(forward(images), targets, lengths)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    warm_clock = time.perf_counter()
    for i in range(args.warmup):
        step(i)
    synchronize(device)
    warm_seconds = time.perf_counter() - warm_clock
    clock = time.perf_counter()
    for i in range(args.steps):
        loss = step(i)
    synchronize(device)
    seconds = time.perf_counter() - clock
    return {"mode": mode, "batch": batch, "images_per_sec": round(args.steps * batch / seconds, 1),
            "ms_per_step": round(1000 * seconds / args.steps, 2), "warmup_s": round(warm_seconds, 1),
            "loss": round(float(loss), 3)}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, nargs="+", default=[32])
    p.add_argument("--steps", type=int, default=5, help="measured steps per batch size (crnn bench: 5)")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured steps first (crnn bench: 2)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cuda, cuda:N or cpu")
    p.add_argument("--no-compile", action="store_true", help="measure eager mode only")
    p.add_argument("--tf32", action="store_true", help="allow TF32 in cuDNN and matmul (default: exact float32)")
    p.add_argument("--output", help="also write the Markdown report to this file")
    p.add_argument("--count-only", action="store_true", help="print the parameter count from the table and exit")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or min(args.batch_size) < 1:
        p.error("--steps and --batch-size must be at least 1, --warmup at least 0")
    return args


def main(argv):
    args = parse_args(argv)
    expected = parameter_count()
    if expected != EXPECTED_PARAMETERS[CLASSES]:
        sys.exit(f"parameter arithmetic gives {expected:,}, crnn's ModelConfig has {EXPECTED_PARAMETERS[CLASSES]:,}")
    if args.count_only:
        print(f"parameters: {expected:,} (C = {CLASSES}, from MODEL.md's table)")
        return 0
    if torch is None:
        print("torch is not installed: no PyTorch peer measurement", file=sys.stderr)
        return NO_TORCH_EXIT

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    counted = sum(p.numel() for p in Crnn().parameters())
    if counted != expected:
        sys.exit(f"the torch model has {counted:,} parameters, MODEL.md's table gives {expected:,}")

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {device} ({device_name}), torch {torch.__version__}, parameters: {counted:,}", flush=True)
    results, failures = [], {}
    for mode in ["eager"] + ([] if args.no_compile else ["compile"]):
        for batch in args.batch_size:
            if mode in failures:
                break
            try:
                results.append(measure(mode, batch, args, device))
                r = results[-1]
                print(f"{mode} batch {batch}: {r['images_per_sec']} images/s", flush=True)
            except Exception as e:  # torch.compile needs a working compiler toolchain; eager must work
                if mode == "eager":
                    raise
                failures[mode] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
                print(f"{mode} failed: {failures[mode]}", flush=True)

    report = [f"# PyTorch peer: training-step benchmark ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d})", "",
              f"- machine: {platform.node()}, {cpu_model()}, {os.cpu_count()} cores, {platform.platform()}",
              f"- device: {device_name}; torch {torch.__version__}, cuDNN "
              f"{torch.backends.cudnn.version() if device.type == 'cuda' else '-'}, TF32 {'on' if args.tf32 else 'off'}, cudnn.benchmark on",
              f"- model: seed CRNN of MODEL.md in PyTorch, {counted:,} parameters; random images and labels; Adam 5e-4",
              f"- reproduce: `python3 bench/peers/pytorch_crnn.py --device {args.device} --batch-size "
              f"{' '.join(map(str, args.batch_size))} --steps {args.steps} --warmup {args.warmup}"
              f"{' --no-compile' if args.no_compile else ''}{' --tf32' if args.tf32 else ''}`", "",
              "| mode | batch | images/s | ms per step | warm-up s |", "|---|---:|---:|---:|---:|"]
    report += [f"| {r['mode']} | {r['batch']} | {r['images_per_sec']} | {r['ms_per_step']} | {r['warmup_s']} |" for r in results]
    report += [f"| {mode} | – | failed: {why} | | |" for mode, why in failures.items()]
    text = "\n".join(report) + "\n"
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    print("peer-json: " + json.dumps({"device": device_name, "torch": torch.__version__, "parameters": counted,
                                      "steps": args.steps, "warmup": args.warmup, "results": results,
                                      "failures": failures}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
