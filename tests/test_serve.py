"""`lmlab serve`: the official openai client, lm-eval's local-completions and raw HTTP against a server the
tests start on a free loopback port; batching across clients checked against each request served alone."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
import torch
import uvicorn
from conftest import TEXTS, tiny_pipeline_runs
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from lmlab.cli import main
from lmlab.generate import GenerationParams, generate_ids, generate_text
from lmlab.models import model_from_config, save_model
from lmlab.models.quantize import Int8Linear
from lmlab.pipelines import pipeline
from lmlab.pipelines.chat import ChatModel
from lmlab.runs import open_run
from lmlab.serve import ServeSettings, create_app, served_model
from lmlab.serve.engine import DeviceLoop

ENCODER = "all-MiniLM-L6-v2"


class Running:
    """A uvicorn server in a thread of the test process, on a port the system picked."""

    def __init__(self, sources: list[str], device: DeviceLoop | None = None, **settings: object):
        self.settings = ServeSettings(device="cpu", **settings)
        self.models = [served_model(s, self.settings) for s in sources]
        app = create_app(self.models, self.settings, device)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def client(self, key: str = "none") -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=60)

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None,
             method: str = "POST") -> tuple[int, dict[str, str], dict]:
        """Status, headers (lower-case names) and JSON body of one request. A server that refuses a large
        body from its Content-Length answers before reading it, so a broken pipe while sending is expected."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.putrequest(method, path)
            for name, value in {"Content-Type": "application/json", "Content-Length": str(len(body)),
                                **(headers or {})}.items():
                connection.putheader(name, value)
            connection.endheaders()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                connection.send(body)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(response.read())
        finally:
            connection.close()


@contextlib.contextmanager
def chromium(tmp_path: Path) -> Iterator[Any]:
    """Debian's chromium, headless, driven by Selenium through Debian's chromedriver (make test installs both)."""
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1200,900", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def server(chat_run):
    run, records = chat_run
    with Running([str(run), ENCODER]) as running:
        yield running, run, records


def test_models_and_health(server):
    running, run, _ = server
    assert [m.id for m in running.client().models.list().data] == [run.name, ENCODER]
    with urllib.request.urlopen(running.url + "/health") as response:
        assert json.loads(response.read()) == {"status": "ok"}


def test_a_greedy_completion_is_lmlab_generate_and_its_logprobs_are_the_model_s(server):
    running, run, records = server
    model, tokenizer = open_run(run).model("cpu"), open_run(run).tokenizer()
    prompt = records[0]["messages"][0]["content"]
    answer = running.client().completions.create(model=run.name, prompt=prompt, max_tokens=12, temperature=0,
                                                 logprobs=3)
    choice = answer.choices[0]
    assert choice.text == generate_text(model, tokenizer, [prompt], GenerationParams(max_new_tokens=12,
                                                                                      temperature=0))[0]
    ids = tokenizer.encode(prompt)
    new = generate_ids(model, [ids], GenerationParams(max_new_tokens=12, temperature=0), tokenizer.eos_id)[0]
    assert answer.usage.prompt_tokens == len(ids) and answer.usage.completion_tokens == len(new)
    with torch.no_grad():
        expected = model(torch.tensor([ids + new])).logits[0].float().log_softmax(-1)
    wanted = [float(expected[len(ids) - 1 + i, token]) for i, token in enumerate(new)]
    assert choice.logprobs.token_logprobs == pytest.approx(wanted, abs=1e-4)
    for logprob, top in zip(choice.logprobs.token_logprobs, choice.logprobs.top_logprobs, strict=True):
        assert len(top) <= 3 and max(top.values()) == pytest.approx(logprob, abs=1e-6)  # greedy: the best one


def test_echo_gives_the_prompt_logprobs_lm_eval_reads(server):
    running, run, _ = server
    model = open_run(run).model("cpu")
    prompts = [[5, 60, 71, 9], [33, 2, 101]]
    answer = running.client().completions.create(model=run.name, prompt=prompts, max_tokens=1, temperature=0,
                                                 logprobs=1, echo=True)
    assert [c.index for c in answer.choices] == [0, 1]
    for ids, choice in zip(prompts, answer.choices, strict=True):
        with torch.no_grad():
            expected = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
        lps = choice.logprobs.token_logprobs
        assert len(lps) == len(ids) + 1 and lps[0] is None  # the prompt's tokens, then the generated one
        assert lps[1:-1] == pytest.approx([float(expected[i - 1, ids[i]]) for i in range(1, len(ids))], abs=1e-4)
        assert lps[-1] == pytest.approx(float(expected[-1].max()), abs=1e-4)


def test_stop_strings_n_and_seeds(server):
    running, run, records = server
    client = running.client()
    prompt = records[1]["messages"][0]["content"]
    whole = client.completions.create(model=run.name, prompt=prompt, max_tokens=16, temperature=0).choices[0].text
    assert len(whole) > 3
    stop = whole[2:4]
    cut = client.completions.create(model=run.name, prompt=prompt, max_tokens=16, temperature=0, stop=[stop])
    assert cut.choices[0].text == whole[: whole.index(stop)] and cut.choices[0].finish_reason == "stop"
    sampled = client.completions.create(model=run.name, prompt=prompt, max_tokens=8, temperature=1.0, n=4, seed=7)
    again = client.completions.create(model=run.name, prompt=prompt, max_tokens=8, temperature=1.0, n=4, seed=7)
    texts = [c.text for c in sampled.choices]
    assert [c.index for c in sampled.choices] == [0, 1, 2, 3]
    assert texts == [c.text for c in again.choices]  # a seed makes a request repeatable
    assert len(set(texts)) > 1  # and each choice draws its own sample


