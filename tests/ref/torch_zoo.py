"""PyTorch definitions of every ocelot zoo model, and weight conversion between PyTorch and
ocelot (a test oracle only; the C code never needs Python).

Module paths equal ocelot's node names, so a state_dict key ("layer1.0.conv1.weight") is the
ocelot tensor name. Layouts differ:
  - conv weights: torch [K][C/g][R][S]  <->  ocelot [K][R][S][C/g]
  - a dense layer reading a flattened feature map: torch flattens [C][H][W], ocelot [H][W][C],
    so its weight columns are permuted (ocelot_flatten() says which layers and shapes)
  - num_batches_tracked is not an ocelot tensor.

API:
    build(name, height=32, width=32, channels=3, classes=10) -> torch.nn.Module
        name is a zoo name, with options as in C ("mobilenetv2:width=0.5").
    to_ocelot(model) -> dict name -> float32 numpy array in ocelot layout (params and BN state)
    grads_to_ocelot(model) -> dict name -> float32 array: each parameter's .grad, ocelot layout
    from_ocelot(model, tensors) -> None: loads such a dict into the model (missing names: error)
    recipe_tensor(name, shape, kind) -> float32 numpy array: the deterministic "recipe" weights
        that tests/unit/test_models.c reproduces bit for bit in C (see recipe_tensor's doc).
    hash_tensor(name, shape, kind) -> float32 numpy array: integer-hash weights, also reproduced
        in C (the same as gen_model_steps.init_value); sym_uniform(seed, n) the hash stream.
    ocelot_tensor_kinds(model) -> dict name -> kind ("weight", "bias", "norm_scale",
        "norm_shift", "running_mean", "running_var") in ocelot order.
"""
import collections
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ZOO = ("cnn", "resnet20", "resnet56", "resnet18", "mobilenetv2", "mobilenetv2_cifar", "airnet")


# ----------------------------------------------------------------------------- cnn (Keras)

