"""Serving: an OpenAI-compatible HTTP server over lmlab runs, batching every client's sequences together.

    lmlab serve runs/chat runs/gpt --port 8000        then, from any OpenAI client:

    >>> from openai import OpenAI
    >>> client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="none")
    >>> client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "What is 17 + 25?"}])

A model is named by its run folder's name. `lmlab.serve.engine` batches the sequences (continuous
batching), `lmlab.serve.app` speaks the protocol, `lmlab.serve.protocol` checks requests.
"""

from lmlab.serve.app import ServedModel, ServeSettings, create_app, serve, served_model
from lmlab.serve.engine import BatchEngine

__all__ = ["BatchEngine", "ServeSettings", "ServedModel", "create_app", "serve", "served_model"]
