"""Verifiable tasks: questions lmlab writes from a seed, each with the one answer a checker accepts.

Reinforcement learning from a verifiable reward (nanochat's maths, DeepSeek's R1) needs questions
whose replies can be checked exactly; instruction tuning needs answers short enough for a small
model to learn in minutes. Each kind below is both, in English and in Chinese:

    add        What is 347 + 285?                    632        (carries made common on purpose)
    subtract   What is 612 - 285?                    327        (borrows likewise)
    count      How many times does "a" appear in "banana"?     3
    sort       Sort from smallest to largest: 5, 2, 9            2, 5, 9
    reverse    Reverse the list: cat, dog, fish                  fish, dog, cat
    convert    How many meters are in 3 km?          3000       (km/m, kg/g, hours/minutes, minutes/seconds)
    weekday    What day of the week was 2024-03-15?  Friday
    days       How many days are there from 2024-03-01 to 2024-03-15?   14

A record is a conversation (one user turn, the assistant's answer) with ``kind`` and ``answer``
fields; `check_reply` compares a reply with the answer after light normalisation (outer spaces, a
final full stop, list separators, the case of English words), exactly otherwise; `partial_credit`
gives a wrong reply the share of digits or list items it has in place, for a reward that is not all
or nothing.
`plausible_wrong` writes the answer a careless solver would: off by one, a dropped carry, two
list items swapped, the neighbouring weekday; the rejected side of a preference pair.
"""

from __future__ import annotations

import datetime
import random
import re
from collections.abc import Callable
from typing import Any

Record = dict[str, Any]

WEEKDAYS = {"en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
            "zh": ["星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"]}
WORDS = {"en": ["cat", "dog", "fish", "bird", "tree", "book", "cup", "star", "moon", "rain", "sun", "apple"],
         "zh": ["猫", "狗", "鱼", "鸟", "树", "书", "杯子", "星星", "月亮", "雨", "太阳", "苹果"]}
SEPARATOR = {"en": ", ", "zh": "、"}
# (from, to, factor): how many `to` make one `from`, and how each language names the units.
UNITS = [(("km", "千米"), ("meters", "米"), 1000), (("kg", "千克"), ("grams", "克"), 1000),
         (("hours", "小时"), ("minutes", "分钟"), 60), (("minutes", "分钟"), ("seconds", "秒"), 60)]