class KerasCNN(nn.Module):
    """The Keras cifar10_cnn example with 'same' padding everywhere, no batch norm."""

    def __init__(self, height, width, channels, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 3, padding="same")
        self.conv2 = nn.Conv2d(32, 32, 3, padding="same")
        self.conv3 = nn.Conv2d(32, 64, 3, padding="same")
        self.conv4 = nn.Conv2d(64, 64, 3, padding="same")
        self.flat_chw = (64, height // 2 // 2, width // 2 // 2)
        self.fc1 = nn.Linear(int(np.prod(self.flat_chw)), 512)
        self.fc2 = nn.Linear(512, classes)
        self.drop1, self.drop2, self.drop3 = nn.Dropout(0.25), nn.Dropout(0.25), nn.Dropout(0.5)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = self.drop1(F.max_pool2d(F.relu(self.conv2(x)), 2))
        x = F.relu(self.conv3(x))
        x = self.drop2(F.max_pool2d(F.relu(self.conv4(x)), 2))
        x = torch.flatten(x, 1)
        x = self.drop3(F.relu(self.fc1(x)))
        return self.fc2(x)

    def ocelot_flatten(self):
        return {"fc1": self.flat_chw}


# ----------------------------------------------------------------------------- CIFAR ResNets

class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class BasicBlock(nn.Module):
    """Option A (He et al. CIFAR, akamaster) or option B (1x1 conv + BN, kuangliu)."""

    def __init__(self, in_planes, planes, stride, option):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if option == "A":
                pad = planes // 4
                self.shortcut = LambdaLayer(
                    lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad), "constant", 0))
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, blocks, planes, channels, classes, option):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, planes[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        in_planes = planes[0]
        for s, p in enumerate(planes):
            layers = []
            for k in range(blocks):
                stride = 2 if (s > 0 and k == 0) else 1
                layers.append(BasicBlock(in_planes, p, stride, option))
                in_planes = p
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*layers))
        self.n_stages = len(planes)
        self.relu = nn.ReLU()
        self.linear = nn.Linear(planes[-1], classes)
        if option == "A":  # akamaster's _weights_init
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        for s in range(self.n_stages):
            out = getattr(self, "layer%d" % (s + 1))(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


# ----------------------------------------------------------------------------- MobileNetV2

def _make_divisible(v, divisor=8):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _conv_bn_relu(inp, out, kernel=3, stride=1, groups=1):
    return nn.Sequential(
        nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out), nn.ReLU6(inplace=False))


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(_conv_bn_relu(inp, hidden, kernel=1))
        layers += [_conv_bn_relu(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision.models.MobileNetV2 (same module paths and init); cifar=True uses a stride-1
    stem and runs the first stride-2 stage (24 channels) at stride 1."""

    def __init__(self, channels, classes, width=1.0, cifar=False):
        super().__init__()
        setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
                   [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]
        if cifar:
            setting[1][3] = 1
        inp = _make_divisible(32 * width)
        self.last_channel = _make_divisible(1280 * max(1.0, width))
        features = [_conv_bn_relu(channels, inp, stride=1 if cifar else 2)]
        for t, c, n, s in setting:
            out = _make_divisible(c * width)
            for i in range(n):
                features.append(InvertedResidual(inp, out, s if i == 0 else 1, t))
                inp = out
        features.append(_conv_bn_relu(inp, self.last_channel, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channel, classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


class AirGroup(nn.Module):
    """airbench94's ConvGroup (legacy/airbench94.py), written out."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding="same", bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = nn.BatchNorm2d(cout, eps=1e-12, momentum=0.4)
        self.act1 = nn.GELU()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding="same", bias=False)
        self.norm2 = nn.BatchNorm2d(cout, eps=1e-12, momentum=0.4)
        self.act2 = nn.GELU()

    def forward(self, x):
        x = self.act1(self.norm1(self.pool(self.conv1(x))))
        return self.act2(self.norm2(self.conv2(x)))


class AirNet(nn.Module):
    """airbench94's network: whitening conv 2x2 (24), GELU, groups 64/256/256, MaxPool(3),
    Linear(256, classes, bias=False) x 1/9. Freezing is the optimizer's business in ocelot, so
    every tensor keeps requires_grad here (the gradients compare one to one)."""

    def __init__(self, channels, classes):
        super().__init__()
        self.whiten = nn.Conv2d(channels, 2 * channels * 4, 2, bias=True)
        self.whiten_act = nn.GELU()
        self.layers = nn.ModuleList([AirGroup(2 * channels * 4, 64), AirGroup(64, 256),
                                     AirGroup(256, 256)])
        self.pool = nn.MaxPool2d(3)
        self.head = nn.Linear(256, classes, bias=False)

    def forward(self, x):
        x = self.whiten_act(self.whiten(x))
        for g in self.layers:
            x = g(x)
        return self.head(self.pool(x).flatten(1)) / 9


# ----------------------------------------------------------------------------- API

def _parse(name):
    base, _, opts = name.partition(":")
    width = 1.0
    for o in filter(None, opts.split(",")):
        key, _, value = o.partition("=")
        if key != "width" or not base.startswith("mobilenetv2"):
            raise ValueError("unknown option %r for %s" % (o, base))
        width = float(value)
    return base, width


def build(name, height=32, width=32, channels=3, classes=10):
    """The PyTorch twin of ocelot's zoo model `name` (NCHW input)."""
    base, wm = _parse(name)
    if base == "cnn":
        return KerasCNN(height, width, channels, classes)
    if base == "resnet20":
        return ResNet(3, [16, 32, 64], channels, classes, "A")
    if base == "resnet56":
        return ResNet(9, [16, 32, 64], channels, classes, "A")
    if base == "resnet18":
        return ResNet(2, [64, 128, 256, 512], channels, classes, "B")
    if base == "mobilenetv2":
        return MobileNetV2(channels, classes, wm, cifar=False)
    if base == "mobilenetv2_cifar":
        return MobileNetV2(channels, classes, wm, cifar=True)
    if base == "airnet":
        return AirNet(channels, classes)
    raise ValueError("unknown zoo model %r (known: %s)" % (name, ", ".join(ZOO)))


def _flatten_map(model):
    return model.ocelot_flatten() if hasattr(model, "ocelot_flatten") else {}


def _is_conv_weight(model, key):
    mod = model.get_submodule(key.rsplit(".", 1)[0])
    return isinstance(mod, nn.Conv2d) and key.endswith(".weight")


def _layout(model, key, a):
    """One torch tensor (numpy) -> ocelot layout."""
    flat = _flatten_map(model)
    module = key.rsplit(".", 1)[0]
    if _is_conv_weight(model, key):
        a = a.transpose(0, 2, 3, 1)
    elif module in flat and key.endswith(".weight"):
        c, h, w = flat[module]
        a = a.reshape(a.shape[0], c, h, w).transpose(0, 2, 3, 1).reshape(a.shape[0], -1)
    return np.ascontiguousarray(a.astype(np.float32))


def to_ocelot(model):
    """state_dict -> {ocelot name: float32 array in ocelot layout}, in ocelot's tensor order."""
    out = collections.OrderedDict()
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        out[key] = _layout(model, key, value.detach().cpu().double().numpy())
    return out


def grads_to_ocelot(model):
    """{ocelot name: gradient in ocelot layout} of every parameter with a .grad."""
    out = collections.OrderedDict()
    for key, p in model.named_parameters():
        if p.grad is not None:
            out[key] = _layout(model, key, p.grad.detach().cpu().double().numpy())
    return out


def from_ocelot(model, tensors):
    """Loads {ocelot name: array in ocelot layout} into the model (inverse of to_ocelot)."""
    flat = _flatten_map(model)
    state = model.state_dict()
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        if key not in tensors:
            raise KeyError("no ocelot tensor for %s" % key)
        a = np.asarray(tensors[key], dtype=np.float64)
        module = key.rsplit(".", 1)[0]
        if _is_conv_weight(model, key):
            a = a.transpose(0, 3, 1, 2)
        elif module in flat and key.endswith(".weight"):
            c, h, w = flat[module]
            a = a.reshape(a.shape[0], h, w, c).transpose(0, 3, 1, 2).reshape(a.shape[0], -1)
        if tuple(a.shape) != tuple(value.shape):
            raise ValueError("%s: shape %s, model wants %s" % (key, a.shape, tuple(value.shape)))
        value.copy_(torch.from_numpy(np.ascontiguousarray(a)).to(value.dtype))


def ocelot_tensor_kinds(model):
    """{ocelot name: kind} for every ocelot tensor of the model."""
    kinds = collections.OrderedDict()
    for key in to_ocelot(model):
        mod = model.get_submodule(key.rsplit(".", 1)[0])
        leaf = key.rsplit(".", 1)[1]
        if isinstance(mod, nn.BatchNorm2d):
            kinds[key] = {"weight": "norm_scale", "bias": "norm_shift"}.get(leaf, leaf)
        else:
            kinds[key] = leaf
    return kinds


def recipe_phase(name):
    """Per-tensor phase: h = fold of the name's bytes, h = (h*31 + byte) mod 1000003."""
    h = 0
    for b in name.encode():
        h = (h * 31 + b) % 1000003
    return (h % 1000) / 100.0


def recipe_tensor(name, shape, kind):
    """Deterministic weights, in ocelot layout, computed in double then rounded to float32:
         v[i] = sin(0.7071 i + ph) * cos(0.0133 i + ph / 2),  ph = recipe_phase(name)
       weight: v * 2 / sqrt(fan_in) (fan_in = numel / shape[0]); bias, norm_shift,
       running_mean: 0.1 v; norm_scale: 1 + 0.2 v; running_var: 1 + 0.5 |v|."""
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.float64)
    ph = recipe_phase(name)
    v = np.sin(0.7071 * i + ph) * np.cos(0.0133 * i + ph / 2)
    if kind == "weight":
        v = v * (2.0 / math.sqrt(n / shape[0]))
    elif kind in ("bias", "norm_shift", "running_mean"):
        v = 0.1 * v
    elif kind == "norm_scale":
        v = 1.0 + 0.2 * v
    elif kind == "running_var":
        v = 1.0 + 0.5 * np.abs(v)
    else:
        raise ValueError(kind)
    return v.astype(np.float32).reshape(shape)


