"""int8 quantization for generation: each ``nn.Linear`` of a model becomes an `Int8Linear`.

Decoding one token reads every weight once and does two multiply-adds with each. On a CPU that is a
memory-bound loop, so its speed is set by the bytes it reads per token: int8 weights read a quarter
of float32's (measured on 2 cores: the 50257 x 384 output layer of a GPT takes 1.86 ms in float32 and
0.45 ms in int8, both near 41 GB/s). Weights are quantized once, symmetric and per output channel::

    scale_i = max_j |W_ij| / 127,    Q_ij = round(W_ij / scale_i) in [-127, 127]

The product multiplies int8 by int8 into int32 sums. Activations are quantized per call from their
own range (dynamic quantization: no calibration data), as PyTorch's ``quantize_dynamic`` does, but per
row: one token's result never depends on which other tokens share the call, so a sequence decoded in a
batch of clients, or its prompt read in one piece, gets what it gets alone. Each row maps its range
(widened to hold 0) onto 0..127 with a zero point; 7 bits rather than 8, so the kernels' pairwise
int8 products cannot overflow int16:

    s_x = (max x - min x) / 127,   z = round(-min x / s_x),   q_x = clamp(round(x / s_x) + z, 0, 127)
    y = s_x * scale * (q_x Q^T - z * sum_j Q_ij) + b

One row (a decoding step) goes through fbgemm's int8 kernel, whose own per-tensor quantization of a
single row is the one above; several rows go through ``torch._int_mm`` on the same integers, which
agrees with it to float rounding (1.7e-7 relative, measured). Its error is measured as the perplexity
change in ``benchmarks/int8_generate.py``. Embedding lookups read one row per token and stay in
floating point, so a head tied to the embedding is quantized as a copy.

Both kernels are CPU ones; on other devices the int8 weights are widened to the activations' type for
an ordinary matmul, which keeps the weights' rounding and saves no time.
"""

from __future__ import annotations

import warnings
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from lmlab.errors import LmlabError

Quantization = Literal["none", "int8"]
QUANTIZATIONS: tuple[str, ...] = get_args(Quantization)


class Int8Linear(nn.Module):
    """``nn.Linear`` with its weight stored as int8 rows and one scale per row."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / 127
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight_int8", torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().float(), requires_grad=False)
        self._packed: object | None = None  # fbgemm's prepacked weight, made on the first one-row call
        self._columns: tuple[Tensor, Tensor] | None = None  # Q^T and its column sums, for several rows

    def _apply(self, fn, recurse=True):  # noqa: ANN001, ANN202 - nn.Module's signature; moving drops the packs
        self._packed = self._columns = None
        return super()._apply(fn, recurse)

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(-1, self.in_features).float()
        if flat.device.type != "cpu":
            out = flat @ (self.weight_int8.float() * self.scale[:, None]).T
            if self.bias is not None:
                out = out + self.bias
        elif flat.shape[0] == 1:
            out = self._one_row(flat)
        else:
            out = self._rows(flat)
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def _one_row(self, row: Tensor) -> Tensor:
        if self._packed is None:
            zero = torch.zeros(self.out_features, dtype=torch.long)
            with warnings.catch_warnings():  # PyTorch marks its quantized tensor type deprecated (torchao
                warnings.simplefilter("ignore", UserWarning)  # replaces it); fbgemm still takes one to pack
                weight = torch._make_per_channel_quantized_tensor(self.weight_int8, self.scale.double(), zero, 0)
            self._packed = torch.ops.quantized.linear_prepack(weight, self.bias)
        return torch.ops.quantized.linear_dynamic(row, self._packed, True)  # True: 7-bit activations

    def _rows(self, rows: Tensor) -> Tensor:
        if self._columns is None:
            self._columns = (self.weight_int8.T.contiguous(), self.weight_int8.sum(dim=1, dtype=torch.int32))
        transposed, sums = self._columns
        low = rows.amin(dim=1, keepdim=True).clamp(max=0)
        high = rows.amax(dim=1, keepdim=True).clamp(min=0)
        step = ((high - low) / 127).clamp(min=torch.finfo(torch.float32).tiny)
        zero = torch.round(-low / step).clamp(0, 127)
        quantized = (torch.round(rows / step) + zero).clamp(0, 127).to(torch.int8)
        totals = torch._int_mm(quantized, transposed) - zero.to(torch.int32) * sums
        out = totals.float() * (step * self.scale)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def quantize(model: nn.Module, method: str) -> nn.Module:
    """`model` with every ``nn.Linear`` replaced for `method` ("int8"), in place, for inference only;
    "none" returns it unchanged, and so does quantizing twice."""
    if method not in QUANTIZATIONS:
        raise LmlabError(f"quantize: {method!r} is not a quantization; choose one of {', '.join(QUANTIZATIONS)}")
    if method == "none":
        return model
    linears = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears and not any(isinstance(module, Int8Linear) for module in model.modules()):
        raise LmlabError(f"quantize: a {type(model).__name__} has no linear layers to quantize")
    for name, linear in linears:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, Int8Linear(linear))
    return model.eval().requires_grad_(False)