def _carrying_pair(rng: random.Random, digits: int) -> tuple[int, int]:
    """Two numbers of `digits` digits whose sum carries in at least one column."""
    while True:
        a, b = (rng.randrange(10 ** (digits - 1), 10 ** digits) for _ in range(2))
        if any((a // 10 ** i) % 10 + (b // 10 ** i) % 10 >= 10 for i in range(digits)):
            return a, b


def _add(rng: random.Random, language: str) -> tuple[str, str]:
    a, b = _carrying_pair(rng, rng.choice((2, 3)))
    return (f"What is {a} + {b}?" if language == "en" else f"{a} 加 {b} 等于多少？"), str(a + b)


def _subtract(rng: random.Random, language: str) -> tuple[str, str]:
    a, b = _carrying_pair(rng, rng.choice((2, 3)))
    total = a + b  # total - b borrows where a + b carried
    return (f"What is {total} - {b}?" if language == "en" else f"{total} 减 {b} 等于多少？"), str(a)


def _count(rng: random.Random, language: str) -> tuple[str, str]:
    if language == "en":
        word = "".join(rng.choice("abcde") for _ in range(rng.randrange(4, 9)))
        letter = rng.choice(word)
        return f'How many times does "{letter}" appear in "{word}"?', str(word.count(letter))
    items = [rng.choice(WORDS["zh"][:4]) for _ in range(rng.randrange(3, 8))]
    item = rng.choice(items)
    return f"数一数，下面有几个{item}：{' '.join(items)}", str(items.count(item))


def _sort(rng: random.Random, language: str) -> tuple[str, str]:
    numbers = rng.sample(range(1, 100), rng.randrange(3, 6))
    listed, ordered = (SEPARATOR[language].join(map(str, ns)) for ns in (numbers, sorted(numbers)))
    question = f"Sort from smallest to largest: {listed}" if language == "en" else f"把这些数从小到大排列：{listed}"
    return question, ordered


def _reverse(rng: random.Random, language: str) -> tuple[str, str]:
    items = rng.sample(WORDS[language], rng.randrange(3, 6))
    listed, backwards = (SEPARATOR[language].join(xs) for xs in (items, items[::-1]))
    return (f"Reverse the list: {listed}" if language == "en" else f"把列表倒过来：{listed}"), backwards


def _convert(rng: random.Random, language: str) -> tuple[str, str]:
    (big_en, big_zh), (small_en, small_zh), factor = rng.choice(UNITS)
    amount = rng.randrange(2, 13)
    if language == "en":
        return f"How many {small_en} are in {amount} {big_en}?", str(amount * factor)
    return f"{amount} {big_zh}是多少{small_zh}？", str(amount * factor)


def _date(rng: random.Random) -> datetime.date:
    return datetime.date(2000, 1, 1) + datetime.timedelta(days=rng.randrange(365 * 30))


def _weekday(rng: random.Random, language: str) -> tuple[str, str]:
    day = _date(rng)
    question = (f"What day of the week was {day.isoformat()}?" if language == "en"
                else f"{day.year}年{day.month}月{day.day}日是星期几？")
    return question, WEEKDAYS[language][day.weekday()]


def _days(rng: random.Random, language: str) -> tuple[str, str]:
    start = _date(rng)
    end = start + datetime.timedelta(days=rng.randrange(1, 40))
    if language == "en":
        return f"How many days are there from {start.isoformat()} to {end.isoformat()}?", str((end - start).days)
    return (f"从{start.year}年{start.month}月{start.day}日到{end.year}年{end.month}月{end.day}日有多少天？",
            str((end - start).days))


KINDS: dict[str, Callable[[random.Random, str], tuple[str, str]]] = {
    "add": _add, "subtract": _subtract, "count": _count, "sort": _sort, "reverse": _reverse,
    "convert": _convert, "weekday": _weekday, "days": _days,
}
LANGUAGES = ("en", "zh")


def task_record(kind: str, language: str, question: str, answer: str) -> Record:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
            "kind": kind, "language": language, "answer": answer}


def generate_tasks(language: str, per_kind: int, seed: int = 0) -> list[Record]:
    """`per_kind` items of every kind in `language`, the same for the same seed; no question twice."""
    rng = random.Random(f"{seed}-{language}")
    records, seen = [], set()
    for kind, make in KINDS.items():
        made, tries = 0, 0
        while made < per_kind and tries < 20 * per_kind:  # a small kind (counting) may run out of new questions
            tries += 1
            question, answer = make(rng, language)
            if question not in seen:
                seen.add(question)
                records.append(task_record(kind, language, question, answer))
                made += 1
    return records


def _normalised(text: str) -> str:
    text = re.sub(r"\s+", " ", text.strip()).rstrip(".。!！")
    text = re.sub(r"\s*[,，、]\s*", ", ", text)
    return text.lower()


def check_reply(record: Record, reply: str) -> bool:
    """Whether `reply` gives the record's answer, or one of its ``accepted`` answers where it lists several (a
    word's synonyms); see the module for the normalisation."""
    return _normalised(reply) in {_normalised(answer) for answer in record.get("accepted", [record["answer"]])}


def answer_parts(text: str) -> list[str]:
    """What a reply is made of, for partial credit: a list's items, a number's digits from the units up (the
    column a sum starts in), or the whole text as one part."""
    text = _normalised(text)
    if ", " in text:
        return text.split(", ")
    return list(reversed(text)) if text.isdigit() else [text]


def partial_credit(record: Record, reply: str) -> float:
    """1 for a right reply; else the share of the answer's parts (`answer_parts`) the reply has in their
    places, out of the longer of the two, so a missing or an extra part costs as much as a wrong one. A
    denser signal than right-or-wrong: 632 for 631 earns 2/3, where a checker sees nothing to prefer."""
    if check_reply(record, reply):
        return 1.0
    given = answer_parts(reply)
    best = 0.0
    for answer in record.get("accepted", [record["answer"]]):
        wanted = answer_parts(answer)
        if len(wanted) > 1:
            right = sum(a == b for a, b in zip(given, wanted, strict=False))
            best = max(best, right / max(len(given), len(wanted)))
    return best


def plausible_wrong(record: Record, rng: random.Random) -> str:
    """An answer a careless solver might give, never the right one."""
    answer, kind, language = record["answer"], record["kind"], record["language"]
    if kind in ("sort", "reverse"):
        items = answer.split(SEPARATOR[language])
        i = rng.randrange(len(items) - 1)
        items[i], items[i + 1] = items[i + 1], items[i]
        return SEPARATOR[language].join(items)
    if kind == "weekday":
        days = WEEKDAYS[language]
        return days[(days.index(answer) + rng.choice((-1, 1))) % 7]
    value = int(answer)
    # A dropped or extra carry is off by a power of ten; a slip is off by one.
    offsets = [1, -1] + [10 ** p for p in range(1, len(answer))] + [-(10 ** p) for p in range(1, len(answer))]
    wrong = [value + offset for offset in offsets if value + offset >= 0]
    return str(rng.choice(wrong))