def test_streamed_completions_join_to_the_whole_answer(server):
    running, run, records = server
    client = running.client()
    prompt = records[2]["messages"][0]["content"]
    whole = client.completions.create(model=run.name, prompt=prompt, max_tokens=10, temperature=0)
    chunks = list(client.completions.create(model=run.name, prompt=prompt, max_tokens=10, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens and not chunks[-1].choices
    scored = client.completions.create(model=run.name, prompt=prompt, max_tokens=10, temperature=0, logprobs=2)
    streamed = [c.choices[0].logprobs for c in client.completions.create(
        model=run.name, prompt=prompt, max_tokens=10, temperature=0, logprobs=2, stream=True) if c.choices[0].logprobs]
    assert [lp for part in streamed for lp in part.token_logprobs] == scored.choices[0].logprobs.token_logprobs
    assert [o for part in streamed for o in part.text_offset] == scored.choices[0].logprobs.text_offset


def test_chat_answers_as_the_chat_pipeline_and_streams_the_same_reply(server):
    running, run, records = server
    client = running.client()
    chat = ChatModel.from_run(open_run(run), "cpu")
    for record in records[:3]:
        messages = record["messages"][:1]
        expected = chat.replies([messages], GenerationParams(max_new_tokens=24, temperature=0))[0]
        answer = client.chat.completions.create(model=run.name, messages=messages, max_tokens=24, temperature=0)
        assert answer.choices[0].message.content == expected == record["answer"]  # it learned these
        assert answer.choices[0].finish_reason == "stop"  # at the end of its turn
        stream = client.chat.completions.create(model=run.name, messages=messages, max_tokens=24, temperature=0,
                                                stream=True, logprobs=True, top_logprobs=2)
        chunks = list(stream)
        assert chunks[0].choices[0].delta.role == "assistant"
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected
        assert chunks[-1].choices[0].finish_reason == "stop"
        tokens = [entry for c in chunks if c.choices[0].logprobs for entry in c.choices[0].logprobs.content]
        assert tokens and all(len(t.top_logprobs) == 2 and t.top_logprobs[0].logprob >= t.logprob - 1e-6
                              for t in tokens)


def test_embeddings_are_the_feature_extraction_pipeline_s(server):
    running, _, _ = server
    texts = ["A man is eating food.", "The cat sits outside"]
    answer = running.client().embeddings.create(model=ENCODER, input=texts)
    expected = torch.tensor(pipeline("feature-extraction", model=ENCODER, device="cpu")(texts, pooling="mean"))
    got = torch.tensor([d.embedding for d in answer.data])
    assert torch.allclose(got, expected, atol=1e-5) and answer.usage.prompt_tokens > 0


def test_sixteen_concurrent_greedy_requests_each_get_what_they_get_alone(server):
    running, run, records = server
    client = running.client()
    requests = [(r["messages"][0]["content"], 6 + i % 7) for i, r in enumerate(records)]  # prompts and lengths differ
    alone = []
    for prompt, tokens in requests:
        answer = client.completions.create(model=run.name, prompt=prompt, max_tokens=tokens, temperature=0)
        alone.append((answer.choices[0].text, answer.choices[0].finish_reason, answer.usage.completion_tokens))

    def ask(request: tuple[str, int]) -> tuple[str, str, int]:
        prompt, tokens = request
        chunks = list(client.completions.create(model=run.name, prompt=prompt, max_tokens=tokens, temperature=0,
                                                stream=True, stream_options={"include_usage": True}))
        text = "".join(c.choices[0].text for c in chunks if c.choices)
        return text, [c.choices[0].finish_reason for c in chunks if c.choices][-1], chunks[-1].usage.completion_tokens

    with ThreadPoolExecutor(len(requests)) as pool:
        together = list(pool.map(ask, requests))
    assert len(requests) == 16 and together == alone
    with urllib.request.urlopen(running.url + "/metrics") as response:
        largest = [line for line in response.read().decode().splitlines() if line.startswith("lmlab_largest_batch")]
    assert float(largest[0].split()[-1]) >= 8  # they were decoded together, not one after another


def test_refusals_are_openai_errors_with_4xx(server):
    running, run, _ = server
    ok = json.dumps({"model": run.name, "prompt": "hi", "max_tokens": 2}).encode()
    cases = [
        (b"{not json", 400, "not JSON"),
        (b'{"model": "\xff"}', 400, "not UTF-8"),
        (b"[" * 50_000 + b"]" * 50_000, 400, "nests too deeply"),
        (b"[1, 2]", 400, "JSON object"),
        (json.dumps({"model": "nope", "prompt": "hi"}).encode(), 404, "not served here"),
        (json.dumps({"model": run.name, "prompt": "hi", "max_tokens": -3}).encode(), 400, "max_tokens"),
        (json.dumps({"model": run.name, "prompt": "hi", "max_tokens": 10**9}).encode(), 400, "max_tokens"),
        (json.dumps({"model": run.name, "prompt": "hi", "tempreature": 0}).encode(), 400, "tempreature: unknown"),
        (json.dumps({"model": run.name, "prompt": [10**9]}).encode(), 400, "token ids must lie"),
        (json.dumps({"model": run.name, "prompt": "hi " * 500}).encode(), 413, "the limit is"),
        (json.dumps({"model": run.name, "prompt": "x" * 2_000_000}).encode(), 413, "over"),
        (json.dumps({"model": ENCODER, "prompt": "hi"}).encode(), 400, "encoder"),
    ]
    for body, status, words in cases:
        code, _, answer = running.post("/v1/completions", body)
        assert code == status and words in answer["error"]["message"], (body[:60], code, answer)
        assert set(answer["error"]) == {"message", "type", "param", "code"}
    code, _, answer = running.post("/v1/chat/completions", json.dumps(
        {"model": run.name, "messages": [{"role": "robot", "content": "hi"}]}).encode())
    assert code == 400 and answer["error"]["param"].startswith("messages")
    assert running.post("/v1/completions", b"", method="GET")[0] == 405
    assert running.post("/v2/nothing", ok)[0] == 404
    assert running.post("/v1/completions", ok)[0] == 200  # and it still serves


def test_an_api_key_guards_every_route_but_health(chat_run, tmp_path):
    run, _ = chat_run
    with Running([str(run)], api_key="s3cret") as running:
        code, _, answer = running.post("/v1/completions", json.dumps({"model": run.name, "prompt": "hi"}).encode())
        assert code == 401 and answer["error"]["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            running.client("wrong").models.list()
        assert [m.id for m in running.client("s3cret").models.list().data] == [run.name]
        with urllib.request.urlopen(running.url + "/health") as response:
            assert response.status == 200
        for path in ("/", "/metrics", "/v1/models"):
            assert running.post(path, b"", method="GET")[0] == 401
        code, headers, _ = running.post("/", b"", method="GET")
        assert headers["www-authenticate"] == 'Basic realm="lmlab"'  # so a browser asks for the key
        for password, status in (("s3cret", 200), ("wrong", 401)):
            basic = "Basic " + base64.b64encode(f"me:{password}".encode()).decode()
            assert running.post("/v1/models", b"", {"Authorization": basic}, method="GET")[0] == status
        assert running.post("/v1/models", b"", {"Authorization": "Basic %%%"}, method="GET")[0] == 401
        # a browser given the key as a password lists the models: the page's requests carry it too
        with chromium(tmp_path) as browser:
            browser.get(f"http://me:s3cret@127.0.0.1:{running.port}/")
            WebDriverWait(browser, 30).until(lambda b: b.execute_script(
                "return document.getElementById('model').options.length") == 1)


def test_metrics_count_what_was_served(server):
    running, run, _ = server
    running.client().completions.create(model=run.name, prompt="hello", max_tokens=3, temperature=0)
    with urllib.request.urlopen(running.url + "/metrics") as response:
        text = response.read().decode()
    tokens = [line for line in text.splitlines() if line.startswith("lmlab_generated_tokens_total")]
    assert tokens and float(tokens[0].split()[-1]) >= 3
    assert 'lmlab_request_seconds_count{route="/v1/completions"}' in text and "lmlab_running_sequences" in text


def test_lm_eval_local_completions_scores_a_task_as_lmlab_s_harness_does(server, tmp_path):
    """lm-eval's own API model, tokenizing with the exported tokenizer, asks the server for echoed log-probs."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    from lmlab.evaluate.harness import evaluate_task, load_task

    running, run, _ = server
    exported = tmp_path / "hf"
    assert main(["export", str(run), str(exported)]) == 0
    block = open_run(run).model("cpu").config.block_size
    remote = LocalCompletionsAPI(model=run.name, base_url=f"{running.url}/v1/completions",
                                 tokenizer_backend="huggingface", tokenizer=str(exported), num_concurrent=1,
                                 max_retries=1, batch_size=1, max_length=block)
    local = open_run(run).language_model()

    class Recorded:
        """lmlab's harness over a `score` function, keeping every request and its answer."""

        def __init__(self, score):
            self.score, self.log = score, []

        def loglikelihood(self, requests):
            answers = self.score(list(requests))
            self.log += list(zip(requests, answers, strict=True))
            return answers

        def __getattr__(self, name):
            return getattr(local, name)

    def through_server(requests):
        instances = [Instance(request_type="loglikelihood", doc={}, arguments=r, idx=i)
                     for i, r in enumerate(requests)]
        return [(float(lp), bool(greedy)) for lp, greedy in remote.loglikelihood(instances, disable_tqdm=True)]

    ours, theirs = Recorded(local.loglikelihood), Recorded(through_server)
    task = load_task("arc_easy_mini")
    mine, served = evaluate_task(ours, task, limit=12), evaluate_task(theirs, task, limit=12)
    assert [r for r, _ in ours.log] == [r for r, _ in theirs.log] and len(ours.log) >= 40
    for (_, (lp, greedy)), (_, (their_lp, their_greedy)) in zip(ours.log, theirs.log, strict=True):
        assert their_lp == pytest.approx(lp, abs=1e-3) and their_greedy == greedy
    assert served.metrics == mine.metrics


@pytest.fixture(scope="module")
def slow_run(chat_run, tmp_path_factory):
    """A random GPT with a long context, a stream of 900 tokens lasts about two seconds."""
    run, _ = chat_run
    folder = tmp_path_factory.mktemp("slow") / "slow"
    tokenizer = open_run(run).tokenizer()
    torch.manual_seed(0)
    config = {"vocab_size": tokenizer.vocab_size, "block_size": 1024, "n_layer": 8, "n_head": 4, "n_embd": 256}
    save_model(model_from_config("gpt", config), folder)
    shutil.copy(run / "tokenizer.json", folder / "tokenizer.json")
    return folder


def metric(running: Running, name: str) -> float:
    with urllib.request.urlopen(running.url + "/metrics") as response:
        lines = [line for line in response.read().decode().splitlines() if line.startswith(name + "{")]
    return float(lines[0].split()[-1])


def test_a_full_queue_answers_429_with_retry_after(slow_run):
    with Running([str(slow_run)], max_batch=1, max_waiting=1) as running:
        body = json.dumps({"model": "slow", "prompt": "hi", "max_tokens": 600, "temperature": 0}).encode()
        code, headers, answer = running.post("/v1/completions", json.dumps(
            {"model": "slow", "prompt": "hi", "max_tokens": 5, "n": 2}).encode())
        assert code == 429 and headers["retry-after"] == "1" and answer["error"]["type"] == "rate_limit_error"
        with ThreadPoolExecutor(3) as pool:
            codes = sorted(code for code, _, _ in pool.map(lambda _: running.post("/v1/completions", body), range(3)))
        assert codes[0] == 200 and codes[-1] == 429  # one decoding, at most one waiting, the rest turned away


def test_a_client_that_goes_away_cancels_its_sequence(slow_run):
    with Running([str(slow_run)]) as running:
        stream = running.client().completions.create(model="slow", prompt="hi", max_tokens=900, temperature=0,
                                                     stream=True)
        for _, _ in zip(range(3), stream, strict=False):
            pass
        stream.close()
        deadline = time.monotonic() + 5
        while metric(running, "lmlab_running_sequences") > 0:
            assert time.monotonic() < deadline, "the stream's sequence kept running after its client left"
            time.sleep(0.05)
        assert metric(running, "lmlab_generated_tokens_total") < 900
        before = metric(running, "lmlab_generated_tokens_total")
        body = json.dumps({"model": "slow", "prompt": "hi", "max_tokens": 900, "temperature": 0}).encode()
        with socket.create_connection(("127.0.0.1", running.port)) as raw:  # a plain request, then hang up
            raw.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            time.sleep(0.3)
        deadline = time.monotonic() + 5
        while metric(running, "lmlab_running_sequences") > 0:
            assert time.monotonic() < deadline, "the request's sequence kept running after its client left"
            time.sleep(0.05)
        assert metric(running, "lmlab_generated_tokens_total") - before < 900


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_lmlab_serve_binds_loopback_and_sigterm_lets_a_stream_in_flight_finish(slow_run):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "lmlab.cli", "serve", str(slow_run), "--port", str(port),
                               "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.models.list()
                break
            except openai.APIConnectionError:
                assert time.monotonic() < deadline and server.poll() is None, server.communicate()
                time.sleep(0.2)
        address = socket.gethostbyname(socket.gethostname())
        if not address.startswith("127."):  # only loopback listens
            with pytest.raises(OSError), socket.create_connection((address, port), timeout=2):
                pass
        whole = client.completions.create(model="slow", prompt="hi", max_tokens=900, temperature=0)
        stream = client.completions.create(model="slow", prompt="hi", max_tokens=900, temperature=0, stream=True)
        pieces = [next(iter(stream)).choices[0].text]
        server.send_signal(signal.SIGTERM)
        pieces += [chunk.choices[0].text for chunk in stream]
        assert "".join(pieces) == whole.choices[0].text  # the stream in flight ran to its end
        # then uvicorn ends the process by the signal it got, as a service manager expects
        assert server.wait(timeout=30) == -signal.SIGTERM
        assert "Traceback" not in server.stderr.read()
    finally:
        server.kill()
        server.wait()


def test_lmlab_serve_refuses_what_it_cannot_serve(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_an_lstm_is_served_one_sequence_at_a_time_as_generate_writes(chat_run, tmp_path):
    run, records = chat_run
    tokenizer = open_run(run).tokenizer()
    torch.manual_seed(0)
    save_model(model_from_config("rnn", {"vocab_size": tokenizer.vocab_size, "block_size": 64}), tmp_path / "lstm")
    shutil.copy(run / "tokenizer.json", tmp_path / "lstm" / "tokenizer.json")
    model = open_run(tmp_path / "lstm").model("cpu")
    prompts = [r["messages"][0]["content"] for r in records[:4]]
    params = GenerationParams(max_new_tokens=12, temperature=0)
    expected = generate_text(model, tokenizer, prompts, params)
    with Running([str(tmp_path / "lstm")]) as running:
        client = running.client()
        with ThreadPoolExecutor(4) as pool:  # asked together, answered one after another
            answers = list(pool.map(lambda p: client.completions.create(model="lstm", prompt=p, max_tokens=12,
                                                                        temperature=0, logprobs=1), prompts))
        assert [a.choices[0].text for a in answers] == expected
        ids = tokenizer.encode(prompts[0])
        new = generate_ids(model, [ids], params, tokenizer.eos_id)[0]
        with torch.no_grad():
            logits = model(torch.tensor([ids + new])).logits[0].float().log_softmax(-1)
        assert answers[0].choices[0].logprobs.token_logprobs == pytest.approx(
            [float(logits[len(ids) - 1 + i, t]) for i, t in enumerate(new)], abs=1e-4)
        assert metric(running, "lmlab_largest_batch") == 1


def test_an_ngram_run_writes_whole_texts_and_refuses_token_questions(packed_dir, tmp_path):
    from lmlab.train import read_train_config, train_run

    folder = train_run(read_train_config(None, [f"data={packed_dir}", f"run_dir={tmp_path / 'kn'}",
                                               "model.family=ngram", "model.unit=character", "model.order=4",
                                               "model.discount_fallback=true"])).run_dir
    text_model = open_run(folder).language_model()
    with Running([str(folder)]) as running:
        client = running.client()
        answer = client.completions.create(model="kn", prompt="To be", max_tokens=20, seed=3, n=2)
        expected = [text_model.generate(["To be"], GenerationParams(max_new_tokens=20, seed=seed))[0]
                    for seed in (3, 4)]
        assert [c.text for c in answer.choices] == expected and len(set(expected)) == 2
        assert answer.usage.completion_tokens == sum(len(t) for t in expected)  # characters are its units
        chunks = list(client.completions.create(model="kn", prompt="To be", max_tokens=20, seed=3, stream=True))
        assert "".join(c.choices[0].text for c in chunks) == expected[0]
        for body, field_name in (({"logprobs": 1}, "logprobs"), ({"echo": True}, "echo"),
                                 ({"prompt": [1, 2]}, "prompt")):
            code, _, error = running.post("/v1/completions", json.dumps(
                {"model": "kn", "prompt": "To be", **body}).encode())
            assert code == 400 and error["error"]["param"] == field_name and "n-gram" in error["error"]["message"]
        code, _, error = running.post("/v1/chat/completions", json.dumps(
            {"model": "kn", "messages": [{"role": "user", "content": "hi"}]}).encode())
        assert code == 400 and "chat template" in error["error"]["message"]
    # requests wait on the device loop one at a time; past max_waiting of them, 429
    device = DeviceLoop([])  # not running yet, so the first request waits
    body = json.dumps({"model": "kn", "prompt": "To be", "max_tokens": 5}).encode()
    with Running([str(folder)], device=device, max_waiting=1) as running, ThreadPoolExecutor(1) as pool:
        first = pool.submit(running.post, "/v1/completions", body)
        deadline = time.monotonic() + 10
        while running.models[0].jobs_waiting < 1:
            assert time.monotonic() < deadline, "the first request never reached the device loop"
            time.sleep(0.01)
        code, headers, answer = running.post("/v1/completions", body)
        assert code == 429 and headers["retry-after"] == "1" and answer["error"]["type"] == "rate_limit_error"
        device.start()
        assert first.result(timeout=30)[0] == 200
        device.stop()


def hostile_requests(model: str, encoder: str, count: int, seed: int = 0) -> list[tuple[str, str, bytes]]:
    """`count` (method, path, body) requests, malformed or hostile in every way the fuzz test names, drawn
    from a seeded generator so a failure can be replayed."""
    rng = random.Random(seed)
    good = {"/v1/completions": {"model": model, "prompt": "hi", "max_tokens": 3},
            "/v1/chat/completions": {"model": model, "messages": [{"role": "user", "content": "hi"}]},
            "/v1/embeddings": {"model": encoder, "input": "hi"},
            "/v1/pipelines/fill-mask": {"model": encoder, "inputs": "a [MASK] here", "options": {"top_k": 2}}}
    fields = ["model", "prompt", "messages", "input", "inputs", "options", "max_tokens", "max_completion_tokens",
              "temperature", "top_p", "top_k", "n", "stop", "seed", "stream", "stream_options", "logprobs",
              "top_logprobs", "echo", "best_of", "suffix", "logit_bias", "encoding_format", "dimensions", "user"]
    odd_values = [None, True, -1, 0, -10**6, 10**30, 2**63, 1.5, -0.5, float("inf"), float("nan"), "", "x" * 5000,
                  "🙂" * 100, "\u0000", [], [[]], [None], [-1], [10**12], [[1, 2], "mixed"], {}, {"a": {"b": []}},
                  ["a"] * 500, list(range(3000)), [[5] * 10] * 70, [{"role": "user"}],
                  [{"role": "user", "content": ["part"]}], [{"role": "tool", "content": "x"}],
                  [{"role": "user", "content": "x", "extra": 1}]]

    def mutated(path: str) -> dict[str, Any]:
        body = dict(good[path])
        for _ in range(rng.randint(1, 3)):
            action = rng.random()
            name = rng.choice(fields)
            if action < 0.7:
                body[name] = rng.choice(odd_values)
            elif action < 0.85 and body:
                body.pop(rng.choice(list(body)))
            else:
                body[f"field_{rng.randint(0, 9)}"] = rng.choice(odd_values)
        return body

    def broken(text: bytes) -> bytes:
        choice = rng.randrange(5)
        if choice == 0:
            return text[: rng.randrange(len(text))]  # cut short
        if choice == 1 and text:
            at = rng.randrange(len(text))
            return text[:at] + bytes([rng.choice([0xFF, 0xC3, 0xE4, 0x80, 0xF0])]) + text[at + 1:]  # not UTF-8
        if choice == 2:
            depth = rng.choice([100, 1000, 10_000, 200_000])
            opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
            return opener * depth + b"1" + closer * depth  # nested deeper than any parser's stack
        if choice == 3:
            return rng.choice([b"", b"null", b"42", b'"text"', b"[]", b"{", b"}", b"{'model': 'x'}", b"\x00" * 64,
                               b'{"model": "a", "model": 3}', b"NaN", b'{"a": 1e999999}'])
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))  # noise

    requests: list[tuple[str, str, bytes]] = []
    routes = list(good)
    while len(requests) < count:
        kind = rng.random()
        path = rng.choice(routes)
        if kind < 0.45:
            body = mutated(path)
            if rng.random() < 0.1:
                body["model"] = rng.choice(["nope", "../" * 20, "", "x" * 10_000, encoder, model])
            requests.append(("POST", path, json.dumps(body, allow_nan=True).encode()))
        elif kind < 0.75:
            requests.append(("POST", path, broken(json.dumps(mutated(path)).encode())))
        elif kind < 0.8:
            giant = {**good[path], "prompt" if path == "/v1/completions" else "input": "word " * rng.choice(
                [2_000, 50_000, 190_000])}
            if path == "/v1/chat/completions":
                giant = {**good[path], "messages": [{"role": "user", "content": "word " * 50_000}]}
            requests.append(("POST", path, json.dumps(giant).encode()))
        elif kind < 0.95:
            method = rng.choice(["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
            requests.append((method, rng.choice([*routes, "/v1/models", "/metrics", "/health"]) if method != "GET"
                             else path, b""))
        else:
            requests.append(("POST", rng.choice(["/", "/v1", "/v1/completions/", "/../../etc/passwd", "/v1/models",
                                                 "/%ff%fe", "/v1/" + "a" * 4000]), json.dumps(good[path]).encode()))
    return requests


def test_hostile_requests_never_get_a_5xx_and_the_server_keeps_serving(chat_run):
    run, _ = chat_run
    cheap = {"model": run.name, "prompt": "hello", "max_tokens": 3, "temperature": 0}
    with Running([str(run), ENCODER], max_tokens=4, max_body_bytes=1_000_000) as running:
        expected = running.post("/v1/completions", json.dumps(cheap).encode())[2]["choices"][0]["text"]
        requests = hostile_requests(run.name, ENCODER, 600)

        def send(request: tuple[str, str, bytes]) -> tuple[int, str, bytes]:
            method, path, body = request
            connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=60)
            try:
                connection.putrequest(method, path, skip_accept_encoding=True)
                connection.putheader("Content-Type", "application/json")
                connection.putheader("Content-Length", str(len(body)))
                connection.endheaders()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    connection.send(body)
                response = connection.getresponse()
                return response.status, response.getheader("content-type", ""), response.read()
            finally:
                connection.close()

        with ThreadPoolExecutor(8) as pool:  # several at once, as a hostile crowd would send them
            answers = list(pool.map(send, requests))
        statuses = Counter(status for status, _, _ in answers)
        for (method, path, body), (status, kind, payload) in zip(requests, answers, strict=True):
            assert status < 500, (method, path, body[:200], status, payload[:300])
            if status >= 400:
                error = json.loads(payload)["error"]  # OpenAI's error shape, whatever went wrong
                assert set(error) == {"message", "type", "param", "code"} and error["message"], (body[:200], error)
            elif "event-stream" in kind:
                assert payload.decode().rstrip().endswith("data: [DONE]")
            else:
                json.loads(payload)
        assert statuses[200] > 10 and sum(n for s, n in statuses.items() if 400 <= s < 500) > 400, statuses
        assert {400, 404, 405, 413} <= set(statuses), statuses
        for raw in (b"GARBAGE\r\n\r\n", b"POST /v1/completions HTTP/1.1\r\nHost x\r\n\r\n",
                    b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                    b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{",
                    b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x02\x00" * 40):
            with (socket.create_connection(("127.0.0.1", running.port), timeout=10) as connection,
                  contextlib.suppress(ConnectionResetError, BrokenPipeError)):
                connection.sendall(raw)
                answer = connection.recv(200)
                status = int(answer.split()[1]) if answer.startswith(b"HTTP/") else None
                assert status is None or 400 <= status < 500, (raw[:60], answer)  # refused, or hung up on
        # after all that it still answers, and answers the same
        assert running.post("/v1/completions", json.dumps(cheap).encode())[2]["choices"][0]["text"] == expected
        assert metric(running, "lmlab_running_sequences") == 0 and metric(running, "lmlab_waiting_sequences") == 0


def test_the_playground_streams_completions_shows_token_probabilities_and_chats_in_chromium(chat_run, slow_run,
                                                                                             tmp_path):
    run, records = chat_run
    with Running([str(run), str(slow_run)]) as running, chromium(tmp_path) as browser:
        with urllib.request.urlopen(running.url + "/") as response:
            page = response.read().decode()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import""", page)
        browser.get(running.url + "/")
        wait = WebDriverWait(browser, 30, poll_frequency=0.02)
        wait.until(lambda b: len(Select(b.find_element(By.ID, "model")).options) == 2)
        assert [o.text for o in Select(browser.find_element(By.ID, "model")).options] == [run.name, slow_run.name]

        def field(name: str, value: str) -> None:
            element = browser.find_element(By.ID, name)
            element.clear()
            element.send_keys(value)

        def output(element: str = "output") -> str:
            return browser.execute_script(f"return document.getElementById('{element}').textContent")

        # the slow model: text arrives while it is still generating, and Stop ends it (and the server's sequence)
        Select(browser.find_element(By.ID, "model")).select_by_visible_text(slow_run.name)
        field("temperature", "0")
        field("max_tokens", "900")
        field("prompt", "hi")
        browser.find_element(By.ID, "generate").click()
        lengths = set()
        wait.until(lambda b: lengths.add(len(output())) or len(lengths) >= 4)  # it grew, piece by piece
        assert browser.find_element(By.ID, "status").text == "generating…"
        browser.find_element(By.ID, "stop").click()
        wait.until(lambda b: "stopped by you" in b.find_element(By.ID, "status").text)
        deadline = time.monotonic() + 5
        while metric(running, "lmlab_running_sequences") > 0:
            assert time.monotonic() < deadline, "stopping in the page did not stop the server's sequence"
            time.sleep(0.05)

        # the chat model: the streamed text is the greedy completion, each piece carrying its tokens' log-probs
        prompt = records[0]["messages"][0]["content"]
        Select(browser.find_element(By.ID, "model")).select_by_visible_text(run.name)
        field("max_tokens", "12")
        field("prompt", prompt)
        browser.find_element(By.ID, "generate").click()
        wait.until(lambda b: "finished" in b.find_element(By.ID, "status").text)
        expected = running.client().completions.create(model=run.name, prompt=prompt, max_tokens=12, temperature=0,
                                                       logprobs=5).choices[0]
        assert output() == prompt + expected.text
        pieces = browser.find_elements(By.CSS_SELECTOR, "#output .tok")
        shown = [json.loads(p.get_attribute("data-tokens")) for p in pieces]
        assert [t["logprob"] for tokens in shown for t in tokens] == pytest.approx(expected.logprobs.token_logprobs,
                                                                                   abs=1e-6)
        ActionChains(browser).move_to_element(pieces[0]).perform()
        wait.until(lambda b: b.find_element(By.ID, "tip").is_displayed())
        first = shown[0][0]
        assert f"{100 * math.exp(first['logprob']):.1f}%" in browser.find_element(By.ID, "tip").text

        # chat mode, through the run's template: the reply it learned, then a new conversation
        browser.find_element(By.ID, "tab-chat").click()
        assert browser.find_element(By.ID, "chat-pane").is_displayed()
        assert not browser.find_element(By.ID, "complete-pane").is_displayed()
        field("max_tokens", "24")
        field("message", records[0]["messages"][0]["content"])
        browser.find_element(By.ID, "send").click()
        wait.until(lambda b: "finished: stop" in b.find_element(By.ID, "status").text)
        turns = browser.find_elements(By.CSS_SELECTOR, "#transcript .turn > span")
        assert [t.text for t in turns] == [records[0]["messages"][0]["content"], records[0]["answer"]]
        assert browser.save_screenshot(str(tmp_path / "playground.png"))
        assert (tmp_path / "playground.png").stat().st_size > 10_000
        browser.find_element(By.ID, "reset").click()
        assert browser.find_elements(By.CSS_SELECTOR, "#transcript .turn") == []


def test_lmlab_serve_quantize_int8_serves_the_int8_model(chat_run):
    run, records = chat_run
    prompt = records[3]["messages"][0]["content"]
    model = open_run(run).model("cpu", quantization="int8")
    params = GenerationParams(max_new_tokens=10, temperature=0)
    expected = generate_text(model, open_run(run).tokenizer(), [prompt], params)[0]
    with Running([str(run)], quantize="int8") as running:
        answer = running.client().completions.create(model=run.name, prompt=prompt, max_tokens=10, temperature=0)
    assert answer.choices[0].text == expected


def test_pipelines_over_http_answer_as_the_pipelines_do(tmp_path):
    runs = tiny_pipeline_runs(tmp_path / "pipelines")
    classifier, bert = runs / "bert-tuned", runs / "bert"
    with Running([str(classifier), str(bert)]) as running:
        def ask(task: str, body: dict) -> tuple[int, dict]:
            code, _, answer = running.post(f"/v1/pipelines/{task}", json.dumps(body).encode())
            return code, answer

        code, answer = ask("sentiment-analysis", {"model": "bert-tuned", "inputs": TEXTS, "options": {"top_k": 2}})
        assert code == 200 and answer["task"] == "sentiment-analysis"
        expected = pipeline("sentiment-analysis", model=classifier, device="cpu")(TEXTS, top_k=2)
        for got, want in zip(answer["outputs"], expected, strict=True):
            assert [g["label"] for g in got] == [w["label"] for w in want]
            assert [g["score"] for g in got] == pytest.approx([w["score"] for w in want], abs=1e-6)
        text = "the film was [MASK] ."
        code, answer = ask("fill-mask", {"model": "bert", "inputs": text})
        want = pipeline("fill-mask", model=bert, device="cpu")(text)
        assert code == 200 and [a["token_str"] for a in answer["outputs"]] == [w["token_str"] for w in want]
        for task, body, status, words in (
            ("fill-mask", {"model": "bert-tuned", "inputs": text}, 400, "does not do fill-mask"),
            ("question-answering", {"model": "bert", "inputs": {"question": "q", "context": "c"}}, 400,
             "its pipelines: fill-mask"),
            ("summarization", {"model": "bert", "inputs": text}, 404, "no pipeline"),
            ("sentiment-analysis", {"model": "bert-tuned", "inputs": "good", "options": {"beams": 2}}, 400, "beams"),
            ("sentiment-analysis", {"model": "bert-tuned", "inputs": 5}, 400, "inputs"),
            ("sentiment-analysis", {"model": "bert-tuned", "inputs": "x", "optoins": {}}, 400, "optoins"),
        ):
            code, answer = ask(task, body)
            assert code == status and words in answer["error"]["message"], (task, body, answer)
        code, _, answer = running.post("/v1/completions", json.dumps({"model": "bert-tuned", "prompt": "hi"}).encode())
        assert code == 400 and "sentiment-analysis" in answer["error"]["message"]
        with urllib.request.urlopen(running.url + "/metrics") as response:
            assert 'lmlab_requests_total{route="/v1/pipelines",status="200"} 2' in response.read().decode()
    with Running([str(classifier)], quantize="int8") as running:  # --quantize reaches the pipelines too
        code, _, answer = running.post("/v1/pipelines/sentiment-analysis", json.dumps(
            {"model": "bert-tuned", "inputs": TEXTS}).encode())
        assert code == 200 and len(answer["outputs"]) == len(TEXTS)
        loaded = running.models[0].pipelines["sentiment-analysis"].model
        assert any(isinstance(m, Int8Linear) for m in loaded.modules())
        assert not any(isinstance(m, torch.nn.Linear) for m in loaded.modules())


LM_EVAL_DOCS = [
    {"question": "What is 17 + 25?", "choices": ["42", "41", "7"], "label": 0},
    {"question": "What day of the week was 2025-10-29?", "choices": ["Monday", "Wednesday"], "label": 1},
    {"question": "Sort these numbers: 3 1 2", "choices": ["1 2 3", "3 2 1", "2 1 3"], "label": 0},
    {"question": "How many letters are in the word cat?", "choices": ["3", "4", "five"], "label": 0},
]
LM_EVAL_TASK = """task: served_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
output_type: multiple_choice
test_split: test
doc_to_text: "{{{{question}}}}"
doc_to_target: label
doc_to_choice: "{{{{choices}}}}"
metric_list: [{{metric: acc}}, {{metric: acc_norm}}]
metadata: {{version: 1.0}}
"""


def test_the_lm_eval_cli_with_local_completions_scores_as_lmlab_does(server, tmp_path):
    """`lm_eval --model local-completions` itself, on a task over a local file, against the server."""
    running, run, _ = server
    exported = tmp_path / "hf"
    assert main(["export", str(run), str(exported)]) == 0
    data = tmp_path / "served_mc.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in LM_EVAL_DOCS), encoding="utf-8")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "served_mc.yaml").write_text(LM_EVAL_TASK.format(data=data), encoding="utf-8")
    block = open_run(run).model("cpu").config.block_size
    args = (f"model={run.name},base_url={running.url}/v1/completions,tokenizer_backend=huggingface,"
            f"tokenizer={exported},max_length={block},num_concurrent=1,max_retries=1")
    out = tmp_path / "out"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"),
                        "OPENAI_API_KEY": "none"}
    done = subprocess.run([sys.executable, "-m", "lm_eval", "--model", "local-completions", "--model_args", args,
                           "--tasks", "served_mc", "--include_path", str(tasks), "--output_path", str(out),
                           "--log_samples"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [results] = out.rglob("results_*.json")
    [samples_file] = out.rglob("samples_served_mc_*.jsonl")
    samples = sorted((json.loads(line) for line in samples_file.read_text().splitlines()), key=lambda s: s["doc_id"])
    local = open_run(run).language_model()
    accs = []
    for sample, doc in zip(samples, LM_EVAL_DOCS, strict=True):
        pairs = [tuple(a.values()) for a in sample["arguments"].values()]
        assert pairs == [(doc["question"], " " + c) for c in doc["choices"]]
        ours = local.loglikelihood(pairs)
        theirs = [(float(r[0][0]), str(r[0][1]) == "True") for r in sample["resps"]]  # the file holds strings
        assert [lp for lp, _ in theirs] == pytest.approx([lp for lp, _ in ours], abs=1e-3)
        assert [greedy for _, greedy in theirs] == [greedy for _, greedy in ours]
        accs.append(float(max(range(len(ours)), key=lambda i: ours[i][0]) == doc["label"]))
        assert sample["acc"] == accs[-1]
    assert json.loads(results.read_text())["results"]["served_mc"]["acc,none"] == pytest.approx(sum(accs) / len(accs))