def _hash32(x):
    """lowbias32 on uint32 arrays (C: hash32 in tests/unit/test_models.c)."""
    x = np.asarray(x, dtype=np.uint32)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x7feb352d)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(0x846ca68b)
        x = x ^ (x >> np.uint32(16))
    return x


def sym_uniform(seed, n):
    """Elements 0..n-1 of stream `seed`: u_i = 2 hash32(i ^ hash32(seed)) / 2^32 - 1, uniform in
    [-1, 1), float64 (exact: a 32-bit integer scaled by a power of two)."""
    i = np.arange(n, dtype=np.uint64).astype(np.uint32)
    u = _hash32(i ^ _hash32(np.uint32(seed)))
    return 2.0 * (u.astype(np.float64) / 4294967296.0) - 1.0


def _fnv1a(name):
    h = 2166136261
    for b in name.encode():
        h = ((h ^ b) * 16777619) & 0xffffffff
    return h


def hash_tensor(name, shape, kind):
    """Hash weights, in ocelot layout: u = sym_uniform(fnv1a(name), numel), independent uniform
    values with no periodic structure; weight sqrt(3 / fan_in) u (variance 1 / fan_in, fan_in =
    numel / shape[0]); norm_scale 1 + 0.2 u; bias, norm_shift 0.1 u; running_mean 0;
    running_var 1. Double, rounded to float32."""
    n = int(np.prod(shape))
    u = sym_uniform(_fnv1a(name), n)
    if kind == "weight":
        v = math.sqrt(3.0 / (n / shape[0])) * u
    elif kind == "norm_scale":
        v = 1.0 + 0.2 * u
    elif kind in ("bias", "norm_shift"):
        v = 0.1 * u
    elif kind == "running_mean":
        v = np.zeros(n)
    elif kind == "running_var":
        v = np.ones(n)
    else:
        raise ValueError(kind)
    return v.astype(np.float32).reshape(shape)
