"""Training objectives: what a batch is, which tokens the loss is taken on, how a run is evaluated.

The loop knows nothing about language modelling: it asks an objective for the batch of a step and
for its loss, and the objective scores its own evaluation (`lmlab.train.objectives.base`). The
pretraining objectives a train config names by ``objective:`` are registered here; a new one is a
module with a class that has ``build(model, shards, settings)`` plus one line in `OBJECTIVES`.
"""

from lmlab.train.objectives.base import Batch, Objective, ObjectiveSettings, batch_generator, on_device
from lmlab.train.objectives.causal_lm import CausalLM, StreamingCausalLM
from lmlab.train.objectives.masked_lm import BertVocabulary, MaskedLM, MaskedLMWithNSP, mask_tokens

OBJECTIVES: dict[str, type[Objective]] = {
    "causal_lm": CausalLM,
    "causal_lm_stream": StreamingCausalLM,
    "masked_lm": MaskedLM,
    "masked_lm_nsp": MaskedLMWithNSP,
}

__all__ = ["OBJECTIVES", "Batch", "BertVocabulary", "CausalLM", "MaskedLM", "MaskedLMWithNSP", "Objective",
           "ObjectiveSettings", "StreamingCausalLM", "batch_generator", "mask_tokens", "on_device"]
