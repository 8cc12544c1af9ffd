"""Prompt tuning: a frozen model steered by a few trained "virtual token" embeddings.

Lester, Al-Rfou and Constant (2021), "The Power of Scale for Parameter-Efficient Prompt Tuning".
Instead of words, the prompt is P free vectors in the embedding space, prepended to every input;
only they train, P x hidden parameters in all (20 x 768 = 15,360 for GPT-2 small):

    input_ids (B, T) ──> token embeddings (B, T, d) ─┐
    prompt (P, d), the only trained weights ─────────┴─> concat (B, P + T, d) ──> frozen model

The model reads them through ``inputs_embeds``, so position embeddings count them as positions
0 .. P-1 and the text starts at P; the attention mask gets P ones in front, and the virtual
positions carry label -100 (no loss). Starting the prompt from the embeddings of a text that
describes the task ("init text") trains faster and more stably than a random start, as the paper
finds; the random start here draws from the scale of the model's own token embeddings.

The prompt is saved in the PEFT layout (``adapter_config.json`` with peft_type PROMPT_TUNING and
``adapter_model.safetensors`` holding ``prompt_embeddings`` (P, d)), so ``peft.PeftModel`` loads it
on the transformers export of the same model and gives the same logits.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal, Protocol

import torch
from pydantic import Field, model_validator
from safetensors.torch import save_file
from torch import Tensor, nn

from lmlab.config import Config
from lmlab.errors import LmlabError
from lmlab.files import atomic_path, read_json, write_json
from lmlab.models import read_safetensors
from lmlab.tune.params import freeze

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PROMPT_KEY = "prompt_embeddings"


class PromptTuningConfig(Config):
    """How many virtual tokens, and where they start from."""

    num_virtual_tokens: int = Field(20, ge=1, description="P, the prompt's length in positions")
    init: Literal["random", "text"] = Field("random", description="random vectors, or the embeddings of init_text")
    init_text: str | None = Field(None, description="with init=text: its tokens, repeated or cut to P")

    @model_validator(mode="after")
    def _text_given(self) -> PromptTuningConfig:
        if self.init == "text" and not self.init_text:
            raise ValueError("init=text needs init_text, the words the prompt starts from")
        return self


class Encoder(Protocol):
    def encode(self, text: str) -> list[int]: ...


class PromptTuned(nn.Module):
    """`backbone` with trained virtual tokens in front of every input; the backbone is frozen.

    Usable wherever the backbone is: ``forward`` for a causal LM's logits and loss, and the shared
    backbone interface (``features``, ``input_embeddings``, ``hidden_size``) for a task head.
    """

    def __init__(self, backbone: nn.Module, config: PromptTuningConfig, prompt: Tensor):
        super().__init__()
        self.backbone = backbone
        self.config = config
        self.prompt_embeddings = nn.Parameter(prompt)  # (P, d)

    @property
    def hidden_size(self) -> int:
        return self.backbone.hidden_size

    @property
    def num_virtual_tokens(self) -> int:
        return self.prompt_embeddings.shape[0]

    def input_embeddings(self) -> nn.Embedding:
        return self.backbone.input_embeddings()

    def _prepend(self, input_ids: Tensor | None, attention_mask: Tensor | None,
                 inputs_embeds: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        tokens = self.input_embeddings()(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, d)
        B, P = tokens.shape[0], self.num_virtual_tokens
        prompt = self.prompt_embeddings.to(tokens.dtype).unsqueeze(0).expand(B, -1, -1)  # (B, P, d)
        embeds = torch.cat([prompt, tokens], dim=1)  # (B, P + T, d)
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask.new_ones(B, P), attention_mask], dim=1)
        return embeds, attention_mask

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                labels: Tensor | None = None, inputs_embeds: Tensor | None = None):
        """The backbone's output on the prompted input: logits (B, P + T, V), positions of the prompt first.

        ``labels`` (B, T) follow the backbone's convention; the prompt's positions get -100.
        ``inputs_embeds`` (B, T, d) stand for the tokens' embeddings (an adversarial step perturbs them).
        """
        embeds, attention_mask = self._prepend(input_ids, attention_mask, inputs_embeds)
        if labels is not None:
            labels = torch.cat([labels.new_full((labels.shape[0], self.num_virtual_tokens), -100), labels], dim=1)
        return self.backbone(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels)

    def features(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                 token_type_ids: Tensor | None = None, inputs_embeds: Tensor | None = None) -> Tensor:
        """Hidden states (B, T, hidden) of the real tokens only, so a head reads the positions it was given.

        The prompt's own positions are computed (the tokens attend to them) but not returned.
        """
        embeds, attention_mask = self._prepend(input_ids, attention_mask, inputs_embeds)
        if token_type_ids is not None:  # the prompt belongs to the first segment
            token_type_ids = torch.cat([token_type_ids.new_zeros(len(embeds), self.num_virtual_tokens),
                                        token_type_ids], dim=1)
        hidden = self.backbone.features(attention_mask=attention_mask, token_type_ids=token_type_ids,
                                        inputs_embeds=embeds)
        return hidden[:, self.num_virtual_tokens:]


def _initial_prompt(backbone: nn.Module, cfg: PromptTuningConfig, tokenizer: Encoder | None) -> Tensor:
    table = backbone.input_embeddings().weight  # (V, d)
    P = cfg.num_virtual_tokens
    if cfg.init == "random":
        # The scale of the real token vectors: a prompt far larger or smaller than them would be read
        # as unlike any token, and would first have to shrink or grow before it could say anything.
        return torch.randn(P, table.shape[1], device=table.device, dtype=table.dtype) * table.detach().std()
    if tokenizer is None:
        raise LmlabError("prompt_tuning.init=text needs the model's tokenizer to read init_text")
    ids = tokenizer.encode(cfg.init_text or "")
    if not ids:
        raise LmlabError(f"prompt_tuning.init_text {cfg.init_text!r} encodes to no tokens")
    ids = (ids * math.ceil(P / len(ids)))[:P]  # repeated to fill P positions, or cut to P (as PEFT)
    return table.detach()[torch.tensor(ids, device=table.device)].clone()


def apply_prompt_tuning(backbone: nn.Module, cfg: PromptTuningConfig, tokenizer: Encoder | None = None,
                        trainable: tuple[str, ...] = ()) -> PromptTuned:
    """Freeze `backbone` (except modules named in `trainable`, e.g. a task head) and wrap it with a prompt."""
    freeze(backbone, except_names=trainable)
    return PromptTuned(backbone, cfg, _initial_prompt(backbone, cfg, tokenizer))


def save_prompt_tuning(model: PromptTuned, out_dir: str | os.PathLike[str], task_type: str = "CAUSAL_LM",
                       base_model_name_or_path: str | None = None) -> None:
    """Write the prompt to `out_dir` in the PEFT layout, atomically.

    PEFT insists on knowing where the tokenizer of a text-initialised prompt lives, even when it
    only loads the prompt; `base_model_name_or_path` is given for that.
    """
    cfg = model.config
    if cfg.init == "text" and base_model_name_or_path is None:
        raise LmlabError("a prompt initialised from text needs base_model_name_or_path: PEFT reads the "
                         "tokenizer's location from the adapter config")
    config = {
        "peft_type": "PROMPT_TUNING",
        "task_type": task_type,
        "base_model_name_or_path": base_model_name_or_path,
        "num_virtual_tokens": model.num_virtual_tokens,
        "token_dim": model.hidden_size,
        "num_transformer_submodules": 1,  # one stack reads the prompt (an encoder-decoder has 2)
        "prompt_tuning_init": cfg.init.upper(),
        "prompt_tuning_init_text": cfg.init_text,
        "tokenizer_name_or_path": base_model_name_or_path if cfg.init == "text" else None,
        "inference_mode": True,
    }
    prompt = model.prompt_embeddings.detach().float().cpu().contiguous()
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        write_json(tmp / ADAPTER_CONFIG, config)
        save_file({PROMPT_KEY: prompt}, str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})


def load_prompt_tuning(backbone: nn.Module, adapter_dir: str | os.PathLike[str],
                       trainable: tuple[str, ...] = ()) -> PromptTuned:
    """Wrap `backbone` (frozen but for `trainable`) with the prompt PEFT or `save_prompt_tuning` wrote."""
    path = Path(adapter_dir) / ADAPTER_CONFIG
    peft = read_json(path, "file; is this a PEFT adapter directory?")
    if not isinstance(peft, dict) or peft.get("peft_type") != "PROMPT_TUNING":
        found = peft.get("peft_type") if isinstance(peft, dict) else None
        raise LmlabError(f"{path}: peft_type is {found!r}; only PROMPT_TUNING adapters load as a prompt")
    if peft.get("num_transformer_submodules", 1) != 1:
        raise LmlabError(f"{path}: num_transformer_submodules={peft['num_transformer_submodules']} is for "
                         "encoder-decoder models; lmlab's prompt goes in front of one stack")
    weights = Path(adapter_dir) / ADAPTER_WEIGHTS
    tensors = read_safetensors(weights)
    if PROMPT_KEY not in tensors:
        raise LmlabError(f"{weights}: no {PROMPT_KEY!r} tensor")
    prompt = tensors[PROMPT_KEY]
    expected = (peft.get("num_virtual_tokens"), backbone.hidden_size)
    if tuple(prompt.shape) != expected:
        raise LmlabError(f"{weights}: {PROMPT_KEY} has shape {tuple(prompt.shape)}, expected {expected} "
                         "(num_virtual_tokens x the model's hidden size)")
    text = peft.get("prompt_tuning_init_text") if peft.get("prompt_tuning_init") == "TEXT" else None
    cfg = PromptTuningConfig(num_virtual_tokens=prompt.shape[0], init="text" if text else "random", init_text=text)
    table = backbone.input_embeddings().weight
    freeze(backbone, except_names=trainable)
    return PromptTuned(backbone, cfg, prompt.to(device=table.device, dtype=table.dtype))
